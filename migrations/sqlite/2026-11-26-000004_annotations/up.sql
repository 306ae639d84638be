-- Annotations: the study's annotation schema (versioned), reading campaigns, one read per
-- (campaign, slide, reader) holding its slide-level values and regions, and adjudications.
CREATE TABLE annotation_schemas (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    version INTEGER NOT NULL,
    -- JSON: {"fields": [...], "classes": [...]} (see src/annotations/schema.rs).
    definition TEXT NOT NULL,
    reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, version)
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    name TEXT NOT NULL,
    -- The first-read campaign this one re-reads after a washout, if any.
    parent_id INTEGER REFERENCES campaigns(id),
    washout_days INTEGER NOT NULL,
    blind_case_data BOOLEAN NOT NULL,
    -- JSON array of dictionary fields shown to readers when not blinded to case data.
    case_fields TEXT NOT NULL,
    -- Seed of the per-reader slide order (src/annotations/order.rs).
    seed BIGINT NOT NULL,
    -- JSON object: numeric field -> largest difference still counted as agreement.
    tolerances TEXT NOT NULL,
    adjudicator_id INTEGER REFERENCES users(id),
    status TEXT NOT NULL,
    status_reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, name)
);
CREATE INDEX campaigns_study ON campaigns(study_id);

CREATE TABLE reads (
    id INTEGER PRIMARY KEY NOT NULL,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    slide_id INTEGER NOT NULL REFERENCES slides(id),
    reader_id INTEGER NOT NULL REFERENCES users(id),
    -- 1-based place of the slide in this reader's randomised queue.
    position INTEGER NOT NULL,
    -- assigned | draft | submitted | withdrawn (reader or slide taken out of the campaign)
    status TEXT NOT NULL,
    withdrawn_reason TEXT,
    schema_version INTEGER,
    -- JSON object of slide-level values; JSON array of regions.
    field_values TEXT NOT NULL,
    regions TEXT NOT NULL,
    region_count INTEGER NOT NULL,
    started_at TIMESTAMP,
    submitted_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (campaign_id, slide_id, reader_id)
);
CREATE INDEX reads_queue ON reads(campaign_id, reader_id, position);
CREATE INDEX reads_reader ON reads(reader_id, status);

CREATE TABLE adjudications (
    id INTEGER PRIMARY KEY NOT NULL,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    slide_id INTEGER NOT NULL REFERENCES slides(id),
    field TEXT NOT NULL,
    -- The reference value as JSON.
    value TEXT NOT NULL,
    -- The readers' values it settled (JSON object reader -> value): if a read changes later
    -- (reopened), the adjudication no longer applies and the slide is open again.
    reads_values TEXT NOT NULL,
    adjudicator TEXT NOT NULL,
    note TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (campaign_id, slide_id, field)
);
