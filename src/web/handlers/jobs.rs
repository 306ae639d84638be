//! Job pages: per study and global, with rows that poll their own progress through htmx.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::StudyNav;
use crate::auth::permissions::StudyAccess;
use crate::db::paging::PageRequest;
use crate::error::Error;
use crate::jobs::{self, Job, JobKind};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render, render_partial, AppState, Pager};

#[derive(Template)]
#[template(path = "jobs/list.html")]
pub struct JobsListPage {
    pub ctx: PageCtx,
    pub nav: Option<StudyNav>,
    pub jobs: Vec<Job>,
    pub base: String,
    pub pager: Pager,
    pub cancel: CancelRights,
}

/// One job's row, fetched alone by htmx while the job runs.
#[derive(Template)]
#[template(path = "jobs/row.html")]
pub struct JobRowPartial {
    pub job: Job,
    pub base: String,
    pub csrf: String,
    pub cancel: CancelRights,
}

/// Which jobs the viewer may cancel, to show the button only where it works: every job on the
/// administrators' global page, else the rule of `jobs::may_cancel`.
pub enum CancelRights {
    All,
    InStudy { access: Box<StudyAccess>, actor: String },
}

impl CancelRights {
    pub fn in_study(access: &StudyAccess, user: &CurrentUser) -> Self {
        CancelRights::InStudy { access: Box::new(access.clone()), actor: user.actor.name.clone() }
    }
    pub fn allows(&self, kind: &JobKind, owner: &str) -> bool {
        match self {
            CancelRights::All => true,
            CancelRights::InStudy { access, actor } => jobs::may_cancel(access, actor, *kind, owner),
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
}

pub async fn jobs_study(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewJobs>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let page = state.db(move |c| jobs::list(c, Some(sid), PageRequest::new(q.page, None))).await?;
    let base = format!("/studies/{}/jobs", access.study.code);
    let ctx = PageCtx::new(&req, Some(&user), format!("Jobs · {}", access.study.code), "studies");
    let pager = Pager::new(&page, &base, &[]);
    render(
        &ctx,
        &JobsListPage {
            ctx: ctx.clone(),
            nav: Some(StudyNav::new(&access, "jobs")),
            jobs: page.items,
            base,
            pager,
            cancel: CancelRights::in_study(&access, &user),
        },
    )
}

pub async fn jobs_global(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let page = state.db(move |c| jobs::list(c, None, PageRequest::new(q.page, None))).await?;
    let ctx = PageCtx::new(&req, Some(&user), "Jobs (all)", "jobs");
    let pager = Pager::new(&page, "/admin/jobs", &[]);
    render(
        &ctx,
        &JobsListPage {
            ctx: ctx.clone(),
            nav: None,
            jobs: page.items,
            base: "/admin/jobs".into(),
            pager,
            cancel: CancelRights::All,
        },
    )
}

fn row(
    req: &HttpRequest,
    user: &CurrentUser,
    job: Job,
    base: String,
    cancel: CancelRights,
) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(req, Some(user), "", "");
    render_partial(&JobRowPartial { job, base, csrf: ctx.csrf, cancel })
}

pub async fn job_study_row(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewJobs>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let job = state.db(move |c| jobs::get_in_study(c, sid, id)).await?;
    let cancel = CancelRights::in_study(&access, &user);
    row(&req, &user, job, format!("/studies/{code}/jobs"), cancel)
}

pub async fn job_global_row(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let id = path.into_inner();
    let job = state.db(move |c| jobs::get(c, id)).await?;
    row(&req, &user, job, "/admin/jobs".into(), CancelRights::All)
}

pub async fn job_study_cancel(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewJobs>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let actor = user.actor.clone();
    let url = format!("/studies/{code}/jobs");
    match state.db(move |c| jobs::request_cancel_in_study(c, &actor, &access, id)).await {
        Ok(_) => Ok(redirect_with_flash(&url, "ok", &format!("Job {id}: cancel requested."))),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}

pub async fn job_global_cancel(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let id = path.into_inner();
    let actor = user.actor.clone();
    let result = state.db(move |c| jobs::request_cancel_any(c, &actor, id)).await;
    match result {
        Ok(_) => Ok(redirect_with_flash("/admin/jobs", "ok", &format!("Job {id}: cancel requested."))),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash("/admin/jobs", "error", &m)),
        Err(e) => Err(e.into()),
    }
}
