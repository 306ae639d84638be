-- Personal API tokens are scoped and expire (issue 22). Tokens made before this migration were
-- only ever used to read the API: they become read-only and expire 90 days after they were made.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read';
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE api_tokens SET expires_at = datetime(created_at, '+90 days');
CREATE TRIGGER api_tokens_scope_check_insert BEFORE INSERT ON api_tokens
WHEN NEW.scope NOT IN ('read', 'read_write')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: api_tokens.scope');
END;
CREATE TRIGGER api_tokens_scope_check_update BEFORE UPDATE OF scope ON api_tokens
WHEN NEW.scope NOT IN ('read', 'read_write')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: api_tokens.scope');
END;
