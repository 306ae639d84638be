//! Audit trail pages: per study (managers, monitors, admins) and global (admins), with
//! filters, paging, CSV export and a chain-verification job.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::StudyNav;
use crate::audit::query::{self, AuditFilter};
use crate::audit::{self as audit_mod, AuditEvent};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::db::paging::PageRequest;
use crate::jobs;
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{csv_download, render, AppState, Pager};

#[derive(Template)]
#[template(path = "audit/list.html")]
pub struct AuditListPage {
    pub ctx: PageCtx,
    pub nav: Option<StudyNav>,
    pub events: Vec<AuditEvent>,
    /// Full names of the events' users (username → name).
    pub names: std::collections::HashMap<String, String>,
    pub filter: AuditFilter,
    pub users: Vec<String>,
    pub actions: Vec<String>,
    pub entities: Vec<String>,
    pub pager: Pager,
    pub base: String,
    pub csv_link: String,
    pub verify_action: String,
    pub can_verify: bool,
}

impl AuditListPage {
    /// The user's full name, else the recorded actor (`cli:…` operators, removed accounts).
    pub fn who(&self, actor: &str) -> String {
        self.names.get(actor).cloned().unwrap_or_else(|| actor.to_string())
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditQuery {
    #[serde(flatten)]
    pub filter: AuditFilter,
    pub page: Option<i64>,
}

fn filter_params(f: &AuditFilter) -> Vec<(&'static str, String)> {
    vec![
        ("user", f.user.clone()),
        ("action", f.action.clone()),
        ("entity", f.entity.clone()),
        ("from", f.from.clone()),
        ("to", f.to.clone()),
    ]
}

/// Withholds the values of events the viewer's study role may not read (`Entity::values_need`);
/// administrators on the global trail (`None`) read everything.
fn withhold_for(events: &mut [crate::audit::AuditEvent], access: Option<&StudyAccess>) {
    let Some(access) = access else { return };
    for e in events {
        if e.entity.values_need().is_some_and(|p| !access.can(p)) {
            e.withhold_values();
        }
    }
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    study: Option<(&StudyAccess, StudyNav)>,
    q: AuditQuery,
    can_verify: bool,
) -> Result<HttpResponse, PageError> {
    let sid = study.as_ref().map(|s| s.0.study.id);
    let f = q.filter.clone();
    let (mut page, (users, actions, entities), names) = state
        .db(move |c| {
            let page = query::list(c, sid, &f, PageRequest::new(q.page, None))?;
            let actors: Vec<&str> = page.items.iter().map(|e| e.actor.as_str()).collect();
            let names = crate::auth::users::full_names(c, &actors)?;
            Ok((page, query::distinct_values(c, sid)?, names))
        })
        .await?;
    withhold_for(&mut page.items, study.as_ref().map(|s| s.0));
    let base = match &study {
        Some((_, nav)) => format!("/studies/{}/audit", nav.code),
        None => "/admin/audit".to_string(),
    };
    let params = filter_params(&q.filter);
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let pager = Pager::new(&page, &base, &borrowed);
    let nonempty: Vec<(&str, &str)> = borrowed.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
    let csv_link = format!("{base}.csv?{}", serde_urlencoded::to_string(&nonempty).unwrap_or_default());
    let title = match &study {
        Some((_, nav)) => format!("Audit trail · {}", nav.code),
        None => "Audit trail (all)".to_string(),
    };
    let section = if study.is_some() { "studies" } else { "audit" };
    let ctx = PageCtx::new(req, Some(user), title, section);
    render(
        &ctx,
        &AuditListPage {
            ctx: ctx.clone(),
            nav: study.map(|s| s.1),
            events: page.items,
            names,
            filter: q.filter,
            users,
            actions,
            entities,
            pager,
            verify_action: format!("{base}/verify"),
            base,
            csv_link,
            can_verify,
        },
    )
}

pub async fn audit_study(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewAudit>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let can_verify = access.can(Permission::RunChecks);
    page(&req, &state, &user, Some((&access, StudyNav::new(&access, "audit"))), q.into_inner(), can_verify).await
}

pub async fn audit_global(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    page(&req, &state, &user, None, q.into_inner(), true).await
}

async fn csv(
    state: &AppState,
    access: Option<&StudyAccess>,
    filter: AuditFilter,
    name: &str,
) -> Result<HttpResponse, PageError> {
    let study_id = access.map(|a| a.study.id);
    let mut page = state.db(move |c| query::list(c, study_id, &filter, PageRequest::all())).await?;
    withhold_for(&mut page.items, access);
    // Oldest first in the file, so that the chain reads in order.
    csv_download(name, page.items.iter().rev())
}

pub async fn audit_study_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewAudit>,
    q: web::Query<AuditFilter>,
) -> Result<HttpResponse, PageError> {
    csv(&state, Some(&access), q.into_inner(), &format!("{}-audit.csv", access.study.code)).await
}

pub async fn audit_global_csv(
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<AuditFilter>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    csv(&state, None, q.into_inner(), "audit.csv").await
}

pub async fn audit_study_verify(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::RunChecks>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let study = access.study.clone();
    let code = study.code.clone();
    let job = state
        .db(move |c| {
            jobs::enqueue(c, &actor, Some(&study), &audit_mod::job::VerifyParams { chain: Some(study.chain().name()) })
        })
        .await?;
    Ok(redirect_with_flash(
        &format!("/studies/{code}/jobs"),
        "ok",
        &format!("Integrity check started (job {}).", job.id),
    ))
}

pub async fn audit_global_verify(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let actor = user.actor.clone();
    let job = state.db(move |c| jobs::enqueue(c, &actor, None, &audit_mod::job::VerifyParams::default())).await?;
    Ok(redirect_with_flash("/admin/jobs", "ok", &format!("Integrity check of every chain started (job {}).", job.id)))
}
