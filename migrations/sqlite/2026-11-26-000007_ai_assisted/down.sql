ALTER TABLE reads DROP COLUMN assistance;
ALTER TABLE campaigns DROP COLUMN ai_run_id;
