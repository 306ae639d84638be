-- Foundation: accounts, sessions, API tokens, studies, sites, members, audit trail, jobs.
CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT 1,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    first_failed_at TIMESTAMP,
    locked_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE studies (
    id INTEGER PRIMARY KEY NOT NULL,
    code TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    indication TEXT NOT NULL,
    biomarker TEXT NOT NULL,
    study_type TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE sites (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    irb_reference TEXT NOT NULL,
    irb_approval_date DATE,
    retired_at TIMESTAMP,
    retired_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, code)
);

CREATE TABLE study_members (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    retired_at TIMESTAMP,
    retired_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (study_id, user_id)
);
CREATE INDEX study_members_user ON study_members(user_id);

-- Append-only, hash-chained: one chain per study plus the system chain (chain = 'system').
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY NOT NULL,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    study_id INTEGER REFERENCES studies(id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_events_study ON audit_events(study_id);

-- The newest event of every chain, updated in the same transaction: removing the last event shows.
CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY NOT NULL,
    study_id INTEGER REFERENCES studies(id),
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    checkpoint TEXT,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    cancel_requested BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_study ON jobs(study_id);
