ALTER TABLE biomarker_results DROP COLUMN provider;
