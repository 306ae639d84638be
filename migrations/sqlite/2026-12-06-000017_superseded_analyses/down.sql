DROP TRIGGER campaigns_purpose_check_insert;
DROP TRIGGER campaigns_purpose_check_update;
ALTER TABLE campaigns DROP COLUMN purpose;
DROP TRIGGER saved_analyses_status_check_insert;
DROP TRIGGER saved_analyses_status_check_update;
UPDATE saved_analyses SET status = 'retired' WHERE status = 'superseded';
CREATE TRIGGER saved_analyses_status_check_insert BEFORE INSERT ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;
CREATE TRIGGER saved_analyses_status_check_update BEFORE UPDATE OF status ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;
ALTER TABLE saved_analyses DROP COLUMN superseded_by;
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
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
