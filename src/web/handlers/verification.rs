//! Source data verification: progress by site, every enrolled subject's forms (paged, CSV), the
//! monitoring plan's rule, and a monitor marking a subject's form verified from the case page.
//! Annotators are blinded to it (404).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::events::RecordQuery;
use super::StudyNav;
use crate::auth::permissions::Permission;
use crate::db::paging::{Page, PageRequest};
use crate::error::Error;
use crate::quality::sdv::{self, SdvRule, SiteProgress, SubjectForms};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, InStudy, PageCtx};
use crate::web::{render, AppState, Pager};

#[derive(Template)]
#[template(path = "verification/index.html")]
pub struct VerificationPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub forms: Vec<String>,
    pub sites: Vec<SiteProgress>,
    pub subjects: Vec<SubjectForms>,
    pub total: i64,
    pub pager: Pager,
    pub rule: SdvRule,
    pub can_set: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
}

pub async fn verification_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let scope = access.sites.clone();
    let (forms, sites, subjects, rule) = state
        .db(move |c| {
            let (forms, sites, subjects) = sdv::progress(c, sid, &scope)?;
            Ok((forms, sites, subjects, sdv::rule(c, sid)?))
        })
        .await?;
    let request = PageRequest::new(q.page, None);
    let total = subjects.len() as i64;
    let items: Vec<SubjectForms> =
        subjects.into_iter().skip(request.offset() as usize).take(request.per_page as usize).collect();
    let page = Page { items, total, page: request.page, per_page: request.per_page };
    let pager = Pager::new(&page, &format!("/studies/{}/verification", access.study.code), &[]);
    let ctx = PageCtx::new(&req, Some(&user), format!("Source data verification · {}", access.study.code), "studies");
    render(
        &ctx,
        &VerificationPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "verification"),
            forms,
            sites,
            subjects: page.items,
            total,
            pager,
            rule,
            can_set: access.can(Permission::EditStudy) && access.study.ensure_editable().is_ok(),
        },
    )
}

pub async fn verification_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let scope = access.sites.clone();
    let bytes = state
        .db(move |c| {
            let (forms, _, subjects) = sdv::progress(c, sid, &scope)?;
            let later = ["later records' forms verified", "later records' forms"].map(String::from);
            let header: Vec<String> =
                ["subject", "site"].iter().map(|s| s.to_string()).chain(forms).chain(later).collect();
            let rows = subjects.into_iter().map(|s| {
                let mut row = vec![s.case, s.site];
                row.extend(s.verified.iter().map(|v| if *v { "verified" } else { "" }.to_string()));
                row.extend([s.later.0.to_string(), s.later.1.to_string()]);
                row
            });
            let mut out = Vec::new();
            crate::export::write_rows(&mut out, header, rows)?;
            Ok(out)
        })
        .await?;
    Ok(crate::web::csv_response(&format!("{}-verification.csv", access.study.code), bytes))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    pub sdv: String,
}

pub async fn verification_rule(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EditStudy>,
    form: web::Form<RuleForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, code, to) = (user.actor.clone(), access.study.code.clone(), form.into_inner().sdv);
    let rule = state.db(move |c| sdv::set_rule(c, &actor, &access, &to)).await?;
    let message = match rule {
        SdvRule::All => "Every form of every enrolled subject must now be verified before the lock.",
        SdvRule::None => "Verification no longer blocks the lock; its progress is still reported.",
    };
    Ok(redirect_with_flash(&format!("/studies/{code}/verification"), "ok", message))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    pub form: String,
}

pub async fn case_verify(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::VerifySource>,
    path: web::Path<(String, String)>,
    // A later record's form (from the record's page, in the query); none: the first event's.
    q: web::Query<RecordQuery>,
    form: web::Form<VerifyForm>,
) -> Result<HttpResponse, PageError> {
    let (code, display) = path.into_inner();
    let form = form.into_inner();
    let q = q.into_inner();
    let record = (!q.event.is_empty() || !q.instrument.is_empty()).then(|| q.key());
    let url = match &record {
        Some(key) => format!("/studies/{code}/cases/{display}/record?{}", crate::cases::records::link(key)),
        None => format!("/studies/{code}/cases/{display}#verification"),
    };
    let (actor, d2, f) = (user.actor.clone(), display.clone(), form.form);
    let f2 = f.clone();
    match state.db(move |c| sdv::verify(c, &actor, &access, &d2, record.as_ref(), &f2)).await {
        Ok(()) => Ok(redirect_with_flash(&url, "ok", &format!("{display}: form {f} verified."))),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}
