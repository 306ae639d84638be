-- Re-hashed locks go back to the hash their signatures carry, which the previous version checks.
UPDATE study_locks SET snapshot_sha256 = legacy_sha256 WHERE legacy_sha256 IS NOT NULL;
ALTER TABLE study_locks DROP COLUMN legacy_sha256;
ALTER TABLE study_locks DROP COLUMN snapshot_version;

-- audit::Action as it was before rehash_lock (migration 000020's list).
DROP TRIGGER audit_events_action_check_insert;
DROP TRIGGER audit_events_action_check_update;
CREATE TRIGGER audit_events_action_check_insert BEFORE INSERT ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
CREATE TRIGGER audit_events_action_check_update BEFORE UPDATE OF action ON audit_events
WHEN NEW.action NOT IN ('add_member', 'add_plan_item', 'adjudicate', 'cancel_job', 'change_password', 'close', 'create', 'create_plan_version', 'deactivate', 'disable_mfa', 'enable_mfa', 'exclude', 'export_dossier', 'finish_run', 'import', 'import_regions', 'include', 'ingest', 'lock', 'login', 'new_recovery_codes', 'reactivate', 'register', 'remove_member', 'remove_plan_item', 'reopen', 'reset_mfa', 'reset_password', 'retire', 'retire_analysis', 'revoke', 'save_analysis', 'save_draft', 'sign', 'sign_failed', 'sign_plan', 'start_job', 'start_run', 'status', 'submit', 'supersede_analysis', 'unlock', 'update', 'withdraw')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.action');
END;
