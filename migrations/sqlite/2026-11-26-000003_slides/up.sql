-- Slides: de-identified whole-slide images stored content-addressed under the data dir, linked
-- to their case. Neither the original file name nor any scanner metadata with PHI is kept.
CREATE TABLE slides (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    case_id INTEGER NOT NULL REFERENCES cases(id),
    -- Pseudonymous label, e.g. SNUBH-0001-S01.
    label TEXT NOT NULL,
    stain TEXT NOT NULL,
    -- Optional manifest columns (block, scanner, …) as a JSON object.
    attributes TEXT NOT NULL,
    -- SHA-256 of the stored de-identified copy (its file name) and of the file as received.
    sha256 TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    format TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    -- Levels, resolution and the kept metadata, as JSON.
    info TEXT NOT NULL,
    mpp_x DOUBLE,
    mpp_y DOUBLE,
    status TEXT NOT NULL,
    status_reason TEXT,
    ingest_id INTEGER REFERENCES slide_ingests(id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, label),
    UNIQUE (study_id, source_sha256)
);
CREATE INDEX slides_case ON slides(case_id);
CREATE INDEX slides_list ON slides(study_id, status, stain);

CREATE TABLE slide_ingests (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    actor TEXT NOT NULL,
    job_id INTEGER REFERENCES jobs(id),
    files_total INTEGER NOT NULL,
    files_ingested INTEGER NOT NULL,
    files_skipped INTEGER NOT NULL,
    files_failed INTEGER NOT NULL,
    -- Per manifest row: the slide label or the reason it failed (never a file name).
    report TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX slide_ingests_study ON slide_ingests(study_id);
