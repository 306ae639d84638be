DROP TRIGGER sites_version_insert;
DROP TRIGGER dictionary_version_insert;
DROP TRIGGER dictionary_version_update;
DROP TRIGGER dictionary_version_delete;
