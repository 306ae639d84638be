-- Biomarker runs: one model version over a study's slides, as a job; one result per slide
-- (UNIQUE: a resumed run never duplicates one).
CREATE TABLE biomarker_runs (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    model_id INTEGER NOT NULL REFERENCES models(id),
    model_sha256 TEXT NOT NULL,
    -- The backend that ran it (set when the job starts) and the pipeline options (JSON).
    backend TEXT,
    params TEXT NOT NULL,
    -- JSON array of slide ids, fixed at the start.
    slide_ids TEXT NOT NULL,
    job_id INTEGER REFERENCES jobs(id),
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX biomarker_runs_study ON biomarker_runs(study_id);

CREATE TABLE biomarker_results (
    id INTEGER PRIMARY KEY NOT NULL,
    run_id INTEGER NOT NULL REFERENCES biomarker_runs(id),
    slide_id INTEGER NOT NULL REFERENCES slides(id),
    -- ok | failed
    status TEXT NOT NULL,
    reason TEXT,
    phenotype TEXT,
    inflamed_share DOUBLE,
    excluded_share DOUBLE,
    desert_share DOUBLE,
    itil_density_median DOUBLE,
    stil_density_median DOUBLE,
    grid_cells_scored INTEGER,
    tiles INTEGER,
    flags TEXT NOT NULL,
    -- The heatmap: JSON {cell_px, cells: [[col, row, class], …]} of the scored grid cells.
    cells TEXT NOT NULL,
    seconds DOUBLE NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (run_id, slide_id)
);
