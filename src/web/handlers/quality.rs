//! The data quality page: the built-in and custom rules with their counts, findings by site, the
//! findings themselves (filtered, paged, CSV), a custom rule's form, running the rules, and
//! excluding or reopening a finding with a reason. Annotators are blinded to it (404).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{ActionForm, ReasonForm, StudyNav};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::cases::deid::EditDeid;
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::quality::{self, Finding, FindingFilter, FindingStatus, NewRule, RuleRow, Severity};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render_form, AppState, Pager};

#[derive(Template)]
#[template(path = "quality/index.html")]
pub struct QualityPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub rules: Vec<RuleRow>,
    /// (site, open errors, open warnings, excluded)
    pub by_site: Vec<(String, i64, i64, i64)>,
    pub findings: Vec<Finding>,
    pub total: i64,
    pub filter: FindingFilter,
    pub pager: Pager,
    pub csv_query: String,
    pub sites: Vec<String>,
    pub statuses: Vec<&'static str>,
    pub severities: Vec<&'static str>,
    pub can_manage: bool,
    pub can_run: bool,
    /// Monitors and managers raise queries from findings.
    pub can_raise: bool,
    pub form: NewRule,
    pub errors: FieldErrors,
}

impl QualityPage {
    pub fn open_errors(&self) -> i64 {
        self.by_site.iter().map(|s| s.1).sum()
    }
    pub fn open_warnings(&self) -> i64 {
        self.by_site.iter().map(|s| s.2).sum()
    }
}

fn filter_params(f: &FindingFilter) -> Vec<(&'static str, String)> {
    vec![
        ("status", f.status.clone()),
        ("rule", f.rule.clone()),
        ("site", f.site.clone()),
        ("severity", f.severity.clone()),
        ("case", f.case.clone()),
    ]
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    filter: FindingFilter,
    form: NewRule,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let f2 = filter.clone();
    let scope = access.sites.clone();
    let (rules, by_site, found, sites) = state
        .db(move |c| {
            Ok((
                quality::rules(c, sid, &scope)?,
                quality::by_site(c, sid, &scope)?,
                quality::findings(c, sid, &scope, &f2, PageRequest::new(f2.page, None))?,
                crate::studies::sites::codes_in(c, sid, &scope)?,
            ))
        })
        .await?;
    let base = format!("/studies/{}/quality", access.study.code);
    let (pager, csv_query) = Pager::with_csv_query(&found, &base, &filter_params(&filter));
    let ctx = PageCtx::new(req, Some(user), format!("Data quality · {}", access.study.code), "studies");
    let editable = access.study.ensure_editable().is_ok();
    let page = QualityPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "quality"),
        rules,
        by_site,
        total: found.total,
        findings: found.items,
        filter,
        pager,
        csv_query,
        sites,
        statuses: FindingStatus::ALL.iter().map(|s| s.as_str()).collect(),
        severities: Severity::ALL.iter().map(|s| s.as_str()).collect(),
        can_manage: access.can(Permission::ManageCases) && editable,
        can_run: access.can(Permission::RunChecks),
        can_raise: access.can(Permission::RaiseQueries) && editable,
        form,
        errors,
    };
    render_form(&ctx, &page, &page.errors)
}

/// The page opens on the open findings.
fn with_default_status(mut filter: FindingFilter) -> FindingFilter {
    if filter.status.is_empty() {
        filter.status = FindingStatus::Open.as_str().into();
    }
    filter
}

pub async fn quality_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<FindingFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = with_default_status(q.into_inner());
    page(
        &req,
        &state,
        &user,
        access,
        filter,
        NewRule { severity: "error".into(), ..Default::default() },
        FieldErrors::default(),
    )
    .await
}

pub async fn quality_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<FindingFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = q.into_inner();
    let sid = access.study.id;
    let scope = access.sites.clone();
    let bytes = state
        .db(move |c| {
            let all = quality::findings(c, sid, &scope, &filter, PageRequest::all())?;
            let mut out = Vec::new();
            crate::export::write_csv(&mut out, &all.items)?;
            Ok(out)
        })
        .await?;
    Ok(crate::web::csv_response(&format!("{}-quality-findings.csv", access.study.code), bytes))
}

pub async fn quality_run(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::RunChecks>,
) -> Result<HttpResponse, PageError> {
    let (actor, code) = (user.actor.clone(), access.study.code.clone());
    let summary = state.db(move |c| quality::run(c, &actor, &access)).await?;
    Ok(redirect_with_flash(&format!("/studies/{code}/quality"), "ok", &format!("Rules run. {}", summary.sentence())))
}

pub async fn rule_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCases>,
    form: web::Form<NewRule>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (actor, a2, f2) = (user.actor.clone(), access.clone(), form.clone());
    let code = access.study.code.clone();
    let scrubber = state.edit_scrubber.clone();
    match state.db(move |c| quality::create_rule(c, &actor, &a2, &f2, &EditDeid::new(scrubber))).await {
        Ok(rule) => Ok(redirect_with_flash(
            &format!("/studies/{code}/quality?rule={}&status=open", rule.code),
            "ok",
            &format!("Rule {} added and run: its open findings are listed below.", rule.code),
        )),
        Err(Error::Invalid(errors)) => {
            page(&req, &state, &user, access, with_default_status(FindingFilter::default()), form, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn rule_retire(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCases>,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let (code, rule) = path.into_inner();
    let (actor, reason, r2) = (user.actor.clone(), form.into_inner().reason, rule.clone());
    let url = format!("/studies/{code}/quality");
    let scrubber = state.edit_scrubber.clone();
    match state.db(move |c| quality::retire_rule(c, &actor, &access, &r2, &reason, &EditDeid::new(scrubber))).await {
        Ok(()) => Ok(redirect_with_flash(&url, "ok", &format!("Rule {rule} retired; its findings are resolved."))),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}

/// Excludes an open finding or reopens an excluded one (`action`), with a reason.
pub async fn finding_status(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCases>,
    path: web::Path<(String, i32)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let form = form.into_inner();
    let exclude = match form.action.as_str() {
        "exclude" => true,
        "reopen" => false,
        _ => return Err(Error::invalid("action", "exclude or reopen").into()),
    };
    let actor = user.actor.clone();
    let url = format!("/studies/{code}/quality");
    let scrubber = state.edit_scrubber.clone();
    let result = state
        .db(move |c| {
            quality::set_excluded(c, &actor, &access, id, exclude, &form.reason.reason, &EditDeid::new(scrubber))
        })
        .await;
    match result {
        Ok(f) => Ok(redirect_with_flash(
            &format!("{url}?case={}&status={}", f.case, f.status),
            "ok",
            &format!("Finding {id} ({} {}) is now {}.", f.case, f.field, f.status),
        )),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}
