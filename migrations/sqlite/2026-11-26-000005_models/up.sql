-- The model registry: ONNX files stored content-addressed under the data dir (models/<sha256>.onnx)
-- with their model card. A version never changes; it can be retired with a reason.
CREATE TABLE models (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    -- The model card as registered (JSON).
    card TEXT NOT NULL,
    -- The backend that loaded and checked it at registration.
    checked_backend TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    registered_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (name, version)
);
