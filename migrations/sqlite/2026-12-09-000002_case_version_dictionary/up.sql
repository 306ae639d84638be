-- The case version also moves with the study's data dictionary and with new sites: the case list
-- keeps the parsed dictionary and the site list with the version (src/cases/listing.rs), so
-- every change to either must raise it, whoever makes it.
CREATE TRIGGER sites_version_insert AFTER INSERT ON sites
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER dictionary_version_insert AFTER INSERT ON dictionary_fields
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER dictionary_version_update AFTER UPDATE ON dictionary_fields
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER dictionary_version_delete AFTER DELETE ON dictionary_fields
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (OLD.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
