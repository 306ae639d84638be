-- A lockout holds for the client address whose failures caused it (issue 22: anyone could lock
-- the well-known `admin` account out for everyone). NULL: for every client (failures where the
-- client is not known, such as e-signature prompts; and locks made before this migration).
ALTER TABLE users ADD COLUMN locked_client TEXT;
