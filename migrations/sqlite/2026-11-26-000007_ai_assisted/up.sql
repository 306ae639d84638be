-- AI-assisted reading: a campaign may show its readers a biomarker run's results (phenotype,
-- scores, heatmap) while they read; every read records whether it was read with the AI.
ALTER TABLE campaigns ADD COLUMN ai_run_id INTEGER REFERENCES biomarker_runs(id);
-- unaided | ai_assisted
ALTER TABLE reads ADD COLUMN assistance TEXT NOT NULL DEFAULT 'unaided';
