-- saved_analyses.analysis: the name of an analysis the statistics engine describes
-- (analyses::AnalysisName, src/analyses/mod.rs; the names are those of stats::analysis::Analysis),
-- checked like the states of 2026-12-05-000010_stored_states.
CREATE TRIGGER saved_analyses_analysis_check_insert BEFORE INSERT ON saved_analyses
WHEN NEW.analysis NOT IN ('kappa', 'fleiss', 'icc', 'diagnostic', 'roc', 'roc-compare', 'survival', 'cox', 'bland-altman', 'table1', 'paired-agreement')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.analysis');
END;
CREATE TRIGGER saved_analyses_analysis_check_update BEFORE UPDATE OF analysis ON saved_analyses
WHEN NEW.analysis NOT IN ('kappa', 'fleiss', 'icc', 'diagnostic', 'roc', 'roc-compare', 'survival', 'cox', 'bland-altman', 'table1', 'paired-agreement')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.analysis');
END;
