DROP TRIGGER sites_version_update;
DROP TRIGGER cases_version_delete;
DROP TRIGGER cases_version_update;
DROP TRIGGER cases_version_insert;
DROP TABLE case_versions;
