//! The JSON API under `/api/v1/`: the same permission checks as the pages (404 for studies
//! the caller is not in, 403 for a role without the right). Described by `openapi.json`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::studies::{load_access, load_access_for};
use crate::auth::permissions::Permission;
use crate::db::paging::PageRequest;
use crate::error::Error;
use crate::jobs;
use crate::studies::{self, members, sites, StudyListQuery};
use crate::web::error::ApiError;
use crate::web::extract::CurrentUser;
use crate::web::AppState;

const OPENAPI: &str = include_str!("../openapi.json");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "username": user.user.username, "full_name": user.user.full_name, "is_admin": user.user.is_admin,
    }))
}

pub async fn studies_list(
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<StudyListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let actor = user.actor.clone();
    let page = state.db(move |c| studies::list_visible(c, &actor, &q, PageRequest::new(q.page, q.per_page))).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn study_get(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = load_access(&state, &user, &path).await?;
    let mut v = serde_json::to_value(&access.study).map_err(|e| Error::Internal(e.into()))?;
    v["your_role"] = json!(access.role_label());
    Ok(HttpResponse::Ok().json(v))
}

pub async fn sites_list(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = load_access_for(&state, &user, &path, Permission::ViewSites).await?;
    let sid = access.study.id;
    let list = state.db(move |c| sites::list(c, sid, true)).await?;
    Ok(HttpResponse::Ok().json(json!({"items": list})))
}

pub async fn members_list(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = load_access_for(&state, &user, &path, Permission::ViewMembers).await?;
    let sid = access.study.id;
    let list = state.db(move |c| members::list(c, sid, true)).await?;
    Ok(HttpResponse::Ok().json(json!({"items": list})))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

pub async fn jobs_list(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let access = load_access_for(&state, &user, &path, Permission::ViewJobs).await?;
    let sid = access.study.id;
    let page = state.db(move |c| jobs::list(c, Some(sid), PageRequest::new(q.page, q.per_page))).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn job_get(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (code, id) = path.into_inner();
    let access = load_access_for(&state, &user, &code, Permission::ViewJobs).await?;
    let sid = access.study.id;
    let job = state.db(move |c| jobs::get_in_study(c, sid, id)).await?;
    Ok(HttpResponse::Ok().json(job))
}
