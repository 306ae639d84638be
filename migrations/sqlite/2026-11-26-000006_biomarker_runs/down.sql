DROP TABLE biomarker_results;
DROP TABLE biomarker_runs;
