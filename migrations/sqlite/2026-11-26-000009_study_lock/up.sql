-- Study locks: the SHA-256 of a canonical snapshot of the study's data, taken when it is locked;
-- closed (never deleted) when an administrator unlocks it with a reason.
CREATE TABLE study_locks (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    snapshot_sha256 TEXT NOT NULL,
    -- JSON {table: rows} of what the snapshot holds.
    row_counts TEXT NOT NULL,
    locked_by TEXT NOT NULL,
    locked_at TIMESTAMP NOT NULL,
    unlocked_by TEXT,
    unlocked_at TIMESTAMP,
    unlock_reason TEXT
);
CREATE INDEX study_locks_study ON study_locks(study_id);

-- Electronic signatures of a locked study (21 CFR 11.50, 11.70): printed name, UTC time, meaning
-- and the snapshot hash they sign; voided (never deleted) when the study is unlocked.
CREATE TABLE study_signatures (
    id INTEGER PRIMARY KEY NOT NULL,
    lock_id INTEGER NOT NULL REFERENCES study_locks(id),
    study_id INTEGER NOT NULL REFERENCES studies(id),
    username TEXT NOT NULL,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL,
    meaning TEXT NOT NULL,
    snapshot_sha256 TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    voided_at TIMESTAMP,
    void_reason TEXT
);
CREATE INDEX study_signatures_study ON study_signatures(study_id);
