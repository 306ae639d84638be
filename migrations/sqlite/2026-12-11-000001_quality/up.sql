-- Data quality (issue 25): a study's custom rules, written in REDCap's logic syntax (the built-in
-- rules are the application's own and are not stored), and what the rules found, per case, event,
-- instance and field (with the value found, so that an exclusion holds only for that value): open until the data no longer triggers the rule (resolved) or a manager
-- excludes it with a reason. audit::Entity gains quality_rule and quality_finding, audit::Action
-- run_rules.
CREATE TABLE quality_rules (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    logic TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    status_reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, code)
);
CREATE TABLE quality_findings (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    rule_code TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    event TEXT NOT NULL,
    instance INTEGER NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
    detail TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'excluded')),
    status_reason TEXT,
    status_by TEXT,
    status_at TIMESTAMP,
    first_found_at TIMESTAMP NOT NULL,
    last_found_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, rule_code, case_id, event, instance, field)
);
CREATE INDEX quality_findings_status ON quality_findings(study_id, status);
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
DROP TRIGGER audit_events_entity_check_insert;
DROP TRIGGER audit_events_entity_check_update;
CREATE TRIGGER audit_events_entity_check_insert BEFORE INSERT ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
CREATE TRIGGER audit_events_entity_check_update BEFORE UPDATE OF entity ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
