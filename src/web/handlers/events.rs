//! Longitudinal studies: the study's design (arms, events, instrument designation, repeating
//! forms) read from and written to REDCap's files, one record of a subject, and the REDCap flat
//! record export. Annotators are blinded to all of it (404).

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{Map, Value};

use super::StudyNav;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::cases::dictionary::{self, FieldDef};
use crate::cases::events::{self, Design, DesignFiles, RecordKey};
use crate::cases::records::{self, FormStatus};
use crate::cases::{self, Case};
use crate::error::Error;
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render, upload, AppState};

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
    /// Each form of the record: its name, its status, and its fields with their values shown.
    pub forms: RecordForms,
    pub created_at: Option<chrono::NaiveDateTime>,
    pub updated_at: chrono::NaiveDateTime,
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

/// One record of a subject: its forms and values (read only; the base record is edited on the
/// case page).
pub async fn case_record(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
    q: web::Query<RecordQuery>,
) -> Result<HttpResponse, PageError> {
    let (_, display) = path.into_inner();
    let sid = access.study.id;
    let key = RecordKey { event: q.event.clone(), instrument: q.instrument.clone(), instance: q.instance };
    let a2 = access.clone();
    let (case, design, fields, found) = state
        .db(move |c| {
            let case = cases::visible(c, &a2, &display)?;
            let design = events::load(c, sid)?;
            let fields = dictionary::load(c, sid)?;
            let found = if design.is_base(&key) {
                let statuses = records::base_statuses(c, case.id)?;
                (key, case.data.0.clone(), statuses, None, case.updated_at)
            } else {
                let r = records::of_case(c, case.id)?.into_iter().find(|r| r.key == key).ok_or(Error::NotFound)?;
                (r.key, r.data, r.form_status, Some(r.created_at), r.updated_at)
            };
            Ok((case, design, fields, found))
        })
        .await?;
    let (key, values, statuses, created_at, updated_at) = found;
    let forms = record_forms(&design, &fields, &key, &values, &statuses);
    let title = format!("{} · {}", case.display_id, key.describe(&design));
    let ctx = PageCtx::new(&req, Some(&user), format!("{title} · {}", access.study.code), "studies");
    render(
        &ctx,
        &RecordPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "cases"),
            case,
            title,
            forms,
            created_at,
            updated_at,
        },
    )
}

type RecordForms = Vec<(String, Option<FormStatus>, Vec<(FieldDef, String)>)>;

/// The forms a record holds, each with its status and its fields' values as shown.
fn record_forms(
    design: &Design,
    fields: &[FieldDef],
    key: &RecordKey,
    values: &Map<String, Value>,
    statuses: &records::Statuses,
) -> RecordForms {
    let mut out: RecordForms = Vec::new();
    for f in fields.iter().filter(|f| f.holds_data()).skip(1).filter(|f| f.action != dictionary::DeidAction::Drop) {
        if !design.record_has_form(key, &f.form_name) {
            continue;
        }
        if out.last().is_none_or(|(form, _, _)| *form != f.form_name) {
            let status = statuses.get(&f.form_name).copied().and_then(FormStatus::from_code);
            out.push((f.form_name.clone(), status, Vec::new()));
        }
        let shown = values.get(&f.name).map(|v| f.label_of(v)).unwrap_or_default();
        if let Some((_, _, list)) = out.last_mut() {
            list.push((f.clone(), shown));
        }
    }
    out
}
