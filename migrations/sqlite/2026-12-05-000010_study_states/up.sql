-- A study's status and type are one of their enum's values (StudyStatus and StudyType in
-- src/studies/mod.rs, declared with db::text_enum!, which also refuses other values on read).
-- SQLite cannot add a CHECK constraint to an existing table without rebuilding it (and every
-- table that references it), so these triggers are the CHECK: they refuse any other value on
-- insert and update.
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
