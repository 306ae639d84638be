//! Study list, creation, overview, editing and lifecycle.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{ReasonForm, StudyNav};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::studies::members::{self, Member};
use crate::studies::sites::{self, Site};
use crate::studies::{self, Study, StudyInput, StudyListQuery, StudyType, Transition};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{csv_download, render, render_form, AppState, Pager};

#[derive(Template)]
#[template(path = "studies/list.html")]
pub struct StudiesListPage {
    pub ctx: PageCtx,
    pub studies: Vec<Study>,
    pub q: String,
    pub sort: String,
    pub dir: String,
    pub show_archived: bool,
    pub pager: Pager,
    pub total: i64,
}

impl StudiesListPage {
    /// The link for a sortable column header: toggles direction on the active column.
    pub fn sort_link(&self, col: &str) -> String {
        let dir = if self.sort == col && self.dir != "desc" { "desc" } else { "asc" };
        let mut q = vec![("sort", col.to_string()), ("dir", dir.to_string())];
        if !self.q.is_empty() {
            q.push(("q", self.q.clone()));
        }
        if self.show_archived {
            q.push(("archived", "1".into()));
        }
        format!("/studies?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
    }
    pub fn csv_link(&self) -> String {
        let mut q = vec![("q", self.q.clone())];
        if self.show_archived {
            q.push(("archived", "1".into()));
        }
        format!("/studies.csv?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
    }
    pub fn sort_mark(&self, col: &str) -> &'static str {
        match (self.sort == col || (self.sort.is_empty() && col == "code"), self.dir == "desc") {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        }
    }
}

pub async fn studies_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<StudyListQuery>,
) -> Result<HttpResponse, PageError> {
    let q = q.into_inner();
    let actor = user.actor.clone();
    let q2 = q.clone();
    let page = state.db(move |c| studies::list_visible(c, &actor, &q2, PageRequest::new(q2.page, q2.per_page))).await?;
    let archived = if q.show_archived() { "1" } else { "" };
    let pager =
        Pager::new(&page, "/studies", &[("q", &q.q), ("sort", &q.sort), ("dir", &q.dir), ("archived", archived)]);
    let ctx = PageCtx::new(&req, Some(&user), "Studies", "studies");
    render(
        &ctx,
        &StudiesListPage {
            ctx: ctx.clone(),
            total: page.total,
            studies: page.items,
            show_archived: q.show_archived(),
            q: q.q,
            sort: q.sort,
            dir: q.dir,
            pager,
        },
    )
}

pub async fn studies_csv(
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<StudyListQuery>,
) -> Result<HttpResponse, PageError> {
    let q = q.into_inner();
    let actor = user.actor.clone();
    let page = state.db(move |c| studies::list_visible(c, &actor, &q, PageRequest::all())).await?;
    csv_download("studies.csv", &page.items)
}

#[derive(Template)]
#[template(path = "studies/form.html")]
pub struct StudyFormPage {
    pub ctx: PageCtx,
    pub nav: Option<StudyNav>,
    pub form: StudyInput,
    pub errors: FieldErrors,
    pub is_new: bool,
    pub types: Vec<(&'static str, &'static str)>,
}

fn study_types() -> Vec<(&'static str, &'static str)> {
    StudyType::ALL.iter().map(|t| (t.as_str(), t.label())).collect()
}

fn form_page(
    req: &HttpRequest,
    user: &CurrentUser,
    nav: Option<StudyNav>,
    form: StudyInput,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let is_new = nav.is_none();
    let title = if is_new { "New study".to_string() } else { format!("Edit {}", form.code) };
    let ctx = PageCtx::new(req, Some(user), title, "studies");
    let page = StudyFormPage { ctx: ctx.clone(), nav, form, errors: errors.clone(), is_new, types: study_types() };
    render_form(&ctx, &page, &errors)
}

pub async fn study_new(req: HttpRequest, user: CurrentUser) -> Result<HttpResponse, PageError> {
    if !user.user.is_admin {
        return Err(Error::forbidden("only administrators create studies").into());
    }
    let form = StudyInput { study_type: "retrospective".into(), ..Default::default() };
    form_page(&req, &user, None, form, FieldErrors::default())
}

pub async fn study_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<StudyInput>,
) -> Result<HttpResponse, PageError> {
    let input = form.into_inner();
    let actor = user.actor.clone();
    let i2 = input.clone();
    match state.db(move |c| studies::create(c, &actor, &i2)).await {
        Ok(s) => Ok(redirect_with_flash(&format!("/studies/{}", s.code), "ok", &format!("Study {} created.", s.code))),
        Err(Error::Invalid(errors)) => form_page(&req, &user, None, input, errors),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "studies/show.html")]
pub struct StudyShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub study: Study,
    pub type_label: String,
    pub transitions: Vec<Transition>,
    pub sites: Vec<Site>,
    pub members: Vec<Member>,
    pub show_members: bool,
    /// Reminder for readers: reads left that are open now, and the first of them.
    pub reading_left: usize,
    pub next_read: Option<i32>,
    /// A locked study's lock and signatures, and whether this user may still sign.
    pub signing: Option<crate::studies::lock::SignatureState>,
    pub can_sign: bool,
    pub meanings: &'static [crate::studies::lock::Meaning],
    /// The pre-lock checklist, for an active study whose status this user may change.
    pub checklist: Vec<crate::studies::lock::Check>,
    /// A manager cannot lock while a checklist item that blocks is open (an administrator can,
    /// with a reason): the Lock button says so instead of failing after its confirmation.
    pub lock_blocked: bool,
    /// Whose signatures the lock awaits: "manager: Kim Minji" (each missing role's members).
    pub awaiting: Vec<String>,
    /// The meaning chosen before a failed attempt (kept selected).
    pub meaning: String,
    /// Whether this user may export the dossier, and the latest exports.
    pub can_export: bool,
    pub dossier_jobs: Vec<crate::jobs::Job>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct StudyShowQuery {
    #[serde(default)]
    pub meaning: String,
}

pub async fn study_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    q: web::Query<StudyShowQuery>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let show_members = access.can(Permission::ViewMembers);
    let uid = user.actor.user_id;
    let want_checklist = access.study.status == studies::StudyStatus::Active && access.can(Permission::ChangeStatus);
    let can_export = access.can(Permission::ViewAnalyses);
    let (study, snapshots) = (access.study.clone(), state.snapshots.clone());
    let (site_list, member_list, queue, signing, checklist, dossier_jobs, awaiting) = state
        .db(move |c| {
            let dossier_jobs = if can_export { crate::dossier::jobs(c, sid)? } else { Vec::new() };
            let checklist = if want_checklist { crate::studies::lock::checklist(c, sid)? } else { Vec::new() };
            let signing = crate::studies::lock::state_cached(c, &study, &snapshots)?;
            let all = if show_members || signing.is_some() { members::list(c, sid, false)? } else { Vec::new() };
            let awaiting: Vec<String> = signing
                .iter()
                .flat_map(|s| s.missing.iter())
                .map(|role| {
                    let names: Vec<&str> =
                        all.iter().filter(|m| m.role.as_str() == *role).map(|m| m.full_name.as_str()).collect();
                    if names.is_empty() {
                        format!("{role}: no member has this role")
                    } else {
                        format!("{role}: {}", names.join(" or "))
                    }
                })
                .collect();
            let m = if show_members { all } else { Vec::new() };
            let queue = match uid {
                Some(uid) => crate::annotations::reads::queue(c, sid, uid)?,
                None => Vec::new(),
            };
            Ok((sites::list(c, sid, false)?, m, queue, signing, checklist, dossier_jobs, awaiting))
        })
        .await?;
    let can_sign = signing.as_ref().is_some_and(|s| {
        access
            .role
            .is_some_and(|r| s.missing.contains(&r.as_str()) && crate::studies::lock::REQUIRED_ROLES.contains(&r))
    });
    let open: Vec<_> = queue.iter().filter(|i| i.to_read()).collect();
    let ctx = PageCtx::new(&req, Some(&user), access.study.code.clone(), "studies");
    let study = access.study.clone();
    render(
        &ctx,
        &StudyShowPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "overview"),
            type_label: study.study_type.label().to_string(),
            transitions: studies::available_transitions(&access),
            study,
            sites: site_list,
            members: member_list,
            show_members,
            reading_left: open.len(),
            next_read: open.first().map(|i| i.read.id),
            signing,
            can_sign,
            meanings: &crate::studies::lock::Meaning::ALL,
            lock_blocked: !access.is_admin && checklist.iter().any(crate::studies::lock::Check::blocks),
            checklist,
            can_export,
            dossier_jobs,
            awaiting,
            meaning: match q.into_inner().meaning {
                m if crate::studies::lock::Meaning::ALL.iter().any(|x| x.as_str() == m) => m,
                _ => "approval".into(),
            },
        },
    )
}

fn input_of(s: &Study) -> StudyInput {
    StudyInput {
        code: s.code.clone(),
        title: s.title.clone(),
        indication: s.indication.clone(),
        biomarker: s.biomarker.clone(),
        study_type: s.study_type.to_string(),
        protocol_version: s.protocol_version.clone(),
        description: s.description.clone(),
    }
}

pub async fn study_edit(
    req: HttpRequest,
    InStudy { user, access, .. }: InStudy<perm::EditStudy>,
) -> Result<HttpResponse, PageError> {
    access.study.ensure_editable()?;
    form_page(&req, &user, Some(StudyNav::new(&access, "overview")), input_of(&access.study), FieldErrors::default())
}

pub async fn study_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    form: web::Form<StudyInput>,
) -> Result<HttpResponse, PageError> {
    let mut input = form.into_inner();
    input.code = access.study.code.clone();
    let actor = user.actor.clone();
    let (a2, i2) = (access.clone(), input.clone());
    match state.db(move |c| studies::update(c, &actor, &a2, &i2)).await {
        Ok(s) => Ok(redirect_with_flash(&format!("/studies/{}", s.code), "ok", "Study details saved.")),
        Err(Error::Invalid(errors)) => form_page(&req, &user, Some(StudyNav::new(&access, "overview")), input, errors),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn study_status(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    form: web::Form<StatusForm>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let form = form.into_inner();
    let code = access.study.code.clone();
    let url = format!("/studies/{code}");
    let result = state.db(move |c| studies::transition(c, &actor, &access, &form.to, &form.reason)).await;
    crate::web::flash_outcome(&url, result, "", |s| format!("Study {} is now {}.", s.code, s.status))
}

/// Signs the locked study (a required signer, with their password and the meaning).
pub async fn study_sign(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    form: web::Form<crate::web::SignForm>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let form = form.into_inner();
    // After a failed attempt the form comes back with the meaning that was chosen.
    let chosen = crate::studies::lock::Meaning::ALL.iter().find(|m| m.as_str() == form.meaning);
    let url = format!("/studies/{}?meaning={}", access.study.code, chosen.map_or("approval", |m| m.as_str()));
    let result = state.sign(&req, &user, form, move |c, s| studies::lock::sign(c, &actor, &access, s)).await;
    crate::web::flash_outcome(&url, result, "Not signed: ", |s| {
        format!(
            "Signed by {} ({}) for {} at {} UTC.",
            s.full_name,
            s.role,
            s.meaning,
            crate::web::fmt_time(&s.signed_at)
        )
    })
}

/// Starts exporting the dossier of a locked, signed study, as a job (managers and
/// statisticians); the study page shows its progress and the download.
pub async fn study_dossier_start(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let url = format!("/studies/{}#dossier", access.study.code);
    let result = state.db(move |c| crate::dossier::start_export(c, &actor, &access)).await;
    crate::web::flash_outcome(&url, result, "Not exported: ", |job| {
        format!("Dossier export started (job {}); its progress is below.", job.id)
    })
}

/// One dossier export's line, fetched by htmx while it runs.
#[derive(Template)]
#[template(path = "studies/dossier_job.html")]
pub struct DossierJobPartial {
    pub code: String,
    pub job: crate::jobs::Job,
}

async fn dossier_job(
    state: &web::Data<AppState>,
    access: &StudyAccess,
    id: i32,
) -> Result<(String, crate::jobs::Job), PageError> {
    let sid = access.study.id;
    let job = state.db(move |c| crate::jobs::get_in_study(c, sid, id)).await?;
    if job.kind != crate::jobs::JobKind::DossierExport {
        return Err(Error::NotFound.into());
    }
    Ok((access.study.code.clone(), job))
}

pub async fn study_dossier_job(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let (code, job) = dossier_job(&state, &access, id).await?;
    crate::web::render_partial(&DossierJobPartial { code, job })
}

/// The zip a finished export job wrote.
pub async fn study_dossier_download(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let (code, job) = dossier_job(&state, &access, id).await?;
    if job.status != crate::jobs::JobStatus::Succeeded {
        return Err(Error::Conflict(format!("dossier export {id} is {}", job.status)).into());
    }
    // A dossier stands for the study as locked and signed: not after an unlock voided that.
    let sid = job.study_id.ok_or(Error::NotFound)?;
    let signed = state.db(move |c| crate::studies::lock::state(c, sid)).await?.is_some_and(|s| s.complete());
    if !signed {
        return Err(Error::Conflict(format!(
            "{code} was unlocked after export {id}: its signatures are void; lock, sign and export again"
        ))
        .into());
    }
    let (storage, key) = (state.config.storage.clone(), crate::dossier::job_key(id));
    let len = {
        let (storage, key) = (storage.clone(), key.clone());
        match web::block(move || storage.size(&key)).await.map_err(|e| Error::Internal(e.into()))? {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound.into()),
            // Storage out of reach (network, credentials) is a server fault, not a missing file.
            Err(e) => return Err(Error::Internal(anyhow::anyhow!("reading dossier {id}: {e}")).into()),
        }
    };
    // Streamed from storage (a dossier can be large).
    let read = move |at: u64, n: u64| storage.read_range(&key, at..at + n);
    Ok(crate::web::streamed_download("application/zip", &format!("{code}-dossier-{id}.zip"), len, read, ()))
}

/// Shared by the retire/remove forms that only carry a reason.
pub fn reason_of(form: web::Form<ReasonForm>) -> String {
    form.into_inner().reason
}
