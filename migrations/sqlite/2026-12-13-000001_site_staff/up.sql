-- Site staff (issue 25, REDCap's data access groups): the role `site`, scoped to the sites in
-- member_sites (one row per member and site). Role is also stored on study_signatures.
CREATE TABLE member_sites (
    id INTEGER PRIMARY KEY NOT NULL,
    member_id INTEGER NOT NULL REFERENCES study_members(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    UNIQUE (member_id, site_id)
);
DROP TRIGGER study_members_role_check_insert;
DROP TRIGGER study_members_role_check_update;
CREATE TRIGGER study_members_role_check_insert BEFORE INSERT ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor', 'site')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;
CREATE TRIGGER study_members_role_check_update BEFORE UPDATE OF role ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor', 'site')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;
DROP TRIGGER study_signatures_role_check_insert;
DROP TRIGGER study_signatures_role_check_update;
CREATE TRIGGER study_signatures_role_check_insert BEFORE INSERT ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor', 'site')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;
CREATE TRIGGER study_signatures_role_check_update BEFORE UPDATE OF role ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor', 'site')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;
