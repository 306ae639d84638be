//! The JSON API under `/api/v1/`: the same permission checks as the pages (404 for studies
//! the caller is not in, 403 for a role without the right). Described by `openapi.json`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::permissions::Permission;
use crate::db::paging::PageRequest;
use crate::error::Error;
use crate::jobs;
use crate::studies::{self, members, sites, StudyListQuery};
use crate::web::error::ApiError;
use crate::web::extract::CurrentUser;
use crate::web::extract::{perm, InStudy};
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

/// The installation's dossier signing key (Ed25519, hex): what `dossier verify --public-key`
/// checks a dossier's manifest signature against. Public; no sign-in needed.
pub async fn signing_key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let data_dir = state.config.data_dir.clone();
    let key = state.db(move |c| crate::dossier::public_key_hex(c, &data_dir).map_err(Error::Internal)).await?;
    Ok(HttpResponse::Ok().json(json!({"algorithm": "Ed25519", "public_key": key})))
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

pub async fn study_get(InStudy { access, .. }: InStudy<perm::View>) -> Result<HttpResponse, ApiError> {
    let mut v = serde_json::to_value(&access.study).map_err(|e| Error::Internal(e.into()))?;
    v["your_role"] = json!(access.role_label());
    Ok(HttpResponse::Ok().json(v))
}

pub async fn sites_list(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSites>,
) -> Result<HttpResponse, ApiError> {
    let sid = access.study.id;
    let list = state.db(move |c| sites::list(c, sid, true)).await?;
    Ok(HttpResponse::Ok().json(json!({"items": list})))
}

pub async fn members_list(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewMembers>,
) -> Result<HttpResponse, ApiError> {
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
    InStudy { access, .. }: InStudy<perm::ViewJobs>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let sid = access.study.id;
    let page = state.db(move |c| jobs::list(c, Some(sid), PageRequest::new(q.page, q.per_page))).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn job_get(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewJobs>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let sid = access.study.id;
    let job = state.db(move |c| jobs::get_in_study(c, sid, id)).await?;
    Ok(HttpResponse::Ok().json(job))
}

/// A case as the API shows it: de-identified values under the dictionary's field names.
#[derive(serde::Serialize)]
struct CaseJson {
    subject_id: String,
    site: String,
    status: String,
    status_reason: Option<String>,
    status_date: Option<chrono::NaiveDate>,
    values: serde_json::Map<String, serde_json::Value>,
    updated_at: chrono::NaiveDateTime,
}

impl From<&crate::cases::Case> for CaseJson {
    fn from(c: &crate::cases::Case) -> Self {
        CaseJson {
            subject_id: c.display_id.clone(),
            site: c.site_code.clone(),
            status: c.status.to_string(),
            status_reason: c.status_reason.clone(),
            status_date: c.status_date,
            values: c.values(),
            updated_at: c.updated_at,
        }
    }
}

pub async fn cases_list(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<crate::cases::CaseFilter>,
) -> Result<HttpResponse, ApiError> {
    let sid = access.study.id;
    let f = q.into_inner();
    let lists = state.case_lists.clone();
    let scope = access.sites.clone();
    let page = state
        .db(move |c| {
            let fields = crate::cases::dictionary::load(c, sid)?;
            crate::cases::list(c, &lists, sid, &scope, &fields, &f, PageRequest::new(f.page, None))
        })
        .await?;
    let items: Vec<CaseJson> = page.items.iter().map(CaseJson::from).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "total": page.total, "page": page.page, "per_page": page.per_page})))
}

pub async fn case_get(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (_, display) = path.into_inner();
    let case = state.db(move |c| crate::cases::visible(c, &access, &display)).await?;
    Ok(HttpResponse::Ok().json(CaseJson::from(&case)))
}

pub async fn dictionary_get(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, ApiError> {
    let sid = access.study.id;
    let fields = state.db(move |c| crate::cases::dictionary::load(c, sid)).await?;
    Ok(HttpResponse::Ok().json(json!({"fields": fields})))
}

fn slide_json(s: &crate::slides::Slide) -> serde_json::Value {
    json!({
        "label": s.label,
        "case": s.case_display_id,
        "site": s.site_code,
        "stain": s.stain,
        "status": s.status,
        "status_reason": s.status_reason,
        "attributes": s.attributes(),
        "sha256": s.sha256,
        "file_size": s.file_size,
        "info": s.info(),
        "created_at": s.created_at,
    })
}

pub async fn slides_list(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    q: web::Query<crate::slides::SlideFilter>,
) -> Result<HttpResponse, ApiError> {
    let sid = access.study.id;
    let f = q.into_inner();
    let page = state.db(move |c| crate::slides::list(c, sid, &f, PageRequest::new(f.page, None))).await?;
    let items: Vec<_> = page.items.iter().map(slide_json).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "total": page.total, "page": page.page, "per_page": page.per_page})))
}

pub async fn slide_get(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (_, label) = path.into_inner();
    let sid = access.study.id;
    let slide = state.db(move |c| crate::slides::get(c, sid, &label)).await?;
    Ok(HttpResponse::Ok().json(slide_json(&slide)))
}

/// Reading campaigns with their progress (not the reads' values).
pub async fn campaigns_list(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCampaigns>,
) -> Result<HttpResponse, ApiError> {
    use crate::annotations::campaigns;
    let sid = access.study.id;
    let items = state
        .db(move |c| {
            let mut items = Vec::new();
            for campaign in campaigns::list(c, sid)? {
                let (readers, overall) = campaigns::progress(c, campaign.id)?;
                let mut v = serde_json::to_value(&campaign).map_err(|e| Error::Internal(e.into()))?;
                v["case_fields"] = json!(campaign.case_fields());
                v["tolerances"] = json!(campaign.tolerances());
                v["progress"] = json!({"readers": readers, "overall": overall});
                items.push(v);
            }
            Ok(items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// A read as JSON. `blind`: for a reader, without the slide's label (it carries the case id)
/// or ids that would link it to other reads.
fn read_json(r: &crate::annotations::reads::Read, blind: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["values"] = json!(r.values());
    if let (true, Some(o)) = (blind, v.as_object_mut()) {
        for k in ["slide", "slide_id", "reader_id"] {
            o.remove(k);
        }
    }
    v
}

/// Every read of a campaign with its slide-level values (roles that review reads).
pub async fn campaign_reads(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewReads>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let sid = access.study.id;
    let list = state
        .db(move |c| {
            crate::annotations::campaigns::get(c, sid, id)?;
            crate::annotations::reads::of_campaign(c, sid, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"items": list.iter().map(|r| read_json(r, false)).collect::<Vec<_>>()})))
}

/// One read with its values and regions, under the blinding rules (its reader, roles that
/// review reads, the campaign's adjudicator; anyone else 404).
pub async fn read_get(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let blind = !access.can(Permission::ViewReads);
    let actor = user.actor.clone();
    let (read, regions) = state
        .db(move |c| {
            let ra = crate::annotations::reads::open_for(c, &actor, &access, id)?;
            Ok((ra.read, crate::annotations::reads::regions(c, id)?))
        })
        .await?;
    let mut v = read_json(&read, blind);
    v["regions"] = json!(regions);
    Ok(HttpResponse::Ok().json(v))
}

/// The caller's own reading queue in a study.
pub async fn reading_queue(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
) -> Result<HttpResponse, ApiError> {
    let (sid, uid, blind) = (access.study.id, user.actor.user_id, !access.can(Permission::ViewReads));
    let items = state
        .db(move |c| match uid {
            Some(uid) => crate::annotations::reads::queue(c, sid, uid),
            None => Ok(Vec::new()),
        })
        .await?;
    let items: Vec<_> = items
        .iter()
        .map(|i| {
            let mut v = read_json(&i.read, blind);
            v["open"] = json!(i.readable());
            v["opens"] = json!(i.opens_label());
            v["hidden"] = json!(i.hidden);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// The campaign's reference per slide (adjudicated where readers disagreed; roles that review reads).
pub async fn campaign_reference(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewReads>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let sid = access.study.id;
    let (fields, reference) = state.db(move |c| crate::annotations::adjudication::reference_table(c, sid, id)).await?;
    Ok(HttpResponse::Ok().json(json!({"fields": fields, "slides": reference})))
}
