-- The ONNX Runtime execution provider a run's lead worker used (cuda, cpu): EVIDENTIA_ORT_PROVIDERS.
ALTER TABLE biomarker_runs ADD COLUMN provider TEXT;
