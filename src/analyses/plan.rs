//! The statistical analysis plan: the pre-specified analyses of a study (primary and secondary,
//! each an analysis with its data and parameters and, optionally, an acceptance criterion on one
//! of its results), written by a statistician, versioned, signed off with their password and then
//! frozen. Results are shown against the signed plan as pass / fail; anything else is exploratory.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::{esign, Actor};
use crate::db::schema::analysis_plans;
use crate::db::{now, write_tx, Conn, Json};
use crate::error::{Error, Result};

/// Meanings a signer can give their signature (21 CFR 11.50(a)(3)).
pub use crate::auth::esign::Meaning;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Criterion {
    /// A result's path, e.g. `opa.wilson_low` (see `analyses::leaves`).
    pub metric: String,
    /// `>=`, `>`, `<=` or `<`.
    pub op: String,
    pub value: f64,
}

/// Whether a result meets a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// The metric is missing or null in the result (e.g. the analysis could not be computed).
    Undetermined,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Undetermined => "undetermined",
        }
    }
}

impl Criterion {
    pub fn parse_op(op: &str) -> Result<String> {
        match op.trim() {
            o @ (">=" | ">" | "<=" | "<") => Ok(o.to_string()),
            "≥" => Ok(">=".into()),
            "≤" => Ok("<=".into()),
            o => Err(Error::invalid("op", format!("'{o}': one of >=, >, <=, <"))),
        }
    }
    pub fn label(&self) -> String {
        let op = match self.op.as_str() {
            ">=" => "≥",
            "<=" => "≤",
            o => o,
        };
        format!("{} {op} {}", crate::report::results::label(&self.metric), self.value)
    }
    /// The observed value of the metric in a result and the verdict.
    pub fn evaluate(&self, result: &Value) -> (Option<f64>, Verdict) {
        let observed = super::leaves(result).into_iter().find(|(p, _)| *p == self.metric).and_then(|(_, v)| v.as_f64());
        let verdict = match observed {
            None => Verdict::Undetermined,
            Some(x) => {
                let ok = match self.op.as_str() {
                    ">=" => x >= self.value,
                    ">" => x > self.value,
                    "<=" => x <= self.value,
                    _ => x < self.value,
                };
                if ok {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                }
            }
        };
        (observed, verdict)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanItem {
    /// Short id within the plan: P1, P2 … for primary, S1 … for secondary.
    pub key: String,
    pub role: PlanRole,
    pub title: String,
    /// The analysis and its data, as a canonical analysis query string.
    pub query: String,
    pub criterion: Option<Criterion>,
}

impl PlanItem {
    /// The analysis as a person reads it (see [`super::Request::summary`]).
    pub fn summary(&self) -> String {
        super::Request::parse(&self.query).map_or_else(|_| self.query.clone(), |r| r.summary())
    }
}

crate::db::text_enum! {
    /// The place of an item in the plan.
    pub enum PlanRole {
        Primary = "primary",
        Secondary = "secondary",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = analysis_plans)]
pub struct Plan {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub version: i32,
    #[serde(skip)]
    pub items: Json<Vec<PlanItem>>,
    pub status: PlanStatus,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub signed_by: Option<String>,
    pub signed_name: Option<String>,
    pub signed_meaning: Option<Meaning>,
    pub signed_at: Option<NaiveDateTime>,
}

crate::db::text_enum! {
    /// A plan version: a draft, then signed (frozen); signing a newer version supersedes it.
    pub enum PlanStatus {
        Draft = "draft",
        Signed = "signed",
        Superseded = "superseded",
    }
}

impl Plan {
    /// The meaning its signer gave, or nothing for a draft.
    pub fn meaning(&self) -> &'static str {
        self.signed_meaning.map(|m| m.as_str()).unwrap_or_default()
    }
    pub fn items(&self) -> Vec<PlanItem> {
        self.items.0.clone()
    }
    pub fn is_draft(&self) -> bool {
        self.status == PlanStatus::Draft
    }
    /// The item whose analysis is exactly `query`.
    pub fn item_for(&self, query: &str) -> Option<PlanItem> {
        self.items().into_iter().find(|i| i.query == query)
    }
}

/// Every version of the study's plan, newest first.
pub fn versions(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Plan>> {
    Ok(analysis_plans::table
        .filter(analysis_plans::study_id.eq(study_id))
        .order(analysis_plans::version.desc())
        .select(Plan::as_select())
        .load(conn)?)
}

/// The newest version (draft or signed).
pub fn latest(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<Plan>> {
    Ok(versions(conn, study_id)?.into_iter().next())
}

/// The version in force: the newest signed one.
pub fn signed(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<Plan>> {
    Ok(versions(conn, study_id)?.into_iter().find(|p| p.status == PlanStatus::Signed))
}

fn editable(conn: &mut Conn, access: &StudyAccess) -> Result<()> {
    access.require(Permission::ManageAnalyses)?;
    crate::studies::get_by_code(conn, &access.study.code)?.ensure_editable()
}

/// The draft to edit: the newest version if it is a draft; a new version 1 when there is none.
fn draft(conn: &mut Conn, actor: &Actor, access: &StudyAccess) -> Result<Plan> {
    match latest(conn, access.study.id)? {
        Some(p) if p.is_draft() => Ok(p),
        Some(p) => Err(Error::Conflict(format!(
            "version {} of the plan is signed and frozen: start a new version to change it",
            p.version
        ))),
        None => insert_version(conn, actor, access, 1, &[]),
    }
}

fn insert_version(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    version: i32,
    items: &[PlanItem],
) -> Result<Plan> {
    let id: i32 = diesel::insert_into(analysis_plans::table)
        .values((
            analysis_plans::study_id.eq(access.study.id),
            analysis_plans::version.eq(version),
            analysis_plans::items.eq(json!(items).to_string()),
            analysis_plans::status.eq(PlanStatus::Draft),
            analysis_plans::created_by.eq(&actor.name),
            analysis_plans::created_at.eq(now()),
        ))
        .returning(analysis_plans::id)
        .get_result(conn)?;
    audit::record(
        conn,
        Change::new(access.study.chain(), &actor.name, Action::CreatePlanVersion, Entity::AnalysisPlan, id)
            .after(json!({"version": version, "items": items})),
    )?;
    Ok(analysis_plans::table.find(id).select(Plan::as_select()).first(conn)?)
}

/// Adds an item to the draft (creating version 1 if there is no plan). The key is the next
/// free P<n> or S<n>.
pub fn add_item(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    role: &str,
    title: &str,
    query: &str,
    criterion: Option<Criterion>,
) -> Result<PlanItem> {
    editable(conn, access)?;
    let role =
        PlanRole::parse(role).ok_or_else(|| Error::invalid("role", format!("'{role}': primary or secondary")))?;
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::invalid("title", "give the analysis a title, e.g. \"AI vs reader consensus: OPA\""));
    }
    let req = super::Request::parse(query)?;
    let canonical = super::Request::canonical(&req.sources(), &req.analysis()?, req.level()?);
    write_tx(conn, |conn| {
        let plan = draft(conn, actor, access)?;
        let mut items = plan.items();
        if items.iter().any(|i| i.query == canonical) {
            return Err(Error::Conflict("this analysis is already in the plan".into()));
        }
        let prefix = if role == PlanRole::Primary { "P" } else { "S" };
        let n = (1..).find(|n| !items.iter().any(|i| i.key == format!("{prefix}{n}"))).unwrap_or(1);
        let item =
            PlanItem { key: format!("{prefix}{n}"), role, title: title.into(), query: canonical.clone(), criterion };
        items.push(item.clone());
        diesel::update(analysis_plans::table.find(plan.id))
            .set(analysis_plans::items.eq(json!(items).to_string()))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(access.study.chain(), &actor.name, Action::AddPlanItem, Entity::AnalysisPlan, plan.id)
                .after(json!({"version": plan.version, "item": item})),
        )?;
        Ok(item)
    })
}

/// Removes an item from the draft.
pub fn remove_item(conn: &mut Conn, actor: &Actor, access: &StudyAccess, key: &str) -> Result<()> {
    editable(conn, access)?;
    write_tx(conn, |conn| {
        let plan = draft(conn, actor, access)?;
        let mut items = plan.items();
        let Some(pos) = items.iter().position(|i| i.key == key) else { return Err(Error::NotFound) };
        let removed = items.remove(pos);
        diesel::update(analysis_plans::table.find(plan.id))
            .set(analysis_plans::items.eq(json!(items).to_string()))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(access.study.chain(), &actor.name, Action::RemovePlanItem, Entity::AnalysisPlan, plan.id)
                .before(json!({"version": plan.version, "item": removed})),
        )?;
        Ok(())
    })
}

/// Starts the next version as a draft copy of the signed one.
pub fn new_version(conn: &mut Conn, actor: &Actor, access: &StudyAccess) -> Result<Plan> {
    editable(conn, access)?;
    write_tx(conn, |conn| match latest(conn, access.study.id)? {
        Some(p) if p.is_draft() => {
            Err(Error::Conflict(format!("version {} is still a draft: edit or sign it", p.version)))
        }
        Some(p) => insert_version(conn, actor, access, p.version + 1, &p.items()),
        None => insert_version(conn, actor, access, 1, &[]),
    })
}

/// Signs the draft: the signer re-enters their password and gives the meaning; the version is
/// frozen, the previous signed version superseded. An empty plan cannot be signed.
pub fn sign(conn: &mut Conn, actor: &Actor, access: &StudyAccess, signing: esign::Signing<'_>) -> Result<Plan> {
    editable(conn, access)?;
    let meaning = Meaning::parse_input(signing.meaning)?;
    let user = esign::signer(conn, actor)?;
    if let Err(e) = esign::check_password(conn, &user, signing.password, "the plan was not signed") {
        // Audited in its own transaction, like a failed signature of the lock.
        let plan = latest(conn, access.study.id)?.map(|p| p.id);
        write_tx(conn, |conn| {
            audit::record(
                conn,
                Change::new(
                    access.study.chain(),
                    &actor.name,
                    Action::SignFailed,
                    Entity::AnalysisPlan,
                    plan.map(|id| id.to_string()).unwrap_or_default(),
                )
                .after(json!({"reason": esign::failure_reason(&e), "meaning": meaning})),
            )
        })?;
        return Err(e);
    }
    write_tx(conn, |conn| {
        let plan = match latest(conn, access.study.id)? {
            Some(p) if p.is_draft() => p,
            _ => return Err(Error::Conflict("there is no draft to sign".into())),
        };
        if plan.items().is_empty() {
            return Err(Error::invalid("plan", "the plan has no analysis yet: add the primary analysis first"));
        }
        let at = now();
        diesel::update(
            analysis_plans::table
                .filter(analysis_plans::study_id.eq(access.study.id))
                .filter(analysis_plans::status.eq(PlanStatus::Signed)),
        )
        .set(analysis_plans::status.eq(PlanStatus::Superseded))
        .execute(conn)?;
        diesel::update(analysis_plans::table.find(plan.id))
            .set((
                analysis_plans::status.eq(PlanStatus::Signed),
                analysis_plans::signed_by.eq(&user.username),
                analysis_plans::signed_name.eq(&user.full_name),
                analysis_plans::signed_meaning.eq(meaning),
                analysis_plans::signed_at.eq(at),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(access.study.chain(), &actor.name, Action::SignPlan, Entity::AnalysisPlan, plan.id).after(
                json!({
                    "version": plan.version, "signed_by": user.username, "name": user.full_name, "meaning": meaning,
                    "items": plan.items(),
                }),
            ),
        )?;
        Ok(analysis_plans::table.find(plan.id).select(Plan::as_select()).first(conn)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_pass_fail_and_undetermined() {
        let c = Criterion { metric: "opa.wilson_low".into(), op: ">=".into(), value: 0.85 };
        assert_eq!(c.evaluate(&json!({"opa": {"wilson_low": 0.9}})), (Some(0.9), Verdict::Pass));
        assert_eq!(c.evaluate(&json!({"opa": {"wilson_low": 0.8}})).1, Verdict::Fail);
        assert_eq!(c.evaluate(&json!({"opa": {"wilson_low": null}})).1, Verdict::Undetermined);
        assert_eq!(c.label(), "OPA lower CI bound (Wilson) ≥ 0.85");
        assert_eq!(Criterion::parse_op("≤").unwrap(), "<=");
        assert!(Criterion::parse_op("==").is_err());
    }
}
