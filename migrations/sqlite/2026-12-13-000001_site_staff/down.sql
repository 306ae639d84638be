DROP TABLE member_sites;
-- The role goes: site staff's memberships end (kept, retired with the reason), as monitors.
UPDATE study_members SET role = 'monitor', retired_at = CURRENT_TIMESTAMP,
    retired_reason = 'the site role was removed (migration reverted)' WHERE role = 'site';
DROP TRIGGER study_members_role_check_insert;
DROP TRIGGER study_members_role_check_update;
CREATE TRIGGER study_members_role_check_insert BEFORE INSERT ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;
CREATE TRIGGER study_members_role_check_update BEFORE UPDATE OF role ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;
DROP TRIGGER study_signatures_role_check_insert;
DROP TRIGGER study_signatures_role_check_update;
CREATE TRIGGER study_signatures_role_check_insert BEFORE INSERT ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;
CREATE TRIGGER study_signatures_role_check_update BEFORE UPDATE OF role ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;
