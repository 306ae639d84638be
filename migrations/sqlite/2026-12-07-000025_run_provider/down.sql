ALTER TABLE biomarker_runs DROP COLUMN provider;
