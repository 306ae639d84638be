-- Stored states are one of their enum's values. Each enum is declared with db::text_enum!, which
-- also refuses any other value when a row is read. SQLite cannot add a CHECK constraint to an
-- existing table without rebuilding it (and every table that references it), so these triggers
-- are the CHECK constraints: they refuse any other value on insert and on update.

-- studies.status: StudyStatus, src/studies/mod.rs
CREATE TRIGGER studies_status_check_insert BEFORE INSERT ON studies
WHEN NEW.status NOT IN ('draft', 'active', 'locked', 'archived')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: studies.status');
END;
CREATE TRIGGER studies_status_check_update BEFORE UPDATE OF status ON studies
WHEN NEW.status NOT IN ('draft', 'active', 'locked', 'archived')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: studies.status');
END;

-- studies.study_type: StudyType, src/studies/mod.rs
CREATE TRIGGER studies_study_type_check_insert BEFORE INSERT ON studies
WHEN NEW.study_type NOT IN ('retrospective', 'prospective', 'reader_study')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: studies.study_type');
END;
CREATE TRIGGER studies_study_type_check_update BEFORE UPDATE OF study_type ON studies
WHEN NEW.study_type NOT IN ('retrospective', 'prospective', 'reader_study')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: studies.study_type');
END;

-- jobs.status: JobStatus, src/jobs/mod.rs
CREATE TRIGGER jobs_status_check_insert BEFORE INSERT ON jobs
WHEN NEW.status NOT IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: jobs.status');
END;
CREATE TRIGGER jobs_status_check_update BEFORE UPDATE OF status ON jobs
WHEN NEW.status NOT IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: jobs.status');
END;

-- models.status: ModelStatus, src/biomarker/registry.rs
CREATE TRIGGER models_status_check_insert BEFORE INSERT ON models
WHEN NEW.status NOT IN ('active', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: models.status');
END;
CREATE TRIGGER models_status_check_update BEFORE UPDATE OF status ON models
WHEN NEW.status NOT IN ('active', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: models.status');
END;

-- analysis_plans.status: PlanStatus, src/analyses/plan.rs
CREATE TRIGGER analysis_plans_status_check_insert BEFORE INSERT ON analysis_plans
WHEN NEW.status NOT IN ('draft', 'signed', 'superseded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: analysis_plans.status');
END;
CREATE TRIGGER analysis_plans_status_check_update BEFORE UPDATE OF status ON analysis_plans
WHEN NEW.status NOT IN ('draft', 'signed', 'superseded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: analysis_plans.status');
END;

-- saved_analyses.status: SavedStatus, src/analyses/saved.rs
CREATE TRIGGER saved_analyses_status_check_insert BEFORE INSERT ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;
CREATE TRIGGER saved_analyses_status_check_update BEFORE UPDATE OF status ON saved_analyses
WHEN NEW.status NOT IN ('current', 'retired')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: saved_analyses.status');
END;

-- slides.status: SlideStatus, src/slides/mod.rs
CREATE TRIGGER slides_status_check_insert BEFORE INSERT ON slides
WHEN NEW.status NOT IN ('available', 'excluded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: slides.status');
END;
CREATE TRIGGER slides_status_check_update BEFORE UPDATE OF status ON slides
WHEN NEW.status NOT IN ('available', 'excluded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: slides.status');
END;

-- campaigns.status: CampaignStatus, src/annotations/campaigns.rs
CREATE TRIGGER campaigns_status_check_insert BEFORE INSERT ON campaigns
WHEN NEW.status NOT IN ('open', 'closed')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns.status');
END;
CREATE TRIGGER campaigns_status_check_update BEFORE UPDATE OF status ON campaigns
WHEN NEW.status NOT IN ('open', 'closed')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns.status');
END;

-- reads.status: ReadStatus, src/annotations/reads.rs
CREATE TRIGGER reads_status_check_insert BEFORE INSERT ON reads
WHEN NEW.status NOT IN ('assigned', 'draft', 'submitted', 'withdrawn')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: reads.status');
END;
CREATE TRIGGER reads_status_check_update BEFORE UPDATE OF status ON reads
WHEN NEW.status NOT IN ('assigned', 'draft', 'submitted', 'withdrawn')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: reads.status');
END;

-- cases.status: CaseStatus, src/cases/mod.rs
CREATE TRIGGER cases_status_check_insert BEFORE INSERT ON cases
WHEN NEW.status NOT IN ('screened', 'enrolled', 'excluded', 'withdrawn')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: cases.status');
END;
CREATE TRIGGER cases_status_check_update BEFORE UPDATE OF status ON cases
WHEN NEW.status NOT IN ('screened', 'enrolled', 'excluded', 'withdrawn')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: cases.status');
END;

-- study_members.role: Role, src/auth/permissions.rs
CREATE TRIGGER study_members_role_check_insert BEFORE INSERT ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;
CREATE TRIGGER study_members_role_check_update BEFORE UPDATE OF role ON study_members
WHEN NEW.role NOT IN ('manager', 'annotator', 'statistician', 'monitor')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: study_members.role');
END;

-- biomarker_results.status: ResultStatus, src/biomarker/runs.rs
CREATE TRIGGER biomarker_results_status_check_insert BEFORE INSERT ON biomarker_results
WHEN NEW.status NOT IN ('ok', 'failed')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_results.status');
END;
CREATE TRIGGER biomarker_results_status_check_update BEFORE UPDATE OF status ON biomarker_results
WHEN NEW.status NOT IN ('ok', 'failed')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: biomarker_results.status');
END;
