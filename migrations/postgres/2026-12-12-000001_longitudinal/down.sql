DROP TABLE case_records;
DROP TABLE study_designs;
ALTER TABLE cases DROP COLUMN form_status;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_entity_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_entity_check CHECK (entity IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'user', 'verification'));
