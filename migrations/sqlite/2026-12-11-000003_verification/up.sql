-- Source data verification (issue 25): a monitor marks a subject's form verified (per event);
-- a change to one of its values afterwards clears the mark, with the change as its reason. The
-- study's monitoring plan says whether every form must be verified before the lock. audit::Entity
-- gains verification, audit::Action verify and clear_verification.
CREATE TABLE verifications (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    case_id INTEGER NOT NULL REFERENCES cases(id),
    event TEXT NOT NULL,
    form TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('verified', 'cleared')),
    verified_by TEXT NOT NULL,
    verified_at TIMESTAMP NOT NULL,
    cleared_by TEXT,
    cleared_at TIMESTAMP,
    cleared_reason TEXT,
    UNIQUE (case_id, event, form)
);
CREATE INDEX verifications_study ON verifications(study_id, status);
CREATE TABLE monitoring_plans (
    study_id INTEGER PRIMARY KEY NOT NULL REFERENCES studies(id),
    sdv TEXT NOT NULL CHECK (sdv IN ('all', 'none')),
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'answer', 'cancel_job', 'change_password', 'clear_verification', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'verify', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'answer', 'cancel_job', 'change_password', 'clear_verification', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'export_slides', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'rehash_lock', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'run_rules', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'verify', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
DROP TRIGGER audit_events_entity_check_insert;
DROP TRIGGER audit_events_entity_check_update;
CREATE TRIGGER audit_events_entity_check_insert BEFORE INSERT ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
CREATE TRIGGER audit_events_entity_check_update BEFORE UPDATE OF entity ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
