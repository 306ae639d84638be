//! A study's analyses: choose the data (an AI run, a reading campaign and the case data) and an
//! analysis, see its tables and plot, export them (CSV, SVG) with the dataset and the
//! `evidentia stats` command that re-computes them; the statistical analysis plan; saved,
//! frozen analyses and their re-run. Annotators are blinded to all of it (404).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::StudyNav;
use crate::analyses::plan::{self, Criterion, Plan, PlanItem, Verdict};
use crate::analyses::saved::{self, Rerun, SavedRow};
use crate::analyses::{self, dataset, Computed, Request, Sources};
use crate::annotations::campaigns::{self, Campaign};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::biomarker::runs::{self, Run};
use crate::error::Error;
use crate::stats::describe::{self, Field, Form, Input};
use crate::web::error::PageError;
use crate::web::extract::{perm, InStudy, PageCtx};
use crate::web::{csv_response, csv_rows_download, flash_outcome, render, AppState};

/// Parses an analysis query string; repeated keys (a multiple select) join with commas.
fn parse_query(query: &str) -> Result<Request, Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| Error::invalid("query", e.to_string()))?;
    let mut merged: Vec<(String, String)> = Vec::new();
    // An empty value ("none" in a select) is the same as no value.
    for (k, v) in pairs.into_iter().filter(|(_, v)| !v.trim().is_empty()) {
        match merged.iter_mut().find(|(mk, _)| *mk == k) {
            Some((_, mv)) if !v.is_empty() => {
                if !mv.is_empty() {
                    mv.push(',');
                }
                mv.push_str(&v);
            }
            Some(_) => {}
            None => merged.push((k, v)),
        }
    }
    let text = serde_urlencoded::to_string(&merged).map_err(|e| Error::invalid("query", e.to_string()))?;
    Request::parse(&text)
}

/// The runs and campaigns a dataset can draw on.
struct SourceChoices {
    runs: Vec<Run>,
    campaigns: Vec<Campaign>,
}

fn choices(c: &mut crate::db::Conn, study_id: crate::studies::StudyId) -> Result<SourceChoices, Error> {
    // Training campaigns never feed the analysis set.
    let campaigns = campaigns::list(c, study_id)?.into_iter().filter(|c| !c.is_training()).collect();
    Ok(SourceChoices { runs: runs::list(c, study_id)?, campaigns })
}

#[derive(Template)]
#[template(path = "analyses/index.html")]
pub struct IndexPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub runs: Vec<Run>,
    pub campaigns: Vec<Campaign>,
    pub forms: &'static [Form],
    pub saved: Vec<SavedRow>,
    pub plan: Option<Plan>,
    pub signed: Option<Plan>,
    pub can_manage: bool,
}

impl IndexPage {
    pub fn stale_count(&self) -> usize {
        self.saved.iter().filter(|r| r.is_stale()).count()
    }
}

pub async fn analyses_index(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (ch, saved, latest, signed) = state
        .db(move |c| Ok((choices(c, sid)?, saved::list_checked(c, sid)?, plan::latest(c, sid)?, plan::signed(c, sid)?)))
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Analyses · {}", access.study.code), "studies");
    render(
        &ctx,
        &IndexPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "analyses"),
            runs: ch.runs,
            campaigns: ch.campaigns,
            forms: describe::forms(),
            saved,
            plan: latest,
            signed,
            can_manage: access.can(Permission::ManageAnalyses),
        },
    )
}

pub fn saved_csv_header() -> Vec<String> {
    [
        "id",
        "title",
        "analysis",
        "plan_item",
        "criterion",
        "observed",
        "verdict",
        "input_sha256",
        "input_rows",
        "input_unchanged",
        "software",
        "status",
        "status_reason",
        "saved_by",
        "saved_at",
        "query",
    ]
    .map(String::from)
    .to_vec()
}

pub async fn saved_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let list = state.db(move |c| saved::list_checked(c, sid)).await?;
    let rows = list
        .iter()
        .map(|r| {
            let s = &r.saved;
            vec![
                s.id.to_string(),
                s.title.clone(),
                s.analysis.to_string(),
                s.plan_item.clone().unwrap_or_default(),
                r.criterion_label(),
                r.observed.map(|o| o.to_string()).unwrap_or_default(),
                r.verdict.map(|v| v.as_str().to_string()).unwrap_or_else(|| "exploratory".into()),
                s.input_sha256.clone(),
                s.input_rows.to_string(),
                match r.stale {
                    Some(true) => "no".into(),
                    Some(false) => "yes".into(),
                    None => String::new(),
                },
                s.software_version.clone(),
                s.status.to_string(),
                s.status_reason.clone().unwrap_or_default(),
                s.created_by.clone(),
                crate::web::fmt_time(&s.created_at),
                s.query.clone(),
            ]
        })
        .collect();
    csv_rows_download(&format!("{}-saved-analyses.csv", access.study.code), saved_csv_header(), rows)
}

#[derive(Template)]
#[template(path = "analyses/new.html")]
pub struct NewPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub runs: Vec<Run>,
    pub campaigns: Vec<Campaign>,
    /// Every analysis's form; `form` is the one chosen.
    pub forms: &'static [Form],
    pub form: &'static Form,
    pub req: Request,
    pub columns: Vec<dataset::ColumnInfo>,
    pub rows: usize,
}

impl NewPage {
    /// The request's current value of a field.
    pub fn value(&self, field: &str) -> String {
        self.req.value(field).to_string()
    }
    pub fn selected(&self, field: &str, column: &str) -> bool {
        self.value(field).split(',').any(|c| c.trim() == column)
    }
    pub fn is_run(&self, id: &i32) -> bool {
        self.req.run == Some(*id)
    }
    pub fn is_campaign(&self, id: &i32) -> bool {
        self.req.campaign == Some(*id)
    }
    pub fn is_campaign2(&self, id: &i32) -> bool {
        self.req.campaign2 == Some(*id)
    }
    /// The data sources as a query string (for the dataset link).
    pub fn sources_query(&self) -> String {
        let s = self.req.sources();
        let pairs: Vec<(&str, i32)> = [("run", s.run), ("campaign", s.campaign), ("campaign2", s.campaign2)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
    /// How the form asks for a field (`column`, `optional`, `columns`, `choice`, `text`).
    pub fn input(&self, field: &Field) -> &'static str {
        match field.input {
            Input::Column => "column",
            Input::OptionalColumn => "optional",
            Input::Columns => "columns",
            Input::Choice => "choice",
            Input::Text => "text",
        }
    }
}

/// Sensible first choices for the demo-like data this page usually sees, when the columns exist.
fn defaults(req: &mut Request, columns: &[dataset::ColumnInfo]) {
    let has = |c: &str| columns.iter().any(|x| x.name == c);
    let first = |cands: &[&str]| cands.iter().find(|c| has(c)).map(|c| c.to_string()).unwrap_or_default();
    let firsts: &[(&str, &[&str])] = match req.analysis.as_str() {
        "kappa" => &[("a", &["ai_phenotype"]), ("b", &["phenotype__reference", "phenotype__majority"])],
        "diagnostic" => &[("test", &["ai_phenotype"]), ("reference", &["phenotype__reference"])],
        "survival" => &[
            ("time", &["pfs_months", "os_months"]),
            ("event", &["progression", "death"]),
            ("group", &["ai_phenotype"]),
        ],
        "cox" => &[("time", &["pfs_months", "os_months"]), ("event", &["progression", "death"])],
        "bland-altman" => &[("a", &["ai_itil"]), ("b", &["til_density__median"])],
        "table1" => &[("group", &["ai_phenotype", "site"])],
        _ => &[],
    };
    for (field, candidates) in firsts {
        req.set_default(field, first(candidates));
    }
    if req.analysis == "diagnostic" && has("ai_phenotype") {
        req.set_default("positive", "inflamed".into());
    }
}

pub async fn analysis_new(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let mut r = parse_query(req.query_string())?;
    let form = match describe::form(&r.analysis) {
        Some(form) => form,
        None => {
            r.analysis = "kappa".into();
            describe::form("kappa").ok_or(Error::NotFound)?
        }
    };
    let sid = access.study.id;
    let sources = r.sources();
    let (ch, data) = state.db(move |c| Ok((choices(c, sid)?, dataset::build(c, sid, &sources)?))).await?;
    defaults(&mut r, &data.columns);
    let ctx = PageCtx::new(&req, Some(&user), format!("New analysis · {}", access.study.code), "studies");
    render(
        &ctx,
        &NewPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "analyses"),
            runs: ch.runs,
            campaigns: ch.campaigns,
            forms: describe::forms(),
            form,
            req: r,
            rows: data.rows.len(),
            columns: data.columns,
        },
    )
}

/// An analysis run for a page: the computation and, against the signed plan, its item and verdict.
async fn run_analysis(
    state: &AppState,
    access: &StudyAccess,
    r: Request,
) -> Result<(Computed, Option<(PlanItem, Option<f64>, Verdict)>, Option<Plan>), Error> {
    let sid = access.study.id;
    let (computed, signed) = state.db(move |c| Ok((analyses::compute(c, sid, &r)?.0, plan::signed(c, sid)?))).await?;
    let item = signed.as_ref().and_then(|p| p.item_for(&computed.query)).map(|item| {
        let (obs, verdict) = match (&item.criterion, &computed.outcome) {
            (Some(c), Ok(o)) => c.evaluate(&o.to_json()),
            (Some(_), Err(_)) => (None, Verdict::Undetermined),
            (None, _) => (None, Verdict::Undetermined),
        };
        (item, obs, verdict)
    });
    Ok((computed, item, signed))
}

#[derive(Template)]
#[template(path = "analyses/result.html")]
pub struct ResultPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub c: Computed,
    pub tables: String,
    pub plot: Option<String>,
    pub item: Option<(PlanItem, Option<f64>, Verdict)>,
    pub plan_draft: bool,
    pub can_manage: bool,
    pub metrics: Vec<String>,
    pub command: String,
    pub dataset_file: String,
}

impl ResultPage {
    pub fn params(&self) -> Vec<(String, String)> {
        analyses::labelled_params(&self.c.analysis)
    }
}

pub async fn analysis_result(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let r = parse_query(req.query_string())?;
    let (c, item, _) = run_analysis(&state, &access, r).await?;
    let sid = access.study.id;
    let latest = state.db(move |conn| plan::latest(conn, sid)).await?;
    let (tables, plot, metrics) = match &c.outcome {
        Ok(o) => {
            let json = o.to_json();
            let metrics = analyses::leaves(&json).into_iter().filter(|(_, v)| v.is_number()).map(|(p, _)| p).collect();
            (result_html(&json), crate::stats::plots::plot(o), metrics)
        }
        Err(_) => (String::new(), None, Vec::new()),
    };
    let dataset_file = dataset_file_name(&access.study.code, &c.sources);
    let command = c.command(&dataset_file);
    let ctx = PageCtx::new(
        &req,
        Some(&user),
        format!("{} · {}", analyses::title_of(c.analysis.name()), access.study.code),
        "studies",
    );
    render(
        &ctx,
        &ResultPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "analyses"),
            tables,
            plot,
            item,
            plan_draft: latest.as_ref().is_some_and(Plan::is_draft) || latest.is_none(),
            can_manage: access.can(Permission::ManageAnalyses) && access.study.ensure_editable().is_ok(),
            metrics,
            command,
            dataset_file,
            c,
        },
    )
}

fn dataset_file_name(code: &str, s: &Sources) -> String {
    let mut name = format!("{code}-dataset");
    if let Some(r) = s.run {
        name.push_str(&format!("-run{r}"));
    }
    for c in [s.campaign, s.campaign2].into_iter().flatten() {
        name.push_str(&format!("-campaign{c}"));
    }
    name + ".csv"
}

pub async fn analysis_dataset_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let r = parse_query(req.query_string())?;
    let sid = access.study.id;
    let sources = r.sources();
    let s2 = sources.clone();
    let bytes = state.db(move |c| dataset::build(c, sid, &s2)?.to_csv()).await?;
    Ok(csv_response(&dataset_file_name(&access.study.code, &sources), bytes))
}

/// A result as CSV: one row per value, named by its path (e.g. `opa.wilson_low`).
fn result_csv(json: &Value) -> Result<Vec<u8>, Error> {
    let rows = analyses::leaves(json)
        .into_iter()
        .map(|(p, v)| {
            vec![
                p,
                match v {
                    Value::Null => String::new(),
                    Value::String(s) => s,
                    other => other.to_string(),
                },
            ]
        })
        .collect::<Vec<_>>();
    let mut bytes = Vec::new();
    crate::export::write_rows(&mut bytes, ["statistic", "value"], rows).map_err(Error::Internal)?;
    Ok(bytes)
}

pub async fn analysis_result_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let (c, _, _) = run_analysis(&state, &access, parse_query(req.query_string())?).await?;
    let outcome = c.outcome.map_err(|e| Error::invalid("analysis", e))?;
    Ok(csv_response(&format!("{}-{}.csv", access.study.code, c.analysis.name()), result_csv(&outcome.to_json())?))
}

fn svg_response(name: &str, svg: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CONTENT_DISPOSITION, format!("inline; filename=\"{name}\"")))
        .body(svg)
}

pub async fn analysis_plot_svg(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let (c, _, _) = run_analysis(&state, &access, parse_query(req.query_string())?).await?;
    let svg = c.outcome.ok().as_ref().and_then(crate::stats::plots::plot).ok_or(Error::NotFound)?;
    Ok(svg_response(&format!("{}-{}.svg", access.study.code, c.analysis.name()), svg))
}

fn png_response(name: &str, svg: &str) -> Result<HttpResponse, Error> {
    let bytes = crate::stats::plots::png(svg, 2.0).map_err(Error::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .body(bytes))
}

/// The plot as PNG at twice its size (for slides and documents).
pub async fn analysis_plot_png(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let (c, _, _) = run_analysis(&state, &access, parse_query(req.query_string())?).await?;
    let svg = c.outcome.ok().as_ref().and_then(crate::stats::plots::plot).ok_or(Error::NotFound)?;
    Ok(png_response(&format!("{}-{}.png", access.study.code, c.analysis.name()), &svg)?)
}

/// A saved analysis's frozen plot (SVG): (study code, id, SVG); 404 without one.
async fn saved_plot(
    state: &web::Data<AppState>,
    access: &StudyAccess,
    path: web::Path<(String, i32)>,
) -> Result<(String, i32, String), PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let row = state.db(move |c| saved::get(c, sid, id)).await?;
    if row.saved.plot_svg.is_empty() {
        return Err(Error::NotFound.into());
    }
    Ok((code, id, row.saved.plot_svg))
}

pub async fn saved_plot_png(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id, svg) = saved_plot(&state, &access, path).await?;
    Ok(png_response(&format!("{code}-analysis-{id}.png"), &svg)?)
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub title: String,
}

pub async fn analysis_save(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
    form: web::Form<SaveForm>,
) -> Result<HttpResponse, PageError> {
    let code = access.study.code.clone();
    let (actor, f) = (user.actor.clone(), form.into_inner());
    let back = format!("/studies/{code}/analyses/result?{}", f.query);
    let result = match Request::parse(&f.query) {
        Ok(r) => state.db(move |c| saved::save(c, &actor, &access, &r, &f.title)).await,
        Err(e) => Err(e),
    };
    let url = match &result {
        Ok(s) => format!("/studies/{code}/analyses/saved/{}", s.id),
        Err(_) => back,
    };
    flash_outcome(&url, result, "Not saved: ", |s| format!("Saved as analysis #{}: “{}”.", s.id, s.title))
}

#[derive(Template)]
#[template(path = "analyses/saved.html")]
pub struct SavedPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub row: SavedRow,
    pub tables: String,
    pub rerun: Option<Rerun>,
    pub can_manage: bool,
    pub command: String,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RerunQuery {
    #[serde(default)]
    pub rerun: Option<String>,
}

pub async fn saved_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
    q: web::Query<RerunQuery>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let want_rerun = q.rerun.is_some();
    let (row, rerun) = state
        .db(move |c| {
            let mut row = saved::get(c, sid, id)?;
            saved::freshness(c, sid, std::slice::from_mut(&mut row))?;
            let rerun = if want_rerun { Some(saved::rerun(c, sid, &row.saved)?) } else { None };
            Ok((row, rerun))
        })
        .await?;
    let r = Request::parse(&row.saved.query)?;
    let command = analyses::stats_command(&row.saved.analysis()?, r.level()?, &dataset_file_name(&code, &r.sources()));
    let ctx = PageCtx::new(&req, Some(&user), format!("Saved analysis {id} · {code}"), "studies");
    render(
        &ctx,
        &SavedPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "analyses"),
            tables: result_html(&row.saved.result()),
            row,
            rerun,
            can_manage: access.can(Permission::ManageAnalyses) && access.study.ensure_editable().is_ok(),
            command,
        },
    )
}

pub async fn saved_plot_svg(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id, svg) = saved_plot(&state, &access, path).await?;
    Ok(svg_response(&format!("{code}-analysis-{id}.svg"), svg))
}

pub async fn saved_result_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAnalyses>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let row = state.db(move |c| saved::get(c, sid, id)).await?;
    Ok(csv_response(&format!("{code}-analysis-{id}.csv"), result_csv(&row.saved.result())?))
}

pub async fn saved_retire(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
    path: web::Path<(String, i32)>,
    form: web::Form<super::ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let actor = user.actor.clone();
    let reason = form.into_inner().reason;
    let result = state.db(move |c| saved::retire(c, &actor, &access, id, &reason)).await;
    flash_outcome(&format!("/studies/{code}/analyses/saved/{id}"), result, "Not retired: ", |_| {
        format!("Saved analysis #{id} retired.")
    })
}

#[derive(Template)]
#[template(path = "analyses/plan.html")]
pub struct PlanPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub versions: Vec<Plan>,
    /// Per item of the newest version: the newest current saved analysis of it, if any.
    pub results: Vec<(PlanItem, Option<SavedRow>)>,
    pub can_manage: bool,
    pub meanings: &'static [plan::Meaning],
}

impl PlanPage {
    pub fn latest(&self) -> Option<&Plan> {
        self.versions.first()
    }
}

pub async fn plan_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAnalyses>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (versions, saved) = state.db(move |c| Ok((plan::versions(c, sid)?, saved::list_checked(c, sid)?))).await?;
    let results = versions
        .first()
        .map(|p| {
            p.items()
                .into_iter()
                .map(|item| {
                    let s = saved
                        .iter()
                        .rev()
                        .find(|s| {
                            s.saved.status == crate::analyses::saved::SavedStatus::Current
                                && s.saved.query == item.query
                                && s.saved.plan_id == Some(p.id)
                        })
                        .cloned();
                    (item, s)
                })
                .collect()
        })
        .unwrap_or_default();
    let ctx = PageCtx::new(&req, Some(&user), format!("Analysis plan · {}", access.study.code), "studies");
    render(
        &ctx,
        &PlanPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "analyses"),
            versions,
            results,
            can_manage: access.can(Permission::ManageAnalyses) && access.study.ensure_editable().is_ok(),
            meanings: &plan::Meaning::ALL,
        },
    )
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PlanItemForm {
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub value: String,
}

impl PlanItemForm {
    fn criterion(&self) -> Result<Option<Criterion>, Error> {
        if self.metric.trim().is_empty() {
            return Ok(None);
        }
        let value = crate::stats::frame::parse_number(&self.value).ok_or_else(|| {
            Error::invalid("value", format!("'{}' is not a number: the criterion needs a threshold", self.value.trim()))
        })?;
        Ok(Some(Criterion { metric: self.metric.trim().to_string(), op: Criterion::parse_op(&self.op)?, value }))
    }
}

pub async fn plan_add_item(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
    form: web::Form<PlanItemForm>,
) -> Result<HttpResponse, PageError> {
    let code = access.study.code.clone();
    let (actor, f) = (user.actor.clone(), form.into_inner());
    let result = match f.criterion() {
        Ok(crit) => {
            let f2 = f.clone();
            state.db(move |c| plan::add_item(c, &actor, &access, &f2.role, &f2.title, &f2.query, crit)).await
        }
        Err(e) => Err(e),
    };
    let url = match &result {
        Ok(_) => format!("/studies/{code}/analyses/plan"),
        Err(_) => format!("/studies/{code}/analyses/result?{}", f.query),
    };
    flash_outcome(&url, result, "Not added to the plan: ", |i| {
        format!("Added {} “{}” to the draft plan.", i.key, i.title)
    })
}

pub async fn plan_remove_item(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (code, key) = path.into_inner();
    let actor = user.actor.clone();
    let k = key.clone();
    let result = state.db(move |c| plan::remove_item(c, &actor, &access, &k)).await;
    flash_outcome(&format!("/studies/{code}/analyses/plan"), result, "Not removed: ", |_| {
        format!("Removed {key} from the draft plan.")
    })
}

pub async fn plan_sign(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
    form: web::Form<crate::web::SignForm>,
) -> Result<HttpResponse, PageError> {
    let code = access.study.code.clone();
    let actor = user.actor.clone();
    let result = state.sign(&req, &user, form.into_inner(), move |c, s| plan::sign(c, &actor, &access, s)).await;
    flash_outcome(&format!("/studies/{code}/analyses/plan"), result, "Not signed: ", |p| {
        format!("Version {} of the analysis plan is signed and frozen.", p.version)
    })
}

pub async fn plan_new_version(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageAnalyses>,
) -> Result<HttpResponse, PageError> {
    let code = access.study.code.clone();
    let actor = user.actor.clone();
    let result = state.db(move |c| plan::new_version(c, &actor, &access)).await;
    flash_outcome(&format!("/studies/{code}/analyses/plan"), result, "No new version: ", |p| {
        format!("Version {} of the plan is a draft copy of the signed one.", p.version)
    })
}

/// The tables of a result, as HTML.
pub fn result_html(json: &Value) -> String {
    crate::report::html::tables(&crate::report::results::tables(json))
}
