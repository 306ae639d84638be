-- Single sign-on with OpenID Connect (issue 22): the provider's subject an account is bound to
-- (`issuer|sub`, set at the first SSO sign-in), whether the account's local password signs in,
-- and when a session last re-authenticated at the provider (an e-signature by an account
-- without a local password).
ALTER TABLE users ADD COLUMN sso_subject TEXT;
CREATE UNIQUE INDEX users_sso_subject ON users(sso_subject) WHERE sso_subject IS NOT NULL;
ALTER TABLE users ADD COLUMN password_login BOOLEAN NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN reauthenticated_at TIMESTAMP;
