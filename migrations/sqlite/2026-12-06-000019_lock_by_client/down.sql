ALTER TABLE users DROP COLUMN locked_client;
