-- Longitudinal studies (issue 25): a study's design as REDCap describes it (arms, events, the
-- instrument-event mapping, repeating instruments and events), kept as one JSON document per
-- study; each subject's records other than the base one (an event, a repeating instrument's
-- instance) in case_records; the base record's form statuses (REDCap's <form>_complete) in
-- cases.form_status (NULL: none given). audit::Entity gains case_record and study_design.
CREATE TABLE study_designs (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL UNIQUE REFERENCES studies(id),
    design TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE case_records (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    case_id INTEGER NOT NULL REFERENCES cases(id),
    event TEXT NOT NULL,
    instrument TEXT NOT NULL,
    instance INTEGER NOT NULL,
    data TEXT NOT NULL,
    form_status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (case_id, event, instrument, instance)
);
CREATE INDEX case_records_study ON case_records(study_id);
ALTER TABLE cases ADD COLUMN form_status TEXT;
DROP TRIGGER audit_events_entity_check_insert;
DROP TRIGGER audit_events_entity_check_update;
CREATE TRIGGER audit_events_entity_check_insert BEFORE INSERT ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'case_record', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'study_design', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
CREATE TRIGGER audit_events_entity_check_update BEFORE UPDATE OF entity ON audit_events
WHEN NEW.entity NOT IN ('adjudication', 'analysis_plan', 'annotation_schema', 'api_token', 'biomarker_run', 'campaign', 'case', 'case_import', 'case_record', 'dictionary_field', 'job', 'member', 'model', 'quality_finding', 'quality_rule', 'query', 'read', 'saved_analysis', 'site', 'slide', 'study', 'study_design', 'user', 'verification')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: audit_events.entity');
END;
