-- A study's case version: raised by every change to its cases (and to its sites, whose codes
-- the case list filters and sorts by), whoever makes it. The case list caches each list's
-- ordered ids with the version it was computed at (src/cases/listing.rs).
CREATE TABLE case_versions (
    study_id INTEGER PRIMARY KEY NOT NULL REFERENCES studies(id),
    version BIGINT NOT NULL
);
INSERT INTO case_versions (study_id, version) SELECT DISTINCT study_id, 1 FROM cases;
CREATE TRIGGER cases_version_insert AFTER INSERT ON cases
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER cases_version_update AFTER UPDATE ON cases
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER cases_version_delete AFTER DELETE ON cases
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (OLD.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER sites_version_update AFTER UPDATE ON sites
BEGIN
    INSERT INTO case_versions (study_id, version) VALUES (NEW.study_id, 1)
        ON CONFLICT (study_id) DO UPDATE SET version = version + 1;
END;
