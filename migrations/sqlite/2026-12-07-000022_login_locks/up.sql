-- Sign-in locks, one per client address whose failures caused it (issue 22): with one lock per
-- account (users.locked_until/locked_client), a second guesser's lock replaced the first's, which
-- could then guess again. NULL client: the lock holds for every client. users.locked_until and
-- locked_client keep the latest lock, for the users page.
CREATE TABLE login_locks (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    client TEXT,
    locked_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP NOT NULL,
    -- Set by an administrator's unlock (a lock is never deleted).
    ended_at TIMESTAMP
);
CREATE INDEX login_locks_user ON login_locks(user_id);
INSERT INTO login_locks (user_id, client, locked_at, locked_until)
    SELECT id, locked_client, updated_at, locked_until FROM users WHERE locked_until IS NOT NULL;
