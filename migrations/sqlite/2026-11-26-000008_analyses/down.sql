DROP TABLE saved_analyses;
DROP TABLE analysis_plans;
