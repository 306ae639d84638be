-- A saved analysis saved again (same analysis, or the same item of the plan) is superseded by
-- the new one: kept, marked superseded, with a link to what replaced it (src/analyses/saved.rs).
ALTER TABLE saved_analyses ADD COLUMN superseded_by INTEGER REFERENCES saved_analyses(id);
DROP TRIGGER saved_analyses_status_check_insert;
DROP TRIGGER saved_analyses_status_check_update;
CREATE TRIGGER saved_analyses_status_check_insert BEFORE INSERT ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired', 'superseded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;
CREATE TRIGGER saved_analyses_status_check_update BEFORE UPDATE OF status ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired', 'superseded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
-- A campaign's purpose (src/annotations/campaigns.rs): `analysis` feeds the analysis set,
-- `training` (reader training, calibration) never does. Campaigns created before have none and
-- count as analysis campaigns; the lock snapshot hashes the column only where it is set.
ALTER TABLE campaigns ADD COLUMN purpose TEXT;
CREATE TRIGGER campaigns_purpose_check_insert BEFORE INSERT ON campaigns
WHEN NEW.purpose NOT IN ('analysis', 'training')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns.purpose');
END;
CREATE TRIGGER campaigns_purpose_check_update BEFORE UPDATE OF purpose ON campaigns
WHEN NEW.purpose NOT IN ('analysis', 'training')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns.purpose');
END;
