-- Queries (issue 25; REDCap's Data Resolution Workflow, OpenClinica's discrepancy notes): a
-- question on one field value of a subject, opened by a monitor or manager (by hand or from a data
-- quality finding), answered (optionally with the value changed), closed or reopened; each step a
-- message. audit::Entity gains query, audit::Action answer.
CREATE TABLE queries (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    case_id INTEGER NOT NULL REFERENCES cases(id),
    event TEXT NOT NULL,
    instance INTEGER NOT NULL,
    field TEXT NOT NULL,
    finding_id INTEGER REFERENCES quality_findings(id),
    status TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    requires_change BOOLEAN NOT NULL,
    value_at_open TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    closed_by TEXT,
    closed_at TIMESTAMP
);
CREATE INDEX queries_study ON queries(study_id, status);
CREATE TABLE query_messages (
    id INTEGER PRIMARY KEY NOT NULL,
    query_id INTEGER NOT NULL REFERENCES queries(id),
    step TEXT NOT NULL CHECK (step IN ('open', 'answer', 'close', 'reopen')),
    body TEXT NOT NULL,
    value TEXT,
    actor TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX query_messages_query ON query_messages(query_id);
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'answer', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'answer', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
DROP TRIGGER audit_events_entity_check_insert;
DROP TRIGGER audit_events_entity_check_update;
CREATE TRIGGER audit_events_entity_check_insert BEFORE INSERT ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
CREATE TRIGGER audit_events_entity_check_update BEFORE UPDATE OF entity ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
