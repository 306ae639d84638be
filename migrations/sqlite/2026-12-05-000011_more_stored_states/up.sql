-- More stored states, checked like those of 2026-12-05-000010_stored_states: each column holds
-- one of its enum's values (declared with db::text_enum!); a nullable column may also be NULL.

-- jobs.kind: JobKind, src/jobs/kinds.rs
CREATE TRIGGER jobs_kind_check_insert BEFORE INSERT ON jobs
WHEN NEW.kind NOT IN ('audit_verify', 'slide_ingest', 'biomarker_run', 'dossier_export')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: jobs.kind');
END;
CREATE TRIGGER jobs_kind_check_update BEFORE UPDATE OF kind ON jobs
WHEN NEW.kind NOT IN ('audit_verify', 'slide_ingest', 'biomarker_run', 'dossier_export')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: jobs.kind');
END;

-- reads.assistance: Assistance, src/annotations/campaigns.rs
CREATE TRIGGER reads_assistance_check_insert BEFORE INSERT ON reads
WHEN NEW.assistance NOT IN ('unaided', 'ai_assisted')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: reads.assistance');
END;
CREATE TRIGGER reads_assistance_check_update BEFORE UPDATE OF assistance ON reads
WHEN NEW.assistance NOT IN ('unaided', 'ai_assisted')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: reads.assistance');
END;

-- study_signatures.role: Role, src/auth/permissions.rs
CREATE TRIGGER study_signatures_role_check_insert BEFORE INSERT ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;
CREATE TRIGGER study_signatures_role_check_update BEFORE UPDATE OF role ON study_signatures
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.role');
END;

-- study_signatures.meaning: Meaning, src/auth/esign.rs
CREATE TRIGGER study_signatures_meaning_check_insert BEFORE INSERT ON study_signatures
WHEN NEW.meaning NOT IN ('authorship', 'review', 'approval', 'responsibility')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.meaning');
END;
CREATE TRIGGER study_signatures_meaning_check_update BEFORE UPDATE OF meaning ON study_signatures
WHEN NEW.meaning NOT IN ('authorship', 'review', 'approval', 'responsibility')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_signatures.meaning');
END;

-- analysis_plans.signed_meaning: Meaning, src/auth/esign.rs
CREATE TRIGGER analysis_plans_signed_meaning_check_insert BEFORE INSERT ON analysis_plans
WHEN NEW.signed_meaning IS NOT NULL AND NEW.signed_meaning NOT IN ('authorship', 'review', 'approval', 'responsibility')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: analysis_plans.signed_meaning');
END;
CREATE TRIGGER analysis_plans_signed_meaning_check_update BEFORE UPDATE OF signed_meaning ON analysis_plans
WHEN NEW.signed_meaning IS NOT NULL AND NEW.signed_meaning NOT IN ('authorship', 'review', 'approval', 'responsibility')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: analysis_plans.signed_meaning');
END;

-- slides.format: SlideFormat, src/slides/mod.rs
CREATE TRIGGER slides_format_check_insert BEFORE INSERT ON slides
WHEN NEW.format NOT IN ('aperio-svs', 'generic-tiff', 'ome-tiff', 'png', 'jpeg')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: slides.format');
END;
CREATE TRIGGER slides_format_check_update BEFORE UPDATE OF format ON slides
WHEN NEW.format NOT IN ('aperio-svs', 'generic-tiff', 'ome-tiff', 'png', 'jpeg')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: slides.format');
END;

-- models.checked_backend: BackendKind, src/biomarker/engine.rs
CREATE TRIGGER models_checked_backend_check_insert BEFORE INSERT ON models
WHEN NEW.checked_backend NOT IN ('onnxruntime', 'tract')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: models.checked_backend');
END;
CREATE TRIGGER models_checked_backend_check_update BEFORE UPDATE OF checked_backend ON models
WHEN NEW.checked_backend NOT IN ('onnxruntime', 'tract')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: models.checked_backend');
END;

-- biomarker_runs.backend: BackendKind, src/biomarker/engine.rs
CREATE TRIGGER biomarker_runs_backend_check_insert BEFORE INSERT ON biomarker_runs
WHEN NEW.backend IS NOT NULL AND NEW.backend NOT IN ('onnxruntime', 'tract')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_runs.backend');
END;
CREATE TRIGGER biomarker_runs_backend_check_update BEFORE UPDATE OF backend ON biomarker_runs
WHEN NEW.backend IS NOT NULL AND NEW.backend NOT IN ('onnxruntime', 'tract')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_runs.backend');
END;

-- biomarker_results.phenotype: Phenotype, src/biomarker/runs.rs
CREATE TRIGGER biomarker_results_phenotype_check_insert BEFORE INSERT ON biomarker_results
WHEN NEW.phenotype IS NOT NULL AND NEW.phenotype NOT IN ('inflamed', 'excluded', 'desert')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_results.phenotype');
END;
CREATE TRIGGER biomarker_results_phenotype_check_update BEFORE UPDATE OF phenotype ON biomarker_results
WHEN NEW.phenotype IS NOT NULL AND NEW.phenotype NOT IN ('inflamed', 'excluded', 'desert')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_results.phenotype');
END;

-- dictionary_fields.field_type: FieldType, src/cases/dictionary.rs
CREATE TRIGGER dictionary_fields_field_type_check_insert BEFORE INSERT ON dictionary_fields
WHEN NEW.field_type NOT IN ('text', 'notes', 'dropdown', 'radio', 'yesno', 'truefalse', 'checkbox', 'descriptive', 'calc', 'slider', 'file', 'sql')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: dictionary_fields.field_type');
END;
CREATE TRIGGER dictionary_fields_field_type_check_update BEFORE UPDATE OF field_type ON dictionary_fields
WHEN NEW.field_type NOT IN ('text', 'notes', 'dropdown', 'radio', 'yesno', 'truefalse', 'checkbox', 'descriptive', 'calc', 'slider', 'file', 'sql')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: dictionary_fields.field_type');
END;

-- dictionary_fields.deid_action: DeidAction, src/cases/dictionary.rs
CREATE TRIGGER dictionary_fields_deid_action_check_insert BEFORE INSERT ON dictionary_fields
WHEN NEW.deid_action NOT IN ('keep', 'drop', 'pseudonymise', 'shift-date', 'year-only', 'generalise')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: dictionary_fields.deid_action');
END;
CREATE TRIGGER dictionary_fields_deid_action_check_update BEFORE UPDATE OF deid_action ON dictionary_fields
WHEN NEW.deid_action NOT IN ('keep', 'drop', 'pseudonymise', 'shift-date', 'year-only', 'generalise')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: dictionary_fields.deid_action');
END;

-- case_imports.encoding: Encoding, src/cases/decode.rs
CREATE TRIGGER case_imports_encoding_check_insert BEFORE INSERT ON case_imports
WHEN NEW.encoding NOT IN ('utf-8', 'cp949', 'latin-1')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: case_imports.encoding');
END;
CREATE TRIGGER case_imports_encoding_check_update BEFORE UPDATE OF encoding ON case_imports
WHEN NEW.encoding NOT IN ('utf-8', 'cp949', 'latin-1')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: case_imports.encoding');
END;
