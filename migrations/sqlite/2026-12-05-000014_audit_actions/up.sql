-- audit_events.action: audit::Action, src/audit/mod.rs — what an event did to its record,
-- checked like audit_events.entity (2026-12-05-000013_audit_entities).
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
