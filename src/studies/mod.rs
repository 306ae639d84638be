//! Studies: their details, the lifecycle `draft → active → locked → archived`, and the rules
//! that go with it (a locked or archived study's data cannot change).

pub mod lock;
pub mod members;
pub mod sites;
pub mod snapshot;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action, Chain, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{studies, study_members};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};
use crate::export::CsvRecord;

/// A study's id. Only the database gives one (a study's row, or a row that belongs to a study),
/// never a number from a request: a domain function that takes a `StudyId` gets it from a
/// checked `StudyAccess`, and it cannot be swapped with the id of a slide, a case or a read.
///
/// ```no_run
/// # fn f(conn: &mut evidentia::db::Conn) -> evidentia::error::Result<()> {
/// let study = evidentia::studies::get_by_code(conn, "LUNG-IO-01")?;
/// let ingests = evidentia::slides::ingest::ingests(conn, study.id)?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// # fn f(conn: &mut evidentia::db::Conn) -> evidentia::error::Result<()> {
/// let ingests = evidentia::slides::ingest::ingests(conn, 1)?; // a number is no study's id
/// # Ok(()) }
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Integer)]
pub struct StudyId(i32);

impl StudyId {
    /// The number, for a file name, a log line or an audit record.
    pub fn get(self) -> i32 {
        self.0
    }

    /// Any id, for unit tests and fuzz targets (`tools/fuzz`) of code that only carries it.
    #[doc(hidden)]
    pub fn for_tests(id: i32) -> StudyId {
        StudyId(id)
    }
}

impl std::fmt::Display for StudyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> serde::Deserialize<'de> for StudyId {
    /// For the files the server writes itself (an import's preview), never for request input.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        i32::deserialize(d).map(StudyId)
    }
}

impl serde::Serialize for StudyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Integer, DB> for StudyId
where
    DB: diesel::backend::Backend,
    i32: diesel::deserialize::FromSql<diesel::sql_types::Integer, DB>,
{
    fn from_sql(value: <DB as diesel::backend::Backend>::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        <i32 as diesel::deserialize::FromSql<diesel::sql_types::Integer, DB>>::from_sql(value).map(StudyId)
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Integer, DB> for StudyId
where
    DB: diesel::backend::Backend,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
        <i32 as diesel::serialize::ToSql<diesel::sql_types::Integer, DB>>::to_sql(&self.0, out)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = studies)]
pub struct Study {
    pub id: StudyId,
    pub code: String,
    pub title: String,
    pub indication: String,
    pub biomarker: String,
    pub study_type: StudyType,
    pub protocol_version: String,
    pub description: String,
    pub status: StudyStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Members reach the study only with two-factor sign-in set up (an access setting, not study
    /// data: it may change after the lock and is not in its snapshot).
    pub require_mfa: bool,
}

impl CsvRecord for Study {
    const HEADER: &'static [&'static str] = &[
        "code",
        "title",
        "indication",
        "biomarker",
        "study_type",
        "protocol_version",
        "status",
        "created_at",
        "updated_at",
    ];
    fn record(&self) -> Vec<String> {
        vec![
            self.code.clone(),
            self.title.clone(),
            self.indication.clone(),
            self.biomarker.clone(),
            self.study_type.to_string(),
            self.protocol_version.clone(),
            self.status.to_string(),
            self.created_at.to_string(),
            self.updated_at.to_string(),
        ]
    }
}

impl Study {
    pub fn chain(&self) -> Chain<'_> {
        Chain::Study { id: self.id, code: &self.code }
    }
    pub fn status(&self) -> StudyStatus {
        self.status
    }
    /// Errors unless the study's data may change (draft or active).
    pub fn ensure_editable(&self) -> Result<()> {
        match self.status() {
            StudyStatus::Draft | StudyStatus::Active => Ok(()),
            s => Err(Error::Conflict(format!("study {} is {}: its data cannot change", self.code, s.as_str()))),
        }
    }
    fn details_json(&self) -> serde_json::Value {
        json!({
            "code": self.code, "title": self.title, "indication": self.indication,
            "biomarker": self.biomarker, "study_type": self.study_type,
            "protocol_version": self.protocol_version, "description": self.description,
        })
    }
}

/// A study code: 3–32 of `A-Z 0-9 -`, starting with a letter (e.g. `LUNG-IO-01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyCode(String);

impl StudyCode {
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim().to_uppercase();
        let ok = (3..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            && !s.ends_with('-');
        if ok {
            Ok(StudyCode(s))
        } else {
            Err(Error::invalid("code", "3–32 characters: capital letters, digits and '-', starting with a letter"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::db::text_enum! {
    /// What kind of study it is (the protocol's design).
    pub enum StudyType {
        Retrospective = "retrospective",
        Prospective = "prospective",
        ReaderStudy = "reader_study",
    }
}

impl StudyType {
    pub fn label(&self) -> &'static str {
        match self {
            StudyType::Retrospective => "Retrospective",
            StudyType::Prospective => "Prospective",
            StudyType::ReaderStudy => "Reader study",
        }
    }
}

crate::db::text_enum! {
    /// Where a study is in its life: draft → active → locked → archived (TRANSITIONS).
    pub enum StudyStatus {
        Draft = "draft",
        Active = "active",
        Locked = "locked",
        Archived = "archived",
    }
}

/// A lifecycle step, with who may take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: StudyStatus,
    pub to: StudyStatus,
    pub admin_only: bool,
    pub needs_reason: bool,
    pub label: &'static str,
}

pub const TRANSITIONS: [Transition; 5] = [
    Transition {
        from: StudyStatus::Draft,
        to: StudyStatus::Active,
        admin_only: false,
        needs_reason: false,
        label: "Activate",
    },
    Transition {
        from: StudyStatus::Draft,
        to: StudyStatus::Archived,
        admin_only: false,
        needs_reason: true,
        label: "Archive",
    },
    Transition {
        from: StudyStatus::Active,
        to: StudyStatus::Locked,
        admin_only: false,
        needs_reason: false,
        label: "Lock",
    },
    Transition {
        from: StudyStatus::Locked,
        to: StudyStatus::Archived,
        admin_only: false,
        needs_reason: false,
        label: "Archive",
    },
    Transition {
        from: StudyStatus::Locked,
        to: StudyStatus::Active,
        admin_only: true,
        needs_reason: true,
        label: "Unlock (back to active)",
    },
];

/// The steps this actor may take from the study's current status.
pub fn available_transitions(access: &StudyAccess) -> Vec<Transition> {
    let from = access.study.status();
    TRANSITIONS
        .into_iter()
        .filter(|t| t.from == from && access.can(Permission::ChangeStatus) && (!t.admin_only || access.is_admin))
        .collect()
}

/// The editable details of a study, as submitted by a form or the CLI.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct StudyInput {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub indication: String,
    #[serde(default)]
    pub biomarker: String,
    #[serde(default)]
    pub study_type: String,
    #[serde(default)]
    pub protocol_version: String,
    #[serde(default)]
    pub description: String,
}

/// The editable columns, shared by create and update.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = studies)]
struct StudyDetails<'a> {
    title: &'a str,
    indication: &'a str,
    biomarker: &'a str,
    study_type: &'a str,
    protocol_version: &'a str,
    description: &'a str,
}

impl StudyInput {
    fn details(&self, study_type: StudyType) -> StudyDetails<'_> {
        StudyDetails {
            title: self.title.trim(),
            indication: self.indication.trim(),
            biomarker: self.biomarker.trim(),
            study_type: study_type.as_str(),
            protocol_version: self.protocol_version.trim(),
            description: self.description.trim(),
        }
    }

    /// Checks every field, collecting all errors.
    fn validate(&self, check_code: bool) -> Result<(Option<StudyCode>, StudyType)> {
        let mut errors = FieldErrors::default();
        let code = if check_code {
            match StudyCode::parse(&self.code) {
                Ok(c) => Some(c),
                Err(_) => {
                    errors.add("code", "3–32 characters: capital letters, digits and '-', starting with a letter");
                    None
                }
            }
        } else {
            None
        };
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            errors.add("title", "required, at most 200 characters");
        }
        for (field, value, max) in [
            ("indication", &self.indication, 200),
            ("biomarker", &self.biomarker, 200),
            ("protocol_version", &self.protocol_version, 50),
            ("description", &self.description, 5000),
        ] {
            if value.chars().count() > max {
                errors.add(field, format!("at most {max} characters"));
            }
        }
        let study_type =
            StudyType::parse(if self.study_type.trim().is_empty() { "retrospective" } else { &self.study_type });
        if study_type.is_none() {
            errors.add("study_type", "must be retrospective, prospective or reader_study");
        }
        errors.into_result()?;
        Ok((code, study_type.unwrap_or(StudyType::Retrospective)))
    }
}

pub fn get_by_code(conn: &mut Conn, code: &str) -> Result<Study> {
    studies::table
        .filter(studies::code.eq(code))
        .select(Study::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// Creates a study in `draft` (admins only).
pub fn create(conn: &mut Conn, actor: &Actor, input: &StudyInput) -> Result<Study> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators create studies"));
    }
    let (code, study_type) = input.validate(true)?;
    let code = code.ok_or(Error::NotFound)?;
    write_tx(conn, |conn| {
        if get_by_code(conn, code.as_str()).is_ok() {
            return Err(Error::invalid("code", format!("a study with code {} already exists", code.as_str())));
        }
        let t = now();
        diesel::insert_into(studies::table)
            .values((
                studies::code.eq(code.as_str()),
                input.details(study_type),
                studies::status.eq(StudyStatus::Draft.as_str()),
                studies::created_at.eq(t),
                studies::updated_at.eq(t),
            ))
            .execute(conn)?;
        let study = get_by_code(conn, code.as_str())?;
        let mut new = study.details_json();
        new["status"] = json!(study.status);
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Create, Entity::Study, &study.code).after(new),
        )?;
        Ok(study)
    })
}

/// Edits a study's details (the code never changes).
pub fn update(conn: &mut Conn, actor: &Actor, access: &StudyAccess, input: &StudyInput) -> Result<Study> {
    access.require(Permission::EditStudy)?;
    let (_, study_type) = input.validate(false)?;
    write_tx(conn, |conn| {
        let before = get_by_code(conn, &access.study.code)?;
        before.ensure_editable()?;
        diesel::update(studies::table.find(before.id))
            .set((input.details(study_type), studies::updated_at.eq(now())))
            .execute(conn)?;
        let after = get_by_code(conn, &before.code)?;
        let (old, new) = audit::diff(&before.details_json(), &after.details_json());
        if new.as_object().is_some_and(|m| !m.is_empty()) {
            audit::record(
                conn,
                Change::new(after.chain(), &actor.name, Action::Update, Entity::Study, &after.code)
                    .before(old)
                    .after(new),
            )?;
        }
        Ok(after)
    })
}

/// Requires two-factor sign-in of the study's members (or no longer does): an access setting,
/// so it may change at any stage, a locked study too. Audited on the study's chain.
pub fn set_require_mfa(conn: &mut Conn, actor: &Actor, access: &StudyAccess, on: bool) -> Result<Study> {
    access.require(Permission::ManageMembers)?;
    write_tx(conn, |conn| {
        let before = get_by_code(conn, &access.study.code)?;
        if before.require_mfa == on {
            return Ok(before);
        }
        diesel::update(studies::table.find(before.id)).set(studies::require_mfa.eq(on)).execute(conn)?;
        audit::record(
            conn,
            Change::new(before.chain(), &actor.name, Action::Update, Entity::Study, &before.code)
                .before(json!({"require_mfa": before.require_mfa}))
                .after(json!({"require_mfa": on})),
        )?;
        get_by_code(conn, &before.code)
    })
}

/// Moves a study along its lifecycle, if the step exists and the actor may take it.
pub fn transition(conn: &mut Conn, actor: &Actor, access: &StudyAccess, to: &str, reason: &str) -> Result<Study> {
    access.require(Permission::ChangeStatus)?;
    let to = StudyStatus::parse(to).ok_or_else(|| Error::invalid("to", "unknown status"))?;
    write_tx(conn, |conn| {
        let study = get_by_code(conn, &access.study.code)?;
        let from = study.status();
        let step = TRANSITIONS
            .into_iter()
            .find(|t| t.from == from && t.to == to)
            .ok_or_else(|| Error::Conflict(format!("a {} study cannot become {}", from.as_str(), to.as_str())))?;
        if step.admin_only && !access.is_admin {
            return Err(Error::forbidden("only an administrator can take a locked study back to active"));
        }
        let reason = reason.trim();
        if step.needs_reason && reason.is_empty() {
            return Err(Error::invalid("reason", "a reason is required for this change"));
        }
        // The pre-lock checklist: a manager locks only when it is complete; an administrator may
        // lock with open items, giving a reason (both recorded in the audit trail).
        let open: Vec<String> = if to == StudyStatus::Locked {
            lock::checklist(conn, study.id)?
                .into_iter()
                .filter(lock::Check::blocks)
                .map(|c| format!("{} ({})", c.label, c.detail))
                .collect()
        } else {
            Vec::new()
        };
        if !open.is_empty() && !access.is_admin {
            return Err(Error::Conflict(format!(
                "not locked: the pre-lock checklist has open items: {}",
                open.join("; ")
            )));
        }
        if !open.is_empty() && reason.is_empty() {
            return Err(Error::invalid("reason", "locking with open checklist items needs a reason"));
        }
        diesel::update(studies::table.find(study.id))
            .set((studies::status.eq(to.as_str()), studies::updated_at.eq(now())))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Status, Entity::Study, &study.code)
                .before(json!({"status": from.as_str()}))
                .after(json!({"status": to.as_str()}))
                .because_opt((!reason.is_empty()).then_some(reason)),
        )?;
        // Locking records the data's snapshot hash; unlocking voids the signatures.
        if to == StudyStatus::Locked {
            let closed = lock::close_campaigns(conn, actor, &study)?;
            lock::record_lock(conn, actor, &study, &open, &closed)?;
        } else if from == StudyStatus::Locked && to == StudyStatus::Active {
            lock::record_unlock(conn, actor, &study, reason)?;
        }
        get_by_code(conn, &study.code)
    })
}

/// List options from the study list page.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StudyListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    /// Archived studies are hidden unless asked for.
    #[serde(default)]
    pub archived: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

impl StudyListQuery {
    pub fn show_archived(&self) -> bool {
        matches!(self.archived.as_deref(), Some("1") | Some("on") | Some("true"))
    }
}

/// The studies an actor may see: all for admins, else those they are a member of.
pub fn list_visible(conn: &mut Conn, actor: &Actor, q: &StudyListQuery, page: PageRequest) -> Result<Page<Study>> {
    let member_of: Vec<i32> = match (actor.is_admin, actor.user_id) {
        (true, _) => Vec::new(),
        (false, Some(uid)) => study_members::table
            .filter(study_members::user_id.eq(uid))
            .filter(study_members::retired_at.is_null())
            .select(study_members::study_id)
            .load(conn)?,
        (false, None) => Vec::new(),
    };
    let pattern = format!("%{}%", q.q.trim());
    let build = || {
        use crate::db::lower;
        let mut b = studies::table.into_boxed();
        if !actor.is_admin {
            b = b.filter(studies::id.eq_any(member_of.clone()));
        }
        if !q.q.trim().is_empty() {
            b = b.filter(
                lower(studies::code)
                    .like(lower(pattern.clone()))
                    .or(lower(studies::title).like(lower(pattern.clone())))
                    .or(lower(studies::indication).like(lower(pattern.clone())))
                    .or(lower(studies::biomarker).like(lower(pattern.clone()))),
            );
        }
        if !q.show_archived() {
            b = b.filter(studies::status.ne(StudyStatus::Archived.as_str()));
        }
        b
    };
    let total = build().count().get_result(conn)?;
    let desc = q.dir == "desc";
    let ordered = match (q.sort.as_str(), desc) {
        ("title", false) => build().order(studies::title.asc()),
        ("title", true) => build().order(studies::title.desc()),
        ("status", false) => build().order((studies::status.asc(), studies::code.asc())),
        ("status", true) => build().order((studies::status.desc(), studies::code.asc())),
        ("updated", false) => build().order(studies::updated_at.asc()),
        ("updated", true) => build().order(studies::updated_at.desc()),
        (_, true) => build().order(studies::code.desc()),
        _ => build().order(studies::code.asc()),
    };
    let items = ordered.limit(page.per_page).offset(page.offset()).select(Study::as_select()).load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_codes_are_validated_and_upper_cased() {
        assert_eq!(StudyCode::parse(" lung-io-01 ").unwrap().as_str(), "LUNG-IO-01");
        for bad in ["", "AB", "1ABC", "A B C", "ABC-", "ÄBC", &"A".repeat(33)] {
            assert!(StudyCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_transitions_exist() {
        let ok = |f, t| TRANSITIONS.iter().any(|x| x.from == f && x.to == t);
        assert!(ok(StudyStatus::Draft, StudyStatus::Active));
        assert!(ok(StudyStatus::Locked, StudyStatus::Active));
        assert!(!ok(StudyStatus::Archived, StudyStatus::Active));
        assert!(!ok(StudyStatus::Active, StudyStatus::Draft));
    }

    #[test]
    fn stored_states_map_to_and_from_their_text() {
        for s in StudyStatus::ALL {
            assert_eq!(StudyStatus::parse(s.as_str()), Some(s));
        }
        for t in StudyType::ALL {
            assert_eq!(StudyType::parse(t.as_str()), Some(t));
        }
        assert_eq!(StudyStatus::parse("Draft"), None, "the stored text is exact");
    }

    /// A fresh database holding one draft study, created the way the application does.
    fn one_study() -> (Conn, Study) {
        use diesel::Connection;
        use diesel_migrations::MigrationHarness;
        let mut conn = Conn::establish(":memory:").unwrap();
        conn.run_pending_migrations(crate::db::MIGRATIONS).unwrap();
        let input = StudyInput { code: "ABC-1".into(), title: "A study".into(), ..Default::default() };
        let study = create(&mut conn, &Actor::cli_operator(), &input).unwrap();
        (conn, study)
    }

    #[test]
    fn the_database_refuses_a_status_or_type_that_is_not_one() {
        let (mut conn, study) = one_study();
        assert_eq!(study.status, StudyStatus::Draft);
        for sql in [
            "UPDATE studies SET status = 'bogus'",
            "UPDATE studies SET study_type = 'anecdotal'",
            "INSERT INTO studies (code, title, indication, biomarker, study_type, protocol_version, \
             description, status, created_at, updated_at) VALUES ('X-2', 't', '', '', 'retrospective', \
             '', '', 'Draft', '2026-01-01', '2026-01-01')",
        ] {
            let e = diesel::sql_query(sql).execute(&mut conn).unwrap_err();
            assert!(e.to_string().contains("CHECK constraint failed"), "{sql}: {e}");
        }
        assert_eq!(get_by_code(&mut conn, "ABC-1").unwrap().status, StudyStatus::Draft, "unchanged");
    }

    #[test]
    fn an_unknown_stored_status_is_an_error_not_a_draft() {
        let (mut conn, _) = one_study();
        // Written past the triggers (as a damaged or hand-edited database would hold it).
        diesel::sql_query("DROP TRIGGER studies_status_check_update").execute(&mut conn).unwrap();
        diesel::sql_query("UPDATE studies SET status = 'frozen'").execute(&mut conn).unwrap();
        let e = get_by_code(&mut conn, "ABC-1").unwrap_err();
        assert!(e.to_string().contains("'frozen'") || format!("{e:?}").contains("'frozen'"), "{e:?}");
    }
}
