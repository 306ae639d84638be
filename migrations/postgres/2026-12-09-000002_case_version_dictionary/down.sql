DROP TRIGGER dictionary_version ON dictionary_fields;
DROP TRIGGER sites_version ON sites;
CREATE TRIGGER sites_version AFTER UPDATE ON sites
    FOR EACH ROW EXECUTE FUNCTION bump_case_version();
