DROP TABLE monitoring_plans;
DROP TABLE verifications;
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
