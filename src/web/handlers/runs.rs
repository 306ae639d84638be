//! AI biomarker runs of a study: the list with a start form, a run's per-slide results (live
//! while its job runs) and their CSV. Annotators are blinded to all of it (404).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::StudyNav;
use crate::auth::permissions::Permission;
use crate::biomarker::compare::{self, Comparison};
use crate::biomarker::registry::{self, ModelRecord};
use crate::biomarker::runs::{self, Run, SlideResultRow};
use crate::web::error::PageError;
use crate::web::extract::{perm, InStudy, PageCtx};
use crate::web::{csv_download, flash_outcome, render, AppState};

#[derive(Template)]
#[template(path = "runs/list.html")]
pub struct RunsListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub runs: Vec<Run>,
    pub models: Vec<ModelRecord>,
    pub can_start: bool,
}

pub async fn runs_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewRuns>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (list, models) = state
        .db(move |c| {
            Ok((
                runs::list(c, sid)?,
                registry::list(c)?.into_iter().filter(|m| m.status == registry::ModelStatus::Active).collect(),
            ))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Biomarker runs · {}", access.study.code), "studies");
    let can_start = access.can(Permission::ManageRuns) && access.study.ensure_editable().is_ok();
    render(&ctx, &RunsListPage { ctx: ctx.clone(), nav: StudyNav::new(&access, "runs"), runs: list, models, can_start })
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StartForm {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub stain: String,
}

pub async fn run_start(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageRuns>,
    form: web::Form<StartForm>,
) -> Result<HttpResponse, PageError> {
    let code = access.study.code.clone();
    let (actor, f) = (user.actor.clone(), form.into_inner());
    let result = state.db(move |c| runs::start(c, &actor, &access, &f.model, &f.site, &f.stain)).await;
    let url = match &result {
        Ok((run, _)) => format!("/studies/{code}/runs/{}", run.id),
        Err(_) => format!("/studies/{code}/runs"),
    };
    flash_outcome(&url, result, "Not started: ", |(run, _)| {
        format!("Run {} of {} started on {} slides.", run.id, run.model(), run.slide_ids().len())
    })
}

#[derive(Template)]
#[template(path = "runs/show.html")]
pub struct RunShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub run: Run,
    pub results: Vec<SlideResultRow>,
    pub job: Option<crate::jobs::Job>,
    pub base: String,
    pub cancel: super::jobs::CancelRights,
    pub csrf: String,
}

impl RunShowPage {
    pub fn finished(&self) -> bool {
        self.job.as_ref().is_none_or(|j| j.is_finished())
    }
}

pub async fn run_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewRuns>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let (run, results, job) = state
        .db(move |c| {
            let run = runs::get(c, sid, id)?;
            let job = run.job_id.map(|j| crate::jobs::get_in_study(c, sid, j)).transpose()?;
            Ok((run.clone(), runs::results(c, run.id)?, job))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Run {id} · {code}"), "studies");
    render(
        &ctx,
        &RunShowPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "runs"),
            run,
            results,
            job,
            base: format!("/studies/{code}/jobs"),
            cancel: super::jobs::CancelRights::in_study(&access, &user),
            csrf: ctx.csrf.clone(),
        },
    )
}

pub async fn run_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewRuns>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let rows = state
        .db(move |c| {
            runs::get(c, sid, id)?;
            runs::results(c, id)
        })
        .await?;
    csv_download(&format!("{code}-run-{id}.csv"), &rows)
}

/// The slide of `label` and its newest AI heatmap (run, JSON); 404 when it has none.
async fn newest_heatmap(
    state: &AppState,
    access: &crate::auth::permissions::StudyAccess,
    label: String,
) -> Result<(crate::slides::Slide, i32, serde_json::Value), crate::error::Error> {
    let sid = access.study.id;
    state
        .db(move |c| {
            let slide = crate::slides::get(c, sid, &label)?;
            let (run, map) = runs::heatmap(c, sid, &label)?.ok_or(crate::error::Error::NotFound)?;
            Ok((slide, run, map))
        })
        .await
}

/// The slide's newest AI heatmap (phenotype per grid cell) for the viewer's overlay; 404 when
/// the slide has none, and for annotators (blinded to the AI).
pub async fn slide_heatmap(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewRuns>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, crate::web::error::ApiError> {
    let (_, run, mut map) = newest_heatmap(&state, &access, path.into_inner().1).await?;
    map["run"] = serde_json::json!(run);
    Ok(HttpResponse::Ok().json(map))
}

/// The same heatmap as an image over the slide: each scored cell's colour over its tissue only.
pub async fn slide_heatmap_png(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewRuns>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, crate::web::error::ApiError> {
    let (slide, run, map) = newest_heatmap(&state, &access, path.into_inner().1).await?;
    Ok(super::slides::heatmap_image(&state, &req, slide, run, map).await?)
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct CompareQuery {
    pub a: i32,
    pub b: i32,
}

#[derive(Template)]
#[template(path = "runs/compare.html")]
pub struct ComparePage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub c: Comparison,
}

impl ComparePage {
    pub fn caption(&self) -> String {
        format!("rows run #{}, columns run #{}", self.c.run_a.id, self.c.run_b.id)
    }
}

async fn load_comparison(
    state: &AppState,
    access: crate::auth::permissions::StudyAccess,
    q: CompareQuery,
) -> Result<(crate::auth::permissions::StudyAccess, Comparison), PageError> {
    let acc = access.clone();
    let c = state.db(move |conn| compare::compare(conn, &acc, q.a, q.b)).await?;
    Ok((access, c))
}

/// Two runs of the study side by side (change control): agreement and what changed per slide.
pub async fn runs_compare(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewRuns>,
    q: web::Query<CompareQuery>,
) -> Result<HttpResponse, PageError> {
    let (access, c) = load_comparison(&state, access, q.into_inner()).await?;
    let ctx = PageCtx::new(
        &req,
        Some(&user),
        format!("Runs {} vs {} · {}", c.run_a.id, c.run_b.id, access.study.code),
        "studies",
    );
    render(&ctx, &ComparePage { ctx: ctx.clone(), nav: StudyNav::new(&access, "runs"), c })
}

pub async fn runs_compare_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewRuns>,
    q: web::Query<CompareQuery>,
) -> Result<HttpResponse, PageError> {
    let (access, c) = load_comparison(&state, access, q.into_inner()).await?;
    let rows: Vec<compare::CompareRow> = c.slides.iter().map(compare::CompareRow).collect();
    csv_download(&format!("{}-runs-{}-vs-{}.csv", access.study.code, c.run_a.id, c.run_b.id), &rows)
}
