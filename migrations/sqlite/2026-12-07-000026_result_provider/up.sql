-- The execution provider each slide's result was computed on (the worker that did it: a run's
-- slides may be shared by workers on different providers).
ALTER TABLE biomarker_results ADD COLUMN provider TEXT;
