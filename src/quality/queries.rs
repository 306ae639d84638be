//! Queries (REDCap's Data Resolution Workflow, OpenClinica's discrepancy notes): a monitor or
//! manager asks about one field value of a subject — by hand, or from a data quality finding —
//! and the site answers, changing the value where asked (in the answer's transaction, with the
//! reason every change needs); the monitor closes the query or reopens it. Each step is a message
//! (scrubbed like any free text) and an audit event. A query that *requires a change* cannot be
//! closed while the value is what it was when the query was opened. Open and answered queries
//! block the lock.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, SiteScope, StudyAccess};
use crate::auth::Actor;
use crate::cases::deid::EditDeid;
use crate::cases::dictionary::{self, value_text};
use crate::cases::{self, ChangeReason};
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{cases as cases_t, quality_findings, queries, query_messages, sites};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, OptionalExt, Result};
use crate::export::{time_cell, CsvRecord};
use crate::studies::StudyId;

crate::db::text_enum! {
    /// A query: waiting for the site (open), waiting for the monitor (answered), or closed.
    pub enum QueryStatus {
        Open = "open",
        Answered = "answered",
        Closed = "closed",
    }
}

crate::db::text_enum! {
    /// One step of a query's thread.
    pub enum Step {
        Open = "open",
        Answer = "answer",
        Close = "close",
        Reopen = "reopen",
    }
}

/// A query with its subject and site.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = queries)]
pub struct Query {
    pub id: i32,
    #[diesel(select_expression = cases_t::display_id)]
    pub case: String,
    #[diesel(select_expression = sites::code)]
    pub site: String,
    pub event: String,
    pub instance: i32,
    pub field: String,
    pub finding_id: Option<i32>,
    pub status: QueryStatus,
    pub requires_change: bool,
    pub value_at_open: String,
    pub opened_by: String,
    pub opened_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub closed_by: Option<String>,
    pub closed_at: Option<NaiveDateTime>,
}

impl Query {
    /// Days since it was opened (to its closing, once closed).
    pub fn age_days(&self, at: NaiveDateTime) -> i64 {
        (self.closed_at.unwrap_or(at) - self.opened_at).num_days()
    }
    pub fn is_closed(&self) -> bool {
        self.status == QueryStatus::Closed
    }
}

impl CsvRecord for Query {
    const HEADER: &'static [&'static str] = &[
        "query",
        "subject",
        "site",
        "event",
        "instance",
        "field",
        "finding",
        "status",
        "requires_change",
        "value_at_open",
        "opened_by",
        "opened_at",
        "updated_at",
        "closed_by",
        "closed_at",
        "age_days",
    ];
    fn record(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.case.clone(),
            self.site.clone(),
            self.event.clone(),
            if self.instance > 0 { self.instance.to_string() } else { String::new() },
            self.field.clone(),
            self.finding_id.map(|f| f.to_string()).unwrap_or_default(),
            self.status.to_string(),
            if self.requires_change { "yes" } else { "no" }.into(),
            self.value_at_open.clone(),
            self.opened_by.clone(),
            time_cell(Some(self.opened_at)),
            time_cell(Some(self.updated_at)),
            self.closed_by.clone().unwrap_or_default(),
            time_cell(self.closed_at),
            self.age_days(now()).to_string(),
        ]
    }
}

/// One message of a query's thread.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = query_messages)]
pub struct Message {
    pub id: i32,
    pub step: Step,
    pub body: String,
    /// The field's value after an answer that changed it.
    pub value: Option<String>,
    pub actor: String,
    pub at: NaiveDateTime,
}

/// A query as the monitor opens it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    pub case: String,
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
    /// Present (a ticked box) when closing needs the value changed.
    #[serde(default)]
    pub requires_change: Option<String>,
    /// The data quality finding it comes from.
    #[serde(default)]
    pub finding: Option<i32>,
}

/// A step as a person sends it: a message, and for an answer optionally the field's new value
/// with the reason for the change.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StepInput {
    #[serde(default)]
    pub message: String,
    /// The new value (an answer that changes the value); absent or empty leaves it.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, rename = "_reason")]
    pub reason: String,
    #[serde(default, rename = "_reason_details")]
    pub reason_details: String,
}

/// Filters of the query list; empty means any.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct QueryFilter {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub case: String,
    #[serde(default)]
    pub field: String,
    pub page: Option<i64>,
}

/// A page of queries, the oldest open first; of the sites of `scope`.
pub fn list(
    conn: &mut Conn,
    study_id: StudyId,
    scope: &SiteScope,
    filter: &QueryFilter,
    page: PageRequest,
) -> Result<Page<Query>> {
    let query = || {
        let mut q = queries::table
            .inner_join(cases_t::table.inner_join(sites::table))
            .filter(queries::study_id.eq(study_id))
            .into_boxed();
        if let Some(ids) = scope.ids() {
            q = q.filter(cases_t::site_id.eq_any(ids.to_vec()));
        }
        match filter.status.trim() {
            // "unresolved": open or answered.
            "unresolved" => q = q.filter(queries::status.ne(QueryStatus::Closed)),
            s => {
                if let Some(s) = QueryStatus::parse(s) {
                    q = q.filter(queries::status.eq(s));
                }
            }
        }
        if !filter.site.trim().is_empty() {
            q = q.filter(sites::code.eq(filter.site.trim().to_string()));
        }
        if !filter.case.trim().is_empty() {
            q = q.filter(cases_t::display_id.eq(filter.case.trim().to_string()));
        }
        if !filter.field.trim().is_empty() {
            q = q.filter(queries::field.eq(filter.field.trim().to_string()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    let items = query()
        .order((queries::opened_at, queries::id))
        .select(Query::as_select())
        .limit(page.per_page)
        .offset(page.offset())
        .load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

/// A query of the study: 404 when its subject's site is outside `scope`.
pub fn get(conn: &mut Conn, study_id: StudyId, scope: &SiteScope, id: i32) -> Result<Query> {
    let (q, site_id): (Query, i32) = queries::table
        .inner_join(cases_t::table.inner_join(sites::table))
        .filter(queries::study_id.eq(study_id))
        .filter(queries::id.eq(id))
        .select((Query::as_select(), cases_t::site_id))
        .first(conn)
        .or_not_found()?;
    if !scope.includes(site_id) {
        return Err(Error::NotFound);
    }
    Ok(q)
}

pub fn messages(conn: &mut Conn, query_id: i32) -> Result<Vec<Message>> {
    Ok(query_messages::table
        .filter(query_messages::query_id.eq(query_id))
        .order(query_messages::id)
        .select(Message::as_select())
        .load(conn)?)
}

/// Open and answered queries of the study.
pub fn unresolved(conn: &mut Conn, study_id: StudyId) -> Result<i64> {
    Ok(queries::table
        .filter(queries::study_id.eq(study_id))
        .filter(queries::status.ne(QueryStatus::Closed))
        .count()
        .get_result(conn)?)
}

/// One site's queries by status, and the mean age of its open and answered ones.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SiteQueries {
    pub site: String,
    pub open: i64,
    pub answered: i64,
    pub closed: i64,
    pub mean_age_days: f64,
}

/// Queries by site and status, with the mean age in days of the unresolved ones.
pub fn by_site(conn: &mut Conn, study_id: StudyId, scope: &SiteScope) -> Result<Vec<SiteQueries>> {
    let mut q = queries::table
        .inner_join(cases_t::table.inner_join(sites::table))
        .filter(queries::study_id.eq(study_id))
        .into_boxed();
    if let Some(ids) = scope.ids() {
        q = q.filter(cases_t::site_id.eq_any(ids.to_vec()));
    }
    let rows: Vec<(String, QueryStatus, NaiveDateTime)> =
        q.select((sites::code, queries::status, queries::opened_at)).load(conn)?;
    let at = now();
    let mut out: Vec<SiteQueries> = Vec::new();
    let mut ages: Vec<(String, i64)> = Vec::new();
    for (site, status, opened) in rows {
        let i = match out.iter().position(|r| r.site == site) {
            Some(i) => i,
            None => {
                out.push(SiteQueries { site: site.clone(), ..Default::default() });
                out.len() - 1
            }
        };
        match status {
            QueryStatus::Open => out[i].open += 1,
            QueryStatus::Answered => out[i].answered += 1,
            QueryStatus::Closed => out[i].closed += 1,
        }
        if status != QueryStatus::Closed {
            ages.push((site, (at - opened).num_days()));
        }
    }
    for row in &mut out {
        let mine: Vec<i64> = ages.iter().filter(|(s, _)| *s == row.site).map(|(_, d)| *d).collect();
        if !mine.is_empty() {
            row.mean_age_days = mine.iter().sum::<i64>() as f64 / mine.len() as f64;
        }
    }
    out.sort_by(|a, b| a.site.cmp(&b.site));
    Ok(out)
}

fn add_message(conn: &mut Conn, query_id: i32, step: Step, body: &str, value: Option<&str>, actor: &str) -> Result<()> {
    diesel::insert_into(query_messages::table)
        .values((
            query_messages::query_id.eq(query_id),
            query_messages::step.eq(step),
            query_messages::body.eq(body),
            query_messages::value.eq(value),
            query_messages::actor.eq(actor),
            query_messages::at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The message as stored: scrubbed like free text, and required.
fn message_text(text: &str, deid: &EditDeid) -> Result<String> {
    let (clean, _) = deid.scrub(text.trim());
    if clean.is_empty() {
        return Err(Error::invalid("message", "write the question or the answer"));
    }
    if clean.chars().count() > 4000 {
        return Err(Error::invalid("message", "at most 4000 characters"));
    }
    Ok(clean)
}

/// The stored value of a case's field, as text.
fn current_value(conn: &mut Conn, study_id: StudyId, case: &str, field: &str) -> Result<String> {
    let c = cases::get(conn, study_id, case)?;
    Ok(c.value(field).map(value_text).unwrap_or_default())
}

/// Opens a query on one field of a subject (monitors and managers). Audited.
pub fn open(conn: &mut Conn, actor: &Actor, access: &StudyAccess, input: &NewQuery, deid: &EditDeid) -> Result<Query> {
    access.require(Permission::RaiseQueries)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let case = cases::visible(conn, access, input.case.trim())?;
        let fields = dictionary::load(conn, study.id)?;
        let mut errors = FieldErrors::default();
        let field = input.field.trim();
        if !fields.iter().filter(|f| f.holds_data()).any(|f| f.name == field) {
            errors.add("field", "not a field of this study's dictionary");
        }
        let body = match message_text(&input.message, deid) {
            Ok(b) => Some(b),
            Err(Error::Invalid(e)) => {
                errors.0.extend(e.0);
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(f) = input.finding {
            let of_case: Option<(i32, String)> = quality_findings::table
                .filter(quality_findings::study_id.eq(study.id))
                .filter(quality_findings::id.eq(f))
                .select((quality_findings::case_id, quality_findings::field))
                .first(conn)
                .optional()?;
            if of_case != Some((case.id, field.to_string())) {
                errors.add("finding", "not a finding of this subject and field");
            }
        }
        errors.into_result()?;
        let body = body.unwrap_or_default();
        let value = case.value(field).map(value_text).unwrap_or_default();
        let at = now();
        let id = diesel::insert_into(queries::table)
            .values((
                queries::study_id.eq(study.id),
                queries::case_id.eq(case.id),
                queries::event.eq(""),
                queries::instance.eq(0),
                queries::field.eq(field),
                queries::finding_id.eq(input.finding),
                queries::status.eq(QueryStatus::Open),
                queries::requires_change.eq(input.requires_change.is_some()),
                queries::value_at_open.eq(&value),
                queries::opened_by.eq(&actor.name),
                queries::opened_at.eq(at),
                queries::updated_at.eq(at),
            ))
            .returning(queries::id)
            .get_result::<i32>(conn)?;
        add_message(conn, id, Step::Open, &body, None, &actor.name)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Create, Entity::Query, id).after(json!({
                "case": case.display_id, "field": field, "finding": input.finding,
                "requires_change": input.requires_change.is_some(), "value": value, "message": body,
            })),
        )?;
        get(conn, study.id, &SiteScope::All, id)
    })
}

/// Runs one step on query `id` in a write transaction: `permission` checked, the study
/// editable, the query of this study.
fn step_tx<T>(
    conn: &mut Conn,
    access: &StudyAccess,
    permission: Permission,
    id: i32,
    f: impl FnOnce(&mut Conn, &crate::studies::Study, Query) -> Result<T>,
) -> Result<T> {
    access.require(permission)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let q = get(conn, study.id, &access.sites, id)?;
        f(conn, &study, q)
    })
}

/// Moves the query to `to` with its message, audited as `action` (with the value, if given).
fn record_step(
    conn: &mut Conn,
    study: &crate::studies::Study,
    actor: &str,
    q: &Query,
    (to, step, action): (QueryStatus, Step, Action),
    body: &str,
    value: Option<&str>,
) -> Result<Query> {
    let at = now();
    let closed_by = (to == QueryStatus::Closed).then_some(actor);
    diesel::update(queries::table.find(q.id))
        .set((
            queries::status.eq(to),
            queries::updated_at.eq(at),
            queries::closed_by.eq(closed_by),
            queries::closed_at.eq(closed_by.map(|_| at)),
        ))
        .execute(conn)?;
    // The value an answer changed is shown with its message; a close records the value it saw.
    let shown = if step == Step::Answer { value } else { None };
    add_message(conn, q.id, step, body, shown, actor)?;
    audit::record(
        conn,
        Change::new(study.chain(), actor, action, Entity::Query, q.id)
            .before(json!({"status": q.status}))
            .after(json!({"status": to, "message": body, "value": value})),
    )?;
    get(conn, study.id, &SiteScope::All, q.id)
}

/// Answers an open query (managers: the data's keepers), changing the field's value where the
/// answer gives one — with the reason every change needs, in this transaction, audited as a
/// change to the case. Audited.
pub fn answer(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    id: i32,
    input: &StepInput,
    deid: &EditDeid,
) -> Result<Query> {
    step_tx(conn, access, Permission::AnswerQueries, id, |conn, study, q| {
        if q.status != QueryStatus::Open {
            return Err(Error::Conflict(format!("query {id} is {}: only an open query is answered", q.status)));
        }
        let body = message_text(&input.message, deid)?;
        let mut new_value = None;
        if let Some(v) = input.value.as_deref().filter(|v| !v.trim().is_empty()) {
            let fields = dictionary::load(conn, study.id)?;
            if fields.iter().any(|f| f.name == q.field && f.field_type == dictionary::FieldType::Checkbox) {
                // One value would replace every tick: checkboxes change on the case page.
                return Err(Error::invalid("value", "a checkbox's options are changed on the case page"));
            }
            let why = ChangeReason { reason: input.reason.clone(), details: input.reason_details.clone() };
            let form = vec![(q.field.clone(), v.to_string())];
            cases::edit_values_in(conn, actor, study, &q.case, &fields, &form, &why, deid).map_err(|e| match e {
                // The value's own error, named as the answer's field.
                Error::Invalid(mut f) => {
                    for e in f.0.iter_mut().filter(|e| e.field == q.field) {
                        e.field = "value".into();
                    }
                    Error::Invalid(f)
                }
                e => e,
            })?;
            new_value = Some(current_value(conn, study.id, &q.case, &q.field)?);
        }
        let how = (QueryStatus::Answered, Step::Answer, Action::Answer);
        record_step(conn, study, &actor.name, &q, how, &body, new_value.as_deref())
    })
}

/// Closes a query (monitors and managers), answered or still open; one that requires a change
/// is refused while the value is what it was when it was opened. Audited.
pub fn close(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    id: i32,
    input: &StepInput,
    deid: &EditDeid,
) -> Result<Query> {
    step_tx(conn, access, Permission::RaiseQueries, id, |conn, study, q| {
        if q.is_closed() {
            return Err(Error::Conflict(format!("query {id} is already closed")));
        }
        let body = message_text(&input.message, deid)?;
        let value = current_value(conn, study.id, &q.case, &q.field)?;
        if q.requires_change && value == q.value_at_open {
            return Err(Error::Conflict(format!(
                "query {id} asks for {} to change and it has not (still '{}'): reopen it, or answer it with the corrected value",
                q.field, value
            )));
        }
        let how = (QueryStatus::Closed, Step::Close, Action::Close);
        record_step(conn, study, &actor.name, &q, how, &body, Some(&value))
    })
}

/// Reopens an answered or closed query with a message (monitors and managers). Audited.
pub fn reopen(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    id: i32,
    input: &StepInput,
    deid: &EditDeid,
) -> Result<Query> {
    step_tx(conn, access, Permission::RaiseQueries, id, |conn, study, q| {
        if q.status == QueryStatus::Open {
            return Err(Error::Conflict(format!("query {id} is already open")));
        }
        let body = message_text(&input.message, deid)?;
        let how = (QueryStatus::Open, Step::Reopen, Action::Reopen);
        record_step(conn, study, &actor.name, &q, how, &body, None)
    })
}
