-- Cases: the per-study data dictionary (REDCap columns), case records, imports.
CREATE TABLE dictionary_fields (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    form_name TEXT NOT NULL,
    section_header TEXT NOT NULL,
    field_type TEXT NOT NULL,
    label TEXT NOT NULL,
    choices TEXT NOT NULL,
    field_note TEXT NOT NULL,
    validation TEXT NOT NULL,
    validation_min TEXT NOT NULL,
    validation_max TEXT NOT NULL,
    identifier BOOLEAN NOT NULL,
    branching_logic TEXT NOT NULL,
    required BOOLEAN NOT NULL,
    -- The REDCap columns Evidentia does not use, as a JSON object, kept for export.
    extra TEXT NOT NULL,
    deid_action TEXT NOT NULL,
    retired_at TIMESTAMP,
    UNIQUE (study_id, name)
);

-- One row per subject; de-identified values as one JSON document (fast imports and lists);
-- the linkage key is an HMAC of the site's subject id, never the id itself.
CREATE TABLE cases (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    subject_key TEXT NOT NULL,
    display_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    status_date DATE,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, subject_key),
    UNIQUE (study_id, display_id)
);
CREATE INDEX cases_list ON cases(study_id, site_id, status);

CREATE TABLE case_imports (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    actor TEXT NOT NULL,
    -- The upload's SHA-256 and size: its name may itself be an identifier, so it is not kept.
    file_sha256 TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    encoding TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_created INTEGER NOT NULL,
    rows_updated INTEGER NOT NULL,
    rows_unchanged INTEGER NOT NULL,
    report TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX case_imports_study ON case_imports(study_id);
