-- The case version also moves with the study's data dictionary and with new sites: the case list
-- keeps the parsed dictionary and the site list with the version (src/cases/listing.rs).
DROP TRIGGER sites_version ON sites;
CREATE TRIGGER sites_version AFTER INSERT OR UPDATE ON sites
    FOR EACH ROW EXECUTE FUNCTION bump_case_version();
CREATE TRIGGER dictionary_version AFTER INSERT OR UPDATE OR DELETE ON dictionary_fields
    FOR EACH ROW EXECUTE FUNCTION bump_case_version();
