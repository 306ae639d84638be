DROP TABLE member_sites;
ALTER TABLE study_members DROP CONSTRAINT study_members_role_check;
ALTER TABLE study_members ADD CONSTRAINT study_members_role_check CHECK (role IN ('manager', 'annotator', 'statistician', 'monitor'));
ALTER TABLE study_signatures DROP CONSTRAINT study_signatures_role_check;
ALTER TABLE study_signatures ADD CONSTRAINT study_signatures_role_check CHECK (role IN ('manager', 'annotator', 'statistician', 'monitor'));
