DROP TRIGGER api_tokens_scope_check_insert;
DROP TRIGGER api_tokens_scope_check_update;
ALTER TABLE api_tokens DROP COLUMN expires_at;
ALTER TABLE api_tokens DROP COLUMN scope;
