//! Longitudinal studies: the study's design (arms, events, instrument designation, repeating
//! forms) read from and written to REDCap's files, one record of a subject, and the REDCap flat
//! record export. Annotators are blinded to all of it (404).

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{Map, Value};

use super::cases::FieldView;
use super::StudyNav;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::cases::deid::EditDeid;
use crate::cases::dictionary::{self, FieldDef};
use crate::cases::events::{self, Design, DesignFiles, RecordKey};
use crate::cases::records::{self, FormStatus};
use crate::cases::{self, Case};
use crate::error::{Error, FieldErrors};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render, render_form, upload, AppState};

#[derive(Template)]
#[template(path = "cases/events.html")]
pub struct EventsPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub design: Design,
    pub forms: Vec<String>,
    pub can_edit: bool,
    pub problems: Vec<String>,
}

impl EventsPage {
    /// Whether `form` is collected on `event` (the mapping grid).
    pub fn mapped(&self, event: &str, form: &str) -> bool {
        self.design.mapping.iter().any(|d| d.event == event && d.form == form)
    }
    /// How `form` repeats on `event`: "", "repeats" or "event repeats".
    pub fn repeat_note(&self, event: &str, form: &str) -> &'static str {
        match self.design.repeats(event, form) {
            events::Repeats::No => "",
            events::Repeats::Instrument => "repeats",
            events::Repeats::Event => "event repeats",
        }
    }
}

async fn events_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    problems: Vec<String>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (design, fields) = state.db(move |c| Ok((events::load(c, sid)?, dictionary::load(c, sid)?))).await?;
    let ctx = PageCtx::new(req, Some(user), format!("Events · {}", access.study.code), "studies");
    render(
        &ctx,
        &EventsPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "dictionary"),
            design,
            forms: crate::quality::sdv::forms(&fields),
            can_edit: access.can(Permission::EditStudy) && access.study.ensure_editable().is_ok(),
            problems,
        },
    )
}

pub async fn events_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    events_page(&req, &state, &user, access, Vec::new()).await
}

/// Reads REDCap's design files (any of arms, events, instrument designation, repeating forms;
/// the ones not given are kept as they are) and sets the design, all or nothing.
pub async fn events_import(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EditStudy>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let up = match upload::read(payload, state.config.max_upload_bytes).await {
        Ok(u) => u,
        Err(Error::Invalid(e)) => return events_page(&req, &state, &user, access, vec![e.to_string()]).await,
        Err(e) => return Err(e.into()),
    };
    let (actor, a2) = (user.actor.clone(), access.clone());
    let result = state
        .db(move |c| {
            let current = events::load(c, a2.study.id)?;
            let forms = crate::quality::sdv::forms(&dictionary::load(c, a2.study.id)?);
            let given = DesignFiles {
                arms: up.file("arms"),
                events: up.file("events"),
                mapping: up.file("mapping"),
                repeating: up.file("repeating"),
            };
            let design = events::parse_keeping(&current, &given, &forms).map_err(Error::Invalid)?;
            events::replace(c, &actor, &a2, &design)?;
            Ok(design)
        })
        .await;
    match result {
        Ok(d) => {
            let message = format!("Design saved: {}.", d.summary());
            Ok(redirect_with_flash(&format!("/studies/{}/events", access.study.code), "ok", &message))
        }
        Err(Error::Invalid(e)) => {
            let problems = e.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            events_page(&req, &state, &user, access, problems).await
        }
        Err(Error::Conflict(m)) => events_page(&req, &state, &user, access, vec![m]).await,
        Err(e) => Err(e.into()),
    }
}

/// One of the design's files, as REDCap writes it: `arms.csv`, `events.csv`, `mapping.csv` or
/// `repeating.csv`.
pub async fn events_file(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (_, file) = path.into_inner();
    let Some((_, write)) = events::FILES.into_iter().find(|(name, _)| *name == file) else {
        return Err(Error::NotFound.into());
    };
    let sid = access.study.id;
    let design = state.db(move |c| events::load(c, sid)).await?;
    let bytes = write(&design).map_err(Error::Internal)?;
    Ok(crate::web::csv_response(&format!("{}-{file}", access.study.code), bytes))
}

/// The study's records in REDCap's flat format (one row per record).
pub async fn records_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let scope = access.sites.clone();
    let (bytes, _) = state.db(move |c| cases::export::redcap_flat(c, sid, &scope)).await?;
    Ok(crate::web::csv_response(&format!("{}-records.csv", access.study.code), bytes))
}

#[derive(Template)]
#[template(path = "cases/record.html")]
pub struct RecordPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub case: Case,
    pub title: String,
    /// The record page's query string (`event=…&instrument=…&instance=…`).
    pub link: String,
    /// Each form of the record: its name, its status and its fields.
    pub forms: RecordForms,
    pub view: FieldView,
    /// Not saved yet: the page enters a new record.
    pub is_new: bool,
    /// The first event's record: shown here, entered on the case page.
    pub is_base: bool,
    pub created_at: Option<chrono::NaiveDateTime>,
    pub updated_at: Option<chrono::NaiveDateTime>,
    pub errors: FieldErrors,
    pub reasons: &'static [&'static str],
    pub reason: cases::ChangeReason,
    /// The statuses the form sent back after an error.
    pub sent_statuses: Vec<(String, String)>,
    /// Each form's source data verification on this record, and whether this user verifies.
    pub verified: Vec<crate::quality::sdv::Verification>,
    pub can_verify: bool,
    /// The forms of this record that hold values (those a monitor verifies).
    pub verifiable: Vec<String>,
}

impl RecordPage {
    /// Whether this user enters the record here (not the first event's: the case page).
    pub fn entering(&self) -> bool {
        self.view.entering
    }
    /// The status a form's select shows: as sent back after an error, else as stored.
    /// A form's verification on this record, if it stands or was cleared.
    pub fn verification(&self, form: &str) -> Option<&crate::quality::sdv::Verification> {
        self.verified.iter().find(|v| v.form == form)
    }
    /// Whether a form's verification on this record stands (not cleared by a change since).
    pub fn is_verified(&self, form: &str) -> bool {
        self.verification(form).is_some_and(|v| v.status == crate::quality::sdv::VerificationStatus::Verified)
    }
    pub fn is_verifiable(&self, form: &str) -> bool {
        self.verifiable.iter().any(|f| f == form)
    }
    pub fn status_code(&self, form: &str, stored: &Option<FormStatus>) -> String {
        self.sent_statuses
            .iter()
            .find(|(f, _)| f.strip_suffix("_complete") == Some(form))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| stored.map(|s| s.code().to_string()).unwrap_or_default())
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct RecordQuery {
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub instrument: String,
    #[serde(default)]
    pub instance: i32,
}

impl RecordQuery {
    pub fn key(&self) -> RecordKey {
        RecordKey { event: self.event.clone(), instrument: self.instrument.clone(), instance: self.instance }
    }
}

/// What a form sent back after an error: its values, statuses and reason.
#[derive(Default)]
struct Sent {
    values: Vec<(String, String)>,
    statuses: Vec<(String, String)>,
    reason: cases::ChangeReason,
}

/// One record of a subject: its forms and values, entered here by those who enter data (a later
/// event's record, or a repeating form's instance, new or saved; the first event's record is
/// entered on the case page).
pub async fn case_record(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
    q: web::Query<RecordQuery>,
) -> Result<HttpResponse, PageError> {
    let (_, display) = path.into_inner();
    record_page(&req, &state, &user, access, display, q.key(), FieldErrors::default(), Sent::default()).await
}

#[allow(clippy::too_many_arguments)]
async fn record_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    display: String,
    key: RecordKey,
    errors: FieldErrors,
    sent: Sent,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let entering = access.can(Permission::EnterData) && access.study.ensure_editable().is_ok();
    let a2 = access.clone();
    let (case, design, fields, found, others, verified) = state
        .db(move |c| {
            let case = cases::visible(c, &a2, &display)?;
            let verified = crate::quality::sdv::of_case(c, case.id)?;
            let design = events::load(c, sid)?;
            let fields = dictionary::load(c, sid)?;
            let mut others = records::of_case(c, case.id)?;
            let found = if design.is_base(&key) {
                let statuses = records::base_statuses(c, case.id)?;
                (key, case.data.0.clone(), statuses, None, Some(case.updated_at))
            } else if let Some(i) = others.iter().position(|r| r.key == key) {
                let r = others.remove(i);
                (r.key, r.data, r.form_status, Some(r.created_at), Some(r.updated_at))
            } else if entering {
                // A record not entered yet: one the design holds may be entered here.
                let key = cases::entry::record_key(&design, &key.event, &key.instrument, key.instance)
                    .map_err(|_| Error::NotFound)?;
                (key, Map::new(), records::Statuses::new(), None, None)
            } else {
                return Err(Error::NotFound);
            };
            Ok((case, design, fields, found, others, verified))
        })
        .await?;
    let (key, mut values, statuses, created_at, updated_at) = found;
    let is_base = design.is_base(&key);
    let slot = design.slot(&key);
    let verified = verified.into_iter().filter(|v| v.event == slot && !is_base).collect();
    let verifiable = if is_base || updated_at.is_none() {
        Vec::new()
    } else {
        crate::quality::sdv::forms_with_values(&fields, &design, &key, &values)
    };
    let forms = record_forms(&design, &fields, &key, &statuses);
    let on_record = fields.iter().filter(|f| f.holds_data() && design.record_has_form(&key, &f.form_name));
    let hidden = cases::entry::evaluate(
        on_record,
        &mut values.clone(),
        &cases::entry::Context {
            design: &design,
            records: &others,
            now: crate::db::now(),
            base: (!is_base).then_some(&case.data.0),
            this: (!is_base).then_some(&key),
        },
    )
    .hidden;
    // After an error, the form shows what was sent (a checkbox's ticks as a list).
    let mut given: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (name, value) in &sent.values {
        given.entry(name).or_default().push(value);
    }
    for (name, sent) in given {
        let value = match sent[..] {
            [one] => Value::String(one.to_string()),
            _ => Value::Array(sent.iter().filter(|v| !v.is_empty()).map(|v| Value::String(v.to_string())).collect()),
        };
        values.insert(name.to_string(), value);
    }
    let title = format!("{} · {}", case.display_id, key.describe(&design));
    let ctx = PageCtx::new(req, Some(user), format!("{title} · {}", access.study.code), "studies");
    let page = RecordPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "cases"),
        case,
        title,
        link: records::link(&key),
        forms,
        view: FieldView { values, entering: entering && !is_base, hidden },
        is_new: updated_at.is_none(),
        is_base,
        created_at,
        updated_at,
        errors: errors.clone(),
        reasons: &cases::CHANGE_REASONS,
        reason: sent.reason,
        sent_statuses: sent.statuses,
        verified,
        can_verify: access.can(Permission::VerifySource) && access.study.ensure_editable().is_ok(),
        verifiable,
    };
    render_form(&ctx, &page, &errors)
}

/// Saves a record from its page: its fields, its forms' statuses (`<form>_complete`) and the
/// reason for a change (`_reason`, `_reason_details`).
pub async fn case_record_save(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EnterData>,
    path: web::Path<(String, String)>,
    q: web::Query<RecordQuery>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (code, display) = path.into_inner();
    let (input, reason) = cases::ChangeReason::split_form(form.into_inner());
    let key = q.key();
    let (actor, scrubber) = (user.actor.clone(), state.edit_scrubber.clone());
    let (a2, d2, k2, i2, r2) = (access.clone(), display.clone(), key.clone(), input.clone(), reason.clone());
    let result = state
        .db(move |c| {
            let fields = dictionary::load(c, a2.study.id)?;
            cases::entry::save_record(c, &actor, &a2, &d2, &k2, &fields, &i2, &r2, &EditDeid::new(scrubber))
        })
        .await;
    match result {
        Ok(edited) => {
            let message = super::cases::saved_message("Record saved.", &edited);
            let url = format!("/studies/{code}/cases/{display}/record?{}", records::link(&key));
            Ok(redirect_with_flash(&url, "ok", &message))
        }
        Err(Error::Invalid(errors)) => {
            // Statuses are looked up by their forms' `<form>_complete`, values by field name.
            let sent = Sent { values: input.clone(), statuses: input, reason };
            record_page(&req, &state, &user, access, display, key, errors, sent).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Branching logic and calculated fields on a form's values as typed, before they are saved:
/// `{"hidden": [field…], "calc": {field: value}}` for the page to show (the case page's form
/// without a record in the query, a record page's with it). Nothing is stored.
pub async fn record_logic(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
    q: web::Query<RecordQuery>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (_, display) = path.into_inner();
    let (input, _) = cases::ChangeReason::split_form(form.into_inner());
    let key = q.into_inner().key();
    let scrubber = state.edit_scrubber.clone();
    let evaluated = state
        .db(move |c| {
            let case = cases::visible(c, &access, &display)?;
            let design = events::load(c, access.study.id)?;
            let fields = dictionary::load(c, access.study.id)?;
            let mut others = records::of_case(c, case.id)?;
            let base = key.event.is_empty() && key.instrument.is_empty() || design.is_base(&key);
            let stored = if base {
                case.data.0.clone()
            } else {
                others.iter().position(|r| r.key == key).map(|i| others.remove(i).data).unwrap_or_default()
            };
            let on_record = |f: &&FieldDef| {
                f.holds_data()
                    && if base { design.on_base(&f.form_name) } else { design.record_has_form(&key, &f.form_name) }
            };
            // The values as typed where they read (what does not read is the save's to refuse).
            let typed = cases::entry::apply_input(&fields, &stored, &input, &EditDeid::new(scrubber), |_| None).new;
            let mut values = typed;
            let cx = cases::entry::Context {
                design: &design,
                records: &others,
                now: crate::db::now(),
                base: (!base).then_some(&case.data.0),
                this: (!base).then_some(&key),
            };
            Ok(cases::entry::evaluate(fields.iter().filter(on_record), &mut values, &cx))
        })
        .await?;
    Ok(HttpResponse::Ok().json(evaluated))
}

type RecordForms = Vec<(String, Option<FormStatus>, Vec<FieldDef>)>;

/// The forms a record holds, each with its status and its fields (without the subject id and
/// dropped fields).
fn record_forms(design: &Design, fields: &[FieldDef], key: &RecordKey, statuses: &records::Statuses) -> RecordForms {
    let mut out: RecordForms = Vec::new();
    for f in fields.iter().filter(|f| f.holds_data()).skip(1).filter(|f| f.action != dictionary::DeidAction::Drop) {
        if !design.record_has_form(key, &f.form_name) {
            continue;
        }
        if out.last().is_none_or(|(form, _, _)| *form != f.form_name) {
            let status = statuses.get(&f.form_name).copied().and_then(FormStatus::from_code);
            out.push((f.form_name.clone(), status, Vec::new()));
        }
        if let Some((_, _, list)) = out.last_mut() {
            list.push(f.clone());
        }
    }
    out
}
