-- Statistical analysis plans: versioned per study. A draft is edited by statisticians; signing it
-- freezes it (a signed version is never updated again, except to mark it superseded by the next).
CREATE TABLE analysis_plans (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    version INTEGER NOT NULL,
    -- JSON array of {key, role, title, query, criterion: {metric, op, value} | null}
    items TEXT NOT NULL,
    -- draft | signed | superseded
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    signed_by TEXT,
    signed_name TEXT,
    signed_meaning TEXT,
    signed_at TIMESTAMP,
    UNIQUE (study_id, version)
);

-- Saved analyses: the parameters and data sources (as the query string of the analysis page),
-- the SHA-256 of the exact input dataset (its CSV), the results, the plot and the software
-- version, frozen. Retired with a reason, never deleted.
CREATE TABLE saved_analyses (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    title TEXT NOT NULL,
    analysis TEXT NOT NULL,
    query TEXT NOT NULL,
    plan_id INTEGER REFERENCES analysis_plans(id),
    plan_item TEXT,
    input_sha256 TEXT NOT NULL,
    input_rows INTEGER NOT NULL,
    result TEXT NOT NULL,
    plot_svg TEXT NOT NULL,
    software_version TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX saved_analyses_study ON saved_analyses(study_id);
