ALTER TABLE sessions DROP COLUMN reauthenticated_at;
ALTER TABLE users DROP COLUMN password_login;
DROP INDEX users_sso_subject;
ALTER TABLE users DROP COLUMN sso_subject;
