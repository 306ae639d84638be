//! Source data verification: a monitor marks each form (REDCap instrument: the dictionary's
//! `Form Name`) of a subject verified against the source; a later change to any of its values —
//! typed on the case page, sent with a query's answer or brought by a re-import — clears the mark
//! in the transaction of the change, naming the fields. The study's monitoring plan says whether
//! every form of every enrolled subject must be verified before the lock (`all`) or not (`none`,
//! the default: the checklist then only reports progress).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, SiteScope, StudyAccess};
use crate::auth::Actor;
use crate::cases::dictionary::{self, FieldDef};
use crate::cases::events::{Design, RecordKey};
use crate::cases::{self, CaseStatus};
use crate::db::schema::{cases as cases_t, monitoring_plans, sites, verifications};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};
use crate::studies::{Study, StudyId};

crate::db::text_enum! {
    /// A form's verification: verified, or cleared by a change since.
    pub enum VerificationStatus {
        Verified = "verified",
        Cleared = "cleared",
    }
}

crate::db::text_enum! {
    /// What the monitoring plan asks of source data verification before the lock.
    pub enum SdvRule {
        All = "all",
        None = "none",
    }
}

/// One form's verification of one subject.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = verifications)]
pub struct Verification {
    pub case_id: i32,
    pub event: String,
    pub form: String,
    pub status: VerificationStatus,
    pub verified_by: String,
    pub verified_at: NaiveDateTime,
    pub cleared_by: Option<String>,
    pub cleared_at: Option<NaiveDateTime>,
    pub cleared_reason: Option<String>,
}

/// The dictionary's forms that hold data, in the dictionary's order.
pub fn forms(fields: &[FieldDef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in fields.iter().filter(|f| f.holds_data()) {
        if !out.contains(&f.form_name) {
            out.push(f.form_name.clone());
        }
    }
    out
}

/// The forms verified per subject on its first event's record (a later record's forms are
/// verified on their own: [`forms_with_values`]).
pub fn subject_forms(conn: &mut Conn, study_id: StudyId) -> Result<Vec<String>> {
    Ok(forms(&crate::cases::events::load(conn, study_id)?.base_fields(dictionary::load(conn, study_id)?)))
}

/// The study's rule (`none` until a manager sets one).
pub fn rule(conn: &mut Conn, study_id: StudyId) -> Result<SdvRule> {
    Ok(monitoring_plans::table
        .find(study_id)
        .select(monitoring_plans::sdv)
        .first::<SdvRule>(conn)
        .optional()?
        .unwrap_or(SdvRule::None))
}

/// Sets the monitoring plan's rule (managers). Audited as a change to the study.
pub fn set_rule(conn: &mut Conn, actor: &Actor, access: &StudyAccess, to: &str) -> Result<SdvRule> {
    access.require(Permission::EditStudy)?;
    let to = SdvRule::parse(to).ok_or_else(|| Error::invalid("sdv", "all or none"))?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let before = rule(conn, study.id)?;
        if before == to {
            return Ok(to);
        }
        let values = (
            monitoring_plans::sdv.eq(to),
            monitoring_plans::updated_by.eq(&actor.name),
            monitoring_plans::updated_at.eq(now()),
        );
        let updated = diesel::update(monitoring_plans::table.find(study.id)).set(values).execute(conn)?;
        if updated == 0 {
            diesel::insert_into(monitoring_plans::table)
                .values((monitoring_plans::study_id.eq(study.id), values))
                .execute(conn)?;
        }
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Update, Entity::Study, &study.code)
                .before(json!({"source_data_verification": before}))
                .after(json!({"source_data_verification": to})),
        )?;
        Ok(to)
    })
}

/// The forms a later record (`key`, its values `data`) holds values of: those its monitor verifies.
pub fn forms_with_values(
    fields: &[FieldDef],
    design: &Design,
    key: &RecordKey,
    data: &Map<String, Value>,
) -> Vec<String> {
    forms(fields)
        .into_iter()
        .filter(|form| {
            design.record_has_form(key, form)
                && fields.iter().any(|f| &f.form_name == form && dictionary::has_value(data.get(&f.name)))
        })
        .collect()
}

/// The verifications of one subject, by form.
pub fn of_case(conn: &mut Conn, case_id: i32) -> Result<Vec<Verification>> {
    Ok(verifications::table.filter(verifications::case_id.eq(case_id)).select(Verification::as_select()).load(conn)?)
}

/// The audit trail's name of one form's verification: `SUBJECT/form`, or `SUBJECT/slot/form`
/// for a later record's.
fn named(display: &str, slot: &str, form: &str) -> String {
    if slot.is_empty() {
        format!("{display}/{form}")
    } else {
        format!("{display}/{slot}/{form}")
    }
}

/// Marks a subject's form verified against the source (monitors): of the first event's record,
/// or (`record`) of a later event's record or a repeating form's instance. Audited.
pub fn verify(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    case: &str,
    record: Option<&RecordKey>,
    form: &str,
) -> Result<()> {
    access.require(Permission::VerifySource)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let c = cases::visible(conn, access, case)?;
        let design = crate::cases::events::load(conn, study.id)?;
        let slot = match record.filter(|k| !design.is_base(k)) {
            None => {
                if !subject_forms(conn, study.id)?.iter().any(|f| f == form) {
                    return Err(Error::invalid("form", format!("'{form}' is not a form of this study's dictionary")));
                }
                String::new()
            }
            Some(key) => {
                let stored = crate::cases::records::of_case(conn, c.id)?.into_iter().find(|r| &r.key == key);
                let Some(r) = stored else {
                    return Err(Error::invalid("event", format!("{case} has no record {}", key.describe(&design))));
                };
                if !design.record_has_form(&r.key, form) {
                    return Err(Error::invalid(
                        "form",
                        format!("the record {} holds no form '{form}'", key.describe(&design)),
                    ));
                }
                design.slot(&r.key)
            }
        };
        let at = now();
        let current = of_case(conn, c.id)?.into_iter().find(|v| v.form == form && v.event == slot);
        match current {
            Some(v) if v.status == VerificationStatus::Verified => {
                return Err(Error::Conflict(format!("{} is already verified", named(case, &slot, form))));
            }
            Some(_) => {
                diesel::update(
                    verifications::table
                        .filter(verifications::case_id.eq(c.id))
                        .filter(verifications::event.eq(&slot))
                        .filter(verifications::form.eq(form)),
                )
                .set((
                    verifications::status.eq(VerificationStatus::Verified),
                    verifications::verified_by.eq(&actor.name),
                    verifications::verified_at.eq(at),
                    verifications::cleared_by.eq(None::<String>),
                    verifications::cleared_at.eq(None::<NaiveDateTime>),
                    verifications::cleared_reason.eq(None::<String>),
                ))
                .execute(conn)?;
            }
            None => {
                diesel::insert_into(verifications::table)
                    .values((
                        verifications::study_id.eq(study.id),
                        verifications::case_id.eq(c.id),
                        verifications::event.eq(&slot),
                        verifications::form.eq(form),
                        verifications::status.eq(VerificationStatus::Verified),
                        verifications::verified_by.eq(&actor.name),
                        verifications::verified_at.eq(at),
                    ))
                    .execute(conn)?;
            }
        }
        let mut after = json!({"case": case, "form": form, "status": VerificationStatus::Verified});
        if !slot.is_empty() {
            after["record"] = json!(slot);
        }
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Verify, Entity::Verification, named(case, &slot, form))
                .after(after),
        )?;
        Ok(())
    })
}

/// Clears the verification of every form whose values changed, inside the caller's transaction:
/// `changes` holds, per changed record, its case's id and display id, the record's slot (empty for
/// the base record, see [`crate::cases::events::Design::slot`]) and the names of the fields that
/// changed.
/// Audited per form, naming the fields.
pub fn clear_changed(
    conn: &mut Conn,
    study: &Study,
    actor: &str,
    fields: &[FieldDef],
    changes: &[(i32, String, String, Vec<String>)],
) -> Result<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    // Most studies verify few forms: one read of the verified ones, not one per changed case.
    let verified: Vec<(i32, String, String)> = verifications::table
        .filter(verifications::study_id.eq(study.id))
        .filter(verifications::status.eq(VerificationStatus::Verified))
        .select((verifications::case_id, verifications::event, verifications::form))
        .load(conn)?;
    if verified.is_empty() {
        return Ok(0);
    }
    let form_of: HashMap<&str, &str> = fields.iter().map(|f| (f.name.as_str(), f.form_name.as_str())).collect();
    let at = now();
    let mut cleared = 0;
    for (case_id, display, slot, changed) in changes {
        let mut by_form: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in changed {
            if let Some(form) = form_of.get(f.as_str()) {
                by_form.entry(form).or_default().push(f);
            }
        }
        for (form, names) in by_form {
            if !verified.iter().any(|(c, e, f)| c == case_id && e == slot && f == form) {
                continue;
            }
            let reason = format!("changed after verification: {}", names.join(", "));
            diesel::update(
                verifications::table
                    .filter(verifications::case_id.eq(case_id))
                    .filter(verifications::event.eq(slot))
                    .filter(verifications::form.eq(form)),
            )
            .set((
                verifications::status.eq(VerificationStatus::Cleared),
                verifications::cleared_by.eq(actor),
                verifications::cleared_at.eq(at),
                verifications::cleared_reason.eq(&reason),
            ))
            .execute(conn)?;
            audit::record(
                conn,
                Change::new(
                    study.chain(),
                    actor,
                    Action::ClearVerification,
                    Entity::Verification,
                    named(display, slot, form),
                )
                .before(json!({"status": VerificationStatus::Verified}))
                .after(json!({"status": VerificationStatus::Cleared}))
                .because(&reason),
            )?;
            cleared += 1;
        }
    }
    Ok(cleared)
}

/// Verification progress of one site's enrolled subjects.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SiteProgress {
    pub site: String,
    pub subjects: i64,
    /// Forms to verify (enrolled subjects × forms) and of those verified.
    pub forms: i64,
    pub verified: i64,
}

impl SiteProgress {
    pub fn percent(&self) -> f64 {
        if self.forms == 0 {
            0.0
        } else {
            100.0 * self.verified as f64 / self.forms as f64
        }
    }
}

/// One enrolled subject's forms and whether each is verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubjectForms {
    pub case: String,
    pub site: String,
    pub verified: Vec<bool>,
    /// The forms of its later records that hold values: verified, and in all.
    pub later: (i64, i64),
}

/// Progress by site, and every enrolled subject's forms, in site and subject order; of the
/// sites of `scope`.
pub fn progress(
    conn: &mut Conn,
    study_id: StudyId,
    scope: &SiteScope,
) -> Result<(Vec<String>, Vec<SiteProgress>, Vec<SubjectForms>)> {
    let forms = subject_forms(conn, study_id)?;
    let mut q = cases_t::table
        .inner_join(sites::table)
        .filter(cases_t::study_id.eq(study_id))
        .filter(cases_t::status.eq(CaseStatus::Enrolled.as_str()))
        .into_boxed();
    if let Some(ids) = scope.ids() {
        q = q.filter(cases_t::site_id.eq_any(ids.to_vec()));
    }
    let enrolled: Vec<(i32, String, String)> = q
        .order((sites::code, cases_t::display_id))
        .select((cases_t::id, cases_t::display_id, sites::code))
        .load(conn)?;
    let verified_forms: Vec<(i32, String, String)> = verifications::table
        .filter(verifications::study_id.eq(study_id))
        .filter(verifications::status.eq(VerificationStatus::Verified))
        .select((verifications::case_id, verifications::event, verifications::form))
        .load(conn)?;
    let done: Vec<(i32, String)> =
        verified_forms.iter().filter(|(_, e, _)| e.is_empty()).map(|(c, _, f)| (*c, f.clone())).collect();
    // Later records: each form a record holds values of is verified on its own.
    let design = crate::cases::events::load(conn, study_id)?;
    let fields = dictionary::load(conn, study_id)?;
    let records = if design.is_empty() { Default::default() } else { crate::cases::records::of_study(conn, study_id)? };
    let later = |case_id: i32| -> (i64, i64) {
        let mut n = (0, 0);
        for r in records.get(&case_id).into_iter().flatten() {
            let slot = design.slot(&r.key);
            for form in forms_with_values(&fields, &design, &r.key, &r.data) {
                n.1 += 1;
                if verified_forms.iter().any(|(c, e, f)| *c == case_id && *e == slot && *f == form) {
                    n.0 += 1;
                }
            }
        }
        n
    };
    let mut sites: Vec<SiteProgress> = Vec::new();
    let mut subjects = Vec::new();
    for (id, case, site) in enrolled {
        let verified: Vec<bool> = forms.iter().map(|f| done.iter().any(|(c, d)| *c == id && d == f)).collect();
        let i = match sites.iter().position(|s| s.site == site) {
            Some(i) => i,
            None => {
                sites.push(SiteProgress { site: site.clone(), ..Default::default() });
                sites.len() - 1
            }
        };
        let later = later(id);
        sites[i].subjects += 1;
        sites[i].forms += forms.len() as i64 + later.1;
        sites[i].verified += verified.iter().filter(|v| **v).count() as i64 + later.0;
        subjects.push(SubjectForms { case, site, verified, later });
    }
    Ok((forms, sites, subjects))
}
