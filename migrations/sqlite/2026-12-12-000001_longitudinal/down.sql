DROP TABLE case_records;
DROP TABLE study_designs;
ALTER TABLE cases DROP COLUMN form_status;
DROP TRIGGER audit_events_entity_check_insert;
DROP TRIGGER audit_events_entity_check_update;
CREATE TRIGGER audit_events_entity_check_insert BEFORE INSERT ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
CREATE TRIGGER audit_events_entity_check_update BEFORE UPDATE OF entity ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
