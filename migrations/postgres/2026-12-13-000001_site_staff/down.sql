DROP TABLE member_sites;
-- The role goes: site staff's memberships end (kept, retired with the reason), as monitors.
UPDATE study_members SET role = 'monitor', retired_at = CURRENT_TIMESTAMP,
    retired_reason = 'the site role was removed (migration reverted)' WHERE role = 'site';
ALTER TABLE study_members DROP CONSTRAINT study_members_role_check;
ALTER TABLE study_members ADD CONSTRAINT study_members_role_check CHECK (role IN ('manager', 'annotator', 'statistician', 'monitor'));
ALTER TABLE study_signatures DROP CONSTRAINT study_signatures_role_check;
ALTER TABLE study_signatures ADD CONSTRAINT study_signatures_role_check CHECK (role IN ('manager', 'annotator', 'statistician', 'monitor'));
