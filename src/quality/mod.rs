//! Data quality: REDCap-style rules over a study's case data, and what they find. The built-in
//! rules (missing required values, values outside their validation, invalid codes, hidden fields
//! that hold values, outliers) are the application's; a study's custom rules are REDCap logic
//! that holds where the data is wrong (`[os_months] < [pfs_months]`). The rules run on import,
//! on every save of a case and on demand, in the transaction that changed the data; a finding
//! stays *open* until the data no longer triggers it (*resolved*) or a manager *excludes* it with
//! a reason. Open findings of severity *error* block the lock (the pre-lock checklist).

pub mod check;
pub mod queries;
pub mod sdv;

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, SiteScope, StudyAccess};
use crate::auth::Actor;
use crate::cases::deid::EditDeid;
use crate::cases::dictionary;
use crate::cases::logic::{self, Events};
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{cases, quality_findings, quality_rules, sites};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::export::{time_cell, CsvRecord};
use crate::studies::{Study, StudyId};
use check::{CaseData, CustomCheck, Found};

crate::db::text_enum! {
    /// How much a finding matters: an open *error* blocks the lock, a *warning* does not.
    pub enum Severity {
        Error = "error",
        Warning = "warning",
    }
}

crate::db::text_enum! {
    /// A custom rule: in use, or retired with a reason (kept, never deleted).
    pub enum RuleStatus {
        Active = "active",
        Retired = "retired",
    }
}

crate::db::text_enum! {
    /// A finding: open; resolved (the data no longer triggers its rule); or excluded by a manager
    /// with a reason (the value is right: REDCap's "exclude").
    pub enum FindingStatus {
        Open = "open",
        Resolved = "resolved",
        Excluded = "excluded",
    }
}

/// The built-in rules (REDCap's Data Quality rules B, D/F-style validation, E and F).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Missing,
    Range,
    Code,
    Hidden,
    Outlier,
}

impl Builtin {
    pub const ALL: [Builtin; 5] = [Builtin::Missing, Builtin::Range, Builtin::Code, Builtin::Hidden, Builtin::Outlier];

    pub fn code(self) -> &'static str {
        match self {
            Builtin::Missing => "missing",
            Builtin::Range => "range",
            Builtin::Code => "code",
            Builtin::Hidden => "hidden",
            Builtin::Outlier => "outlier",
        }
    }

    pub fn name(self) -> String {
        match self {
            Builtin::Missing => "Required fields that are empty (where their branching logic shows them)".into(),
            Builtin::Range => "Values outside their field's validation (type, minimum, maximum)".into(),
            Builtin::Code => "Values that are not one of the field's choices".into(),
            Builtin::Hidden => "Fields hidden by their branching logic that hold a value".into(),
            Builtin::Outlier => {
                format!("Numbers more than {} standard deviations from the field's mean", check::OUTLIER_SDS)
            }
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Builtin::Missing | Builtin::Range | Builtin::Code => Severity::Error,
            Builtin::Hidden | Builtin::Outlier => Severity::Warning,
        }
    }
}

/// A study's custom rule.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = quality_rules)]
pub struct CustomRule {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub logic: String,
    pub severity: Severity,
    pub status: RuleStatus,
    pub status_reason: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

/// A rule as the rules page lists it, with its findings counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleRow {
    pub code: String,
    pub name: String,
    /// Empty for a built-in rule.
    pub logic: String,
    pub severity: Severity,
    pub builtin: bool,
    pub retired: Option<String>,
    /// Why an active custom rule finds nothing: its logic no longer reads against the
    /// dictionary (a field it names was retired since).
    pub problem: Option<String>,
    pub open: i64,
    pub excluded: i64,
    pub resolved: i64,
}

/// A custom rule as a person writes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewRule {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub logic: String,
    #[serde(default)]
    pub severity: String,
}

/// A finding, with its case and site.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = quality_findings)]
pub struct Finding {
    pub id: i32,
    pub rule_code: String,
    #[diesel(select_expression = cases::display_id)]
    pub case: String,
    #[diesel(select_expression = sites::code)]
    pub site: String,
    pub event: String,
    pub instance: i32,
    pub field: String,
    pub severity: Severity,
    pub detail: String,
    pub status: FindingStatus,
    pub status_reason: Option<String>,
    pub status_by: Option<String>,
    pub status_at: Option<NaiveDateTime>,
    pub first_found_at: NaiveDateTime,
    pub last_found_at: NaiveDateTime,
}

impl CsvRecord for Finding {
    const HEADER: &'static [&'static str] = &[
        "finding",
        "rule",
        "severity",
        "subject",
        "site",
        "event",
        "instance",
        "field",
        "detail",
        "status",
        "status_reason",
        "status_by",
        "status_at",
        "first_found_at",
        "last_found_at",
    ];
    fn record(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.rule_code.clone(),
            self.severity.to_string(),
            self.case.clone(),
            self.site.clone(),
            self.event.clone(),
            if self.instance > 0 { self.instance.to_string() } else { String::new() },
            self.field.clone(),
            self.detail.clone(),
            self.status.to_string(),
            self.status_reason.clone().unwrap_or_default(),
            self.status_by.clone().unwrap_or_default(),
            time_cell(self.status_at),
            time_cell(Some(self.first_found_at)),
            time_cell(Some(self.last_found_at)),
        ]
    }
}

/// Filters of the findings list; empty means any (the page starts on open findings).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct FindingFilter {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub case: String,
    pub page: Option<i64>,
}

/// What started a run of the rules (recorded with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Import,
    Save,
    OnDemand,
    RuleChanged,
    Dictionary,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Import => "import",
            Trigger::Save => "save",
            Trigger::OnDemand => "on demand",
            Trigger::RuleChanged => "rule changed",
            Trigger::Dictionary => "dictionary changed",
        }
    }
}

/// What a run changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub opened: usize,
    pub reopened: usize,
    pub resolved: usize,
    /// Open findings after the run, and of those the errors.
    pub open: usize,
    pub open_errors: usize,
}

impl RunSummary {
    /// "Data quality: 4 open findings (2 errors); 1 new, 2 resolved."
    pub fn sentence(&self) -> String {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut s = format!(
            "Data quality: {} open {} ({})",
            self.open,
            if self.open == 1 { "finding" } else { "findings" },
            plural(self.open_errors, "error", "errors")
        );
        let changes: Vec<String> = [(self.opened, "new"), (self.reopened, "reopened"), (self.resolved, "resolved")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !changes.is_empty() {
            s.push_str(&format!("; {}", changes.join(", ")));
        }
        s.push('.');
        s
    }
}

pub fn custom_rules(conn: &mut Conn, study_id: StudyId) -> Result<Vec<CustomRule>> {
    Ok(quality_rules::table
        .filter(quality_rules::study_id.eq(study_id))
        .order(quality_rules::id)
        .select(CustomRule::as_select())
        .load(conn)?)
}

/// The built-in rules and the study's custom rules, each with its findings counted (those of the
/// sites of `scope`).
pub fn rules(conn: &mut Conn, study_id: StudyId, scope: &SiteScope) -> Result<Vec<RuleRow>> {
    let counts: Vec<(String, FindingStatus, i64)> = match scope.ids() {
        None => quality_findings::table
            .filter(quality_findings::study_id.eq(study_id))
            .group_by((quality_findings::rule_code, quality_findings::status))
            .select((quality_findings::rule_code, quality_findings::status, diesel::dsl::count_star()))
            .load(conn)?,
        // A site's findings are its subjects'.
        Some(ids) => quality_findings::table
            .inner_join(cases::table)
            .filter(quality_findings::study_id.eq(study_id))
            .filter(cases::site_id.eq_any(ids.to_vec()))
            .group_by((quality_findings::rule_code, quality_findings::status))
            .select((quality_findings::rule_code, quality_findings::status, diesel::dsl::count_star()))
            .load(conn)?,
    };
    let count = |code: &str, status: FindingStatus| {
        counts.iter().find(|(c, s, _)| c == code && *s == status).map(|(_, _, n)| *n).unwrap_or(0)
    };
    let fields = dictionary::load(conn, study_id)?;
    let events = crate::cases::events::load(conn, study_id)?.event_names();
    let row =
        |code: &str, name: String, logic: String, severity: Severity, builtin: bool, retired: Option<String>| RuleRow {
            problem: (!builtin && retired.is_none())
                .then(|| logic::check(&logic, &fields, Events::Only(&events)).err())
                .flatten(),
            open: count(code, FindingStatus::Open),
            excluded: count(code, FindingStatus::Excluded),
            resolved: count(code, FindingStatus::Resolved),
            code: code.to_string(),
            name,
            logic,
            severity,
            builtin,
            retired,
        };
    let mut out: Vec<RuleRow> =
        Builtin::ALL.iter().map(|b| row(b.code(), b.name(), String::new(), b.severity(), true, None)).collect();
    for r in custom_rules(conn, study_id)? {
        let retired = (r.status == RuleStatus::Retired).then(|| r.status_reason.clone().unwrap_or_default());
        out.push(row(&r.code, r.name, r.logic, r.severity, false, retired));
    }
    Ok(out)
}

/// Adds a custom rule (managers), checked against the dictionary, and runs the rules so that its
/// findings are there at once. Audited.
pub fn create_rule(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    input: &NewRule,
    deid: &EditDeid,
) -> Result<CustomRule> {
    access.require(Permission::ManageCases)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let mut errors = crate::error::FieldErrors::default();
        // Free text, scrubbed like any (a rule is named by what it checks, not by whom).
        let (name, _) = deid.scrub(input.name.trim());
        let name = name.as_str();
        if name.is_empty() {
            errors.add("name", "required: say what the rule checks");
        } else if name.chars().count() > 200 {
            errors.add("name", "at most 200 characters");
        }
        let severity = Severity::parse(input.severity.trim());
        if severity.is_none() {
            errors.add("severity", "error or warning");
        }
        let fields = dictionary::load(conn, study.id)?;
        let events = crate::cases::events::load(conn, study.id)?.event_names();
        let text = input.logic.trim();
        if let Err(m) = logic::check(text, &fields, Events::Only(&events)) {
            errors.add("logic", m);
        }
        errors.into_result()?;
        let taken =
            quality_rules::table.filter(quality_rules::study_id.eq(study.id)).count().get_result::<i64>(conn)?;
        let code = format!("R{}", taken + 1);
        let severity = severity.unwrap_or(Severity::Error);
        let id = diesel::insert_into(quality_rules::table)
            .values((
                quality_rules::study_id.eq(study.id),
                quality_rules::code.eq(&code),
                quality_rules::name.eq(name),
                quality_rules::logic.eq(text),
                quality_rules::severity.eq(severity),
                quality_rules::status.eq(RuleStatus::Active),
                quality_rules::created_by.eq(&actor.name),
                quality_rules::created_at.eq(now()),
            ))
            .returning(quality_rules::id)
            .get_result::<i32>(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Create, Entity::QualityRule, &code)
                .after(json!({"id": id, "code": code, "name": name, "logic": text, "severity": severity})),
        )?;
        run_in(conn, &study, &actor.name, Trigger::RuleChanged)?;
        Ok(quality_rules::table.find(id).select(CustomRule::as_select()).first(conn)?)
    })
}

/// Retires a custom rule with a reason (managers); its findings resolve. Audited.
pub fn retire_rule(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    code: &str,
    reason: &str,
    deid: &EditDeid,
) -> Result<()> {
    access.require(Permission::ManageCases)?;
    let (reason, _) = deid.scrub(reason.trim());
    let reason = reason.as_str();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the rule is retired"));
    }
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let rule: CustomRule = quality_rules::table
            .filter(quality_rules::study_id.eq(study.id))
            .filter(quality_rules::code.eq(code))
            .select(CustomRule::as_select())
            .first(conn)
            .or_not_found()?;
        if rule.status == RuleStatus::Retired {
            return Err(Error::Conflict(format!("rule {code} is already retired")));
        }
        diesel::update(quality_rules::table.find(rule.id))
            .set((quality_rules::status.eq(RuleStatus::Retired), quality_rules::status_reason.eq(reason)))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Retire, Entity::QualityRule, code)
                .before(json!({"status": rule.status}))
                .after(json!({"status": RuleStatus::Retired}))
                .because(reason),
        )?;
        run_in(conn, &study, &actor.name, Trigger::RuleChanged)?;
        Ok(())
    })
}

/// Runs the rules now (monitors and managers: `RunChecks`). Audited, even when nothing changed.
pub fn run(conn: &mut Conn, actor: &Actor, access: &StudyAccess) -> Result<RunSummary> {
    access.require(Permission::RunChecks)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        // A locked study's data and findings are what was locked.
        study.ensure_editable()?;
        run_in(conn, &study, &actor.name, Trigger::OnDemand)
    })
}

/// Runs every rule over the study's cases inside the caller's transaction and records what
/// changed: new findings open, findings no longer found resolve, resolved ones found again
/// reopen; excluded ones stay excluded while found. One audit event when anything changed (and
/// for a run on demand always).
pub fn run_in(conn: &mut Conn, study: &Study, actor: &str, trigger: Trigger) -> Result<RunSummary> {
    // The subject's values: the base record's forms (a later event's forms are not on it).
    let design = crate::cases::events::load(conn, study.id)?;
    let all_fields = dictionary::load(conn, study.id)?;
    let fields = design.base_fields(all_fields.clone());
    if fields.is_empty() {
        return Ok(RunSummary::default());
    }
    let events = design.event_names();
    let custom: Vec<CustomCheck> = custom_rules(conn, study.id)?
        .into_iter()
        .filter(|r| r.status == RuleStatus::Active)
        // A rule the dictionary no longer supports (a field retired since) finds nothing.
        .filter_map(|r| {
            let logic = logic::check(&r.logic, &all_fields, Events::Only(&events)).ok()?;
            Some(CustomCheck { code: r.code, severity: r.severity, logic })
        })
        .collect();
    let at = now();
    let mut checker = check::Checker::new(&fields, &custom, at);
    // The cases a page at a time: the memory does not grow with the study.
    const PAGE: i64 = 2_000;
    let mut after = 0;
    loop {
        let page: Vec<(i32, String)> = cases::table
            .filter(cases::study_id.eq(study.id))
            .filter(cases::id.gt(after))
            .order(cases::id)
            .select((cases::id, cases::data))
            .limit(PAGE)
            .load(conn)?;
        let Some(last) = page.last().map(|(id, _)| *id) else { break };
        // The page's later-event records, for custom rules naming an event.
        let records = if design.is_longitudinal() && !custom.is_empty() {
            let ids: Vec<i32> = page.iter().map(|(id, _)| *id).collect();
            crate::cases::records::of_cases(conn, &ids)?
        } else {
            Default::default()
        };
        for (id, data) in &page {
            let values: Map<String, Value> = serde_json::from_str(data).unwrap_or_default();
            let events = design.is_longitudinal().then(|| (&design, records.get(id).map_or(&[][..], |r| r.as_slice())));
            checker.case(&CaseData { case_id: *id, values: &values, events });
        }
        after = last;
    }
    let found = checker.finish();
    record_findings(conn, study, actor, trigger, found, at)
}

type Key = (String, i32, String, i32, String);

fn key_of(f: &Found) -> Key {
    (f.rule_code.clone(), f.case_id, f.event.clone(), f.instance, f.field.clone())
}

fn record_findings(
    conn: &mut Conn,
    study: &Study,
    actor: &str,
    trigger: Trigger,
    found: Vec<Found>,
    at: NaiveDateTime,
) -> Result<RunSummary> {
    type Stored = (i32, String, i32, String, i32, String, String, String, FindingStatus);
    let existing: Vec<Stored> = quality_findings::table
        .filter(quality_findings::study_id.eq(study.id))
        .select((
            quality_findings::id,
            quality_findings::rule_code,
            quality_findings::case_id,
            quality_findings::event,
            quality_findings::instance,
            quality_findings::field,
            quality_findings::value,
            quality_findings::detail,
            quality_findings::status,
        ))
        .load(conn)?;
    let mut by_key: HashMap<Key, (i32, String, String, FindingStatus)> = existing
        .into_iter()
        .map(|(id, rule, case, event, instance, field, value, detail, status)| {
            ((rule, case, event, instance, field), (id, value, detail, status))
        })
        .collect();
    let (mut opened, mut reopened, mut resolved) = (Vec::new(), Vec::new(), Vec::new());
    for f in &found {
        match by_key.remove(&key_of(f)) {
            None => {
                let id = diesel::insert_into(quality_findings::table)
                    .values((
                        quality_findings::study_id.eq(study.id),
                        quality_findings::rule_code.eq(&f.rule_code),
                        quality_findings::case_id.eq(f.case_id),
                        quality_findings::event.eq(&f.event),
                        quality_findings::instance.eq(f.instance),
                        quality_findings::field.eq(&f.field),
                        quality_findings::value.eq(&f.value),
                        quality_findings::severity.eq(f.severity),
                        quality_findings::detail.eq(&f.detail),
                        quality_findings::status.eq(FindingStatus::Open),
                        quality_findings::first_found_at.eq(at),
                        quality_findings::last_found_at.eq(at),
                    ))
                    .returning(quality_findings::id)
                    .get_result::<i32>(conn)?;
                opened.push(id);
            }
            Some((id, value, detail, status)) => {
                // Resolved and found again, or excluded for another value than the one found
                // now (an exclusion says that value is right, not any value).
                let excluded_other = status == FindingStatus::Excluded && value != f.value;
                if status == FindingStatus::Resolved || excluded_other {
                    diesel::update(quality_findings::table.find(id))
                        .set((
                            quality_findings::status.eq(FindingStatus::Open),
                            quality_findings::status_reason.eq(None::<String>),
                            quality_findings::status_by.eq(None::<String>),
                            quality_findings::status_at.eq(None::<NaiveDateTime>),
                        ))
                        .execute(conn)?;
                    reopened.push(id);
                }
                if detail != f.detail || value != f.value {
                    diesel::update(quality_findings::table.find(id))
                        .set((
                            quality_findings::detail.eq(&f.detail),
                            quality_findings::value.eq(&f.value),
                            quality_findings::severity.eq(f.severity),
                        ))
                        .execute(conn)?;
                }
            }
        }
    }
    for (id, _, _, status) in by_key.into_values() {
        if status != FindingStatus::Resolved {
            diesel::update(quality_findings::table.find(id))
                .set((
                    quality_findings::status.eq(FindingStatus::Resolved),
                    quality_findings::status_reason.eq("no longer found"),
                    quality_findings::status_by.eq(actor),
                    quality_findings::status_at.eq(at),
                ))
                .execute(conn)?;
            resolved.push(id);
        }
    }
    // Everything found now was last found now.
    diesel::update(quality_findings::table)
        .filter(quality_findings::study_id.eq(study.id))
        .filter(quality_findings::status.ne(FindingStatus::Resolved))
        .set(quality_findings::last_found_at.eq(at))
        .execute(conn)?;
    let (open, open_errors) = open_counts(conn, study.id)?;
    let summary =
        RunSummary { opened: opened.len(), reopened: reopened.len(), resolved: resolved.len(), open, open_errors };
    if trigger == Trigger::OnDemand || !(opened.is_empty() && reopened.is_empty() && resolved.is_empty()) {
        opened.sort_unstable();
        reopened.sort_unstable();
        resolved.sort_unstable();
        audit::record(
            conn,
            Change::new(study.chain(), actor, Action::RunRules, Entity::QualityFinding, &study.code).after(json!({
                "trigger": trigger.as_str(),
                "opened": opened,
                "reopened": reopened,
                "resolved": resolved,
                "open": open,
                "open_errors": open_errors,
            })),
        )?;
    }
    Ok(summary)
}

/// Open findings of the study, and of those the errors.
pub fn open_counts(conn: &mut Conn, study_id: StudyId) -> Result<(usize, usize)> {
    let rows: Vec<(Severity, i64)> = quality_findings::table
        .filter(quality_findings::study_id.eq(study_id))
        .filter(quality_findings::status.eq(FindingStatus::Open))
        .group_by(quality_findings::severity)
        .select((quality_findings::severity, diesel::dsl::count_star()))
        .load(conn)?;
    let total = rows.iter().map(|(_, n)| *n as usize).sum();
    let errors = rows.iter().filter(|(s, _)| *s == Severity::Error).map(|(_, n)| *n as usize).sum();
    Ok((total, errors))
}

/// Findings by site: open errors, open warnings, excluded.
pub fn by_site(conn: &mut Conn, study_id: StudyId, scope: &SiteScope) -> Result<Vec<(String, i64, i64, i64)>> {
    let mut q = quality_findings::table
        .inner_join(cases::table.inner_join(sites::table))
        .filter(quality_findings::study_id.eq(study_id))
        .filter(quality_findings::status.ne(FindingStatus::Resolved))
        .into_boxed();
    if let Some(ids) = scope.ids() {
        q = q.filter(cases::site_id.eq_any(ids.to_vec()));
    }
    let rows: Vec<(String, Severity, FindingStatus)> =
        q.select((sites::code, quality_findings::severity, quality_findings::status)).load(conn)?;
    let mut out: Vec<(String, i64, i64, i64)> = Vec::new();
    for (site, severity, status) in rows {
        let n = 1;
        let i = match out.iter().position(|r| r.0 == site) {
            Some(i) => i,
            None => {
                out.push((site, 0, 0, 0));
                out.len() - 1
            }
        };
        match (status, severity) {
            (FindingStatus::Excluded, _) => out[i].3 += n,
            (_, Severity::Error) => out[i].1 += n,
            (_, Severity::Warning) => out[i].2 += n,
        }
    }
    out.sort();
    Ok(out)
}

/// A page of findings, newest first within each case; of the sites of `scope`.
pub fn findings(
    conn: &mut Conn,
    study_id: StudyId,
    scope: &SiteScope,
    filter: &FindingFilter,
    page: PageRequest,
) -> Result<Page<Finding>> {
    let query = || {
        let mut q = quality_findings::table
            .inner_join(cases::table.inner_join(sites::table))
            .filter(quality_findings::study_id.eq(study_id))
            .into_boxed();
        if let Some(ids) = scope.ids() {
            q = q.filter(cases::site_id.eq_any(ids.to_vec()));
        }
        if let Some(s) = FindingStatus::parse(filter.status.trim()) {
            q = q.filter(quality_findings::status.eq(s));
        }
        if let Some(s) = Severity::parse(filter.severity.trim()) {
            q = q.filter(quality_findings::severity.eq(s));
        }
        if !filter.rule.trim().is_empty() {
            q = q.filter(quality_findings::rule_code.eq(filter.rule.trim().to_string()));
        }
        if !filter.site.trim().is_empty() {
            q = q.filter(sites::code.eq(filter.site.trim().to_string()));
        }
        if !filter.case.trim().is_empty() {
            q = q.filter(cases::display_id.eq(filter.case.trim().to_string()));
        }
        q
    };
    let total: i64 = query().count().get_result(conn)?;
    let items = query()
        .order((cases::display_id, quality_findings::field, quality_findings::rule_code))
        .select(Finding::as_select())
        .limit(page.per_page)
        .offset(page.offset())
        .load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

fn finding(conn: &mut Conn, study_id: StudyId, id: i32) -> Result<Finding> {
    quality_findings::table
        .inner_join(cases::table.inner_join(sites::table))
        .filter(quality_findings::study_id.eq(study_id))
        .filter(quality_findings::id.eq(id))
        .select(Finding::as_select())
        .first(conn)
        .or_not_found()
}

/// Excludes an open finding (the value is right) or reopens an excluded one, with a reason
/// (managers). Audited.
pub fn set_excluded(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    id: i32,
    exclude: bool,
    reason: &str,
    deid: &EditDeid,
) -> Result<Finding> {
    access.require(Permission::ManageCases)?;
    // About one subject's value: scrubbed like any free text before it is stored or audited.
    let (reason, _) = deid.scrub(reason.trim());
    let reason = reason.as_str();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why"));
    }
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let f = finding(conn, study.id, id)?;
        let (from, to, action) = if exclude {
            (FindingStatus::Open, FindingStatus::Excluded, Action::Exclude)
        } else {
            (FindingStatus::Excluded, FindingStatus::Open, Action::Reopen)
        };
        if f.status != from {
            return Err(Error::Conflict(format!("finding {id} is {}, not {from}", f.status)));
        }
        let at = now();
        diesel::update(quality_findings::table.find(id))
            .set((
                quality_findings::status.eq(to),
                quality_findings::status_reason.eq(reason),
                quality_findings::status_by.eq(&actor.name),
                quality_findings::status_at.eq(at),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, action, Entity::QualityFinding, id)
                .before(json!({"status": from, "rule": f.rule_code, "case": f.case, "field": f.field}))
                .after(json!({"status": to}))
                .because(reason),
        )?;
        finding(conn, study.id, id)
    })
}
