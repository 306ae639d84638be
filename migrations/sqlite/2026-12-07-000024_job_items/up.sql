-- Work items (issue 23): a job that fans out (an AI run: one item per slide) is shared by every
-- worker, on any machine; each item is claimed by one worker, beats its own heartbeat and goes
-- back to the queue when its worker dies.
CREATE TABLE job_items (
    id INTEGER PRIMARY KEY NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    item INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    worker TEXT,
    heartbeat_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    finished_at TIMESTAMP,
    UNIQUE (job_id, item)
);
CREATE INDEX job_items_by_status ON job_items(status, job_id, id);
