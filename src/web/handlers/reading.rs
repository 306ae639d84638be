//! The annotator's side: their queue, the workbench (viewer + form + drawing), draft saves,
//! submit and reopen, the slide's tiles through the read, and GeoJSON in and out of a read.
//! Every route resolves the read through `reads::open_for`, which applies the blinding rules.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::biomarker::runs;
use serde_json::{Map, Value};

use super::{ReasonForm, StudyNav};
use crate::annotations::reads::{self, Draft, QueueItem, Read, ReadAccess};
use crate::annotations::schema::{self, Definition};
use crate::annotations::{adjudication, campaigns::Campaign, geojson};
use crate::auth::permissions::StudyAccess;
use crate::error::Error;
use crate::slides::{self, Slide};
use crate::web::error::{ApiError, PageError};
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{flash_outcome, render, upload, AppState};

#[derive(Template)]
#[template(path = "reading/queue.html")]
pub struct QueuePage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub items: Vec<QueueItem>,
    pub adjudications: Vec<(Campaign, usize)>,
    /// Reads to do now, and reads that open later (washout).
    pub left: usize,
    pub later: usize,
    pub next_open: Option<i32>,
}

/// The signed-in user's reading queue in a study (any member; empty for most roles).
pub async fn reading_queue(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
) -> Result<HttpResponse, PageError> {
    if access.role.is_none() && !access.is_admin {
        return Err(Error::NotFound.into());
    }
    let (sid, actor) = (access.study.id, user.actor.clone());
    let (items, adjudications) = state
        .db(move |c| {
            let items = match actor.user_id {
                Some(uid) => reads::queue(c, sid, uid)?,
                None => Vec::new(),
            };
            let adj = adjudication::queue(c, &actor, sid)?
                .into_iter()
                .map(|(c, ds)| (c, ds.iter().filter(|d| d.adjudicated.is_none()).count()))
                .collect();
            Ok((items, adj))
        })
        .await?;
    // One count everywhere (the study page's reminder too): what can be read now.
    let left = items.iter().filter(|i| i.to_read()).count();
    let later = items.iter().filter(|i| !i.is_open() && !i.read.is_submitted()).count();
    let next_open = items.iter().find(|i| i.to_read()).map(|i| i.read.id);
    let ctx = PageCtx::new(&req, Some(&user), format!("My reading · {}", access.study.code), "studies");
    render(
        &ctx,
        &QueuePage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "queue"),
            items,
            adjudications,
            left,
            later,
            next_open,
        },
    )
}

#[derive(Template)]
#[template(path = "reading/workbench.html")]
pub struct WorkbenchPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub read: Read,
    pub campaign: Campaign,
    pub editable: bool,
    /// Whose read it is, as shown to someone else ("Kim Minji's", or "a reader" to the adjudicator).
    pub reader_label: String,
    /// The study takes changes (not locked or archived): otherwise nothing may be reopened.
    pub study_editable: bool,
    pub own: bool,
    pub definition: Definition,
    pub case_values: Vec<(String, String)>,
    pub mpp: String,
    pub prev: Option<i32>,
    pub next: Option<i32>,
    pub total: i64,
    pub history: Vec<crate::audit::AuditEvent>,
    /// AI-assisted campaigns: the run's model and its result on this slide.
    pub ai: Option<(String, Option<runs::SlideResultRow>)>,
}

impl WorkbenchPage {
    pub fn base(&self) -> String {
        format!("/studies/{}/reads/{}", self.nav.code, self.read.id)
    }
    pub fn value(&self, field: &str) -> String {
        self.read.value(field)
    }
}

/// The read `id` as `user` may open it (`reads::open_for`: blinding and ownership), in the
/// study the handler's extractor checked.
async fn read_for(state: &AppState, user: &CurrentUser, access: &StudyAccess, id: i32) -> Result<ReadAccess, Error> {
    let (actor, a2) = (user.actor.clone(), access.clone());
    state.db(move |c| reads::open_for(c, &actor, &a2, id)).await
}

pub async fn workbench(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let ra = read_for(&state, &user, &access, id).await?;
    // The adjudicator opens reads to see the slide and the regions, blinded like a reader: no
    // reader's name, no history, no AI.
    let blinded = adjudicator_view(&ra, &access);
    let sid = access.study.id;
    let (read, campaign) = (ra.read.clone(), ra.campaign.clone());
    let (r2, c2) = (read.clone(), campaign.clone());
    let (definition, case_values, slide, (prev, next), total, history, ai) = state
        .db(move |c| {
            let def = schema::require_current(c, sid)?.definition();
            let case_values = reads::visible_case_values(c, &c2, r2.slide_id)?;
            let slide = slides::get_by_id(c, sid, r2.slide_id)?;
            let total: i64 = {
                use crate::db::schema::reads as t;
                use diesel::prelude::*;
                t::table
                    .filter(t::campaign_id.eq(r2.campaign_id))
                    .filter(t::reader_id.eq(r2.reader_id))
                    .count()
                    .get_result(c)?
            };
            let ai = match c2.ai_run_id {
                Some(run_id) => Some((
                    runs::get(c, sid, run_id)?.model(),
                    runs::slide_result(c, run_id, r2.slide_id)?.map(|(r, _)| r),
                )),
                None => None,
            };
            Ok((def, case_values, slide, reads::neighbours(c, &r2)?, total, reads::history(c, sid, &r2)?, ai))
        })
        .await?;
    let ctx =
        PageCtx::new(&req, Some(&user), format!("Read {} of {} · {}", read.position, total, campaign.name), "studies");
    let page = WorkbenchPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "queue"),
        editable: ra.editable() && access.study.ensure_editable().is_ok(),
        study_editable: access.study.ensure_editable().is_ok(),
        own: ra.own,
        read,
        campaign,
        definition,
        case_values,
        mpp: slide.mpp_x.map(|m| format!("{m:.4}")).unwrap_or_default(),
        // Next/previous only walk the reader's own queue.
        prev: if ra.own { prev } else { None },
        next: if ra.own { next } else { None },
        total,
        history: if blinded { Vec::new() } else { history },
        ai: if blinded { None } else { ai },
        reader_label: if blinded { "a reader's".into() } else { format!("{}'s", ra.read.reader) },
    };
    render(&ctx, &page)
}

/// A read opened by the campaign's adjudicator (not its reader, without the right to review
/// reads): shown blinded.
fn adjudicator_view(ra: &ReadAccess, access: &StudyAccess) -> bool {
    !ra.own && !access.can(crate::auth::permissions::Permission::ViewReads)
}

/// The read's regions as the workbench loads them.
pub async fn read_regions(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let ra = read_for(&state, &user, &access, id).await?;
    let read_id = ra.read.id;
    let regions = state.db(move |c| reads::regions(c, read_id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"regions": regions})))
}

/// The read's slide with the campaign's run's result and heatmap on it, for an AI-assisted
/// reader; 404 in unaided campaigns and for the blinded adjudicator.
async fn ai_of_read(
    state: &AppState,
    user: &CurrentUser,
    access: &StudyAccess,
    id: i32,
) -> Result<(i32, Slide, runs::SlideResultRow, Value), Error> {
    let ra = read_for(state, user, access, id).await?;
    if adjudicator_view(&ra, access) {
        return Err(Error::NotFound);
    }
    let (run_id, slide_id, sid) = (ra.campaign.ai_run_id.ok_or(Error::NotFound)?, ra.read.slide_id, access.study.id);
    let (slide, (result, heatmap)) = state
        .db(move |c| {
            let slide = slides::get_by_id(c, sid, slide_id)?;
            Ok((slide, runs::slide_result(c, run_id, slide_id)?.ok_or(Error::NotFound)?))
        })
        .await?;
    Ok((run_id, slide, result, heatmap))
}

/// What an AI-assisted reader sees of the campaign's run on the slide: phenotype, scores,
/// densities, flags and the heatmap (never the slide's label). 404 in unaided campaigns.
pub async fn read_ai(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let (run_id, _, result, heatmap) = ai_of_read(&state, &user, &access, id).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({
        "run": run_id,
        "ai": ai_summary(&result),
        "cell_px": heatmap["cell_px"],
        "cells": heatmap["cells"],
    })))
}

/// The run's heatmap over the read's slide as an image (tissue only), for AI-assisted readers;
/// 404 wherever `ai.json` is.
pub async fn read_ai_png(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let (run_id, slide, _, heatmap) = ai_of_read(&state, &user, &access, id).await?;
    Ok(super::slides::heatmap_image(&state, &req, slide, run_id, heatmap).await?)
}

/// A slide result without its label (readers are blinded to slide labels).
fn ai_summary(r: &runs::SlideResultRow) -> serde_json::Value {
    serde_json::json!({
        "status": r.status, "phenotype": r.phenotype, "inflamed_share": r.inflamed_share,
        "excluded_share": r.excluded_share, "desert_share": r.desert_share,
        "itil_density_median": r.itil_density_median, "stil_density_median": r.stil_density_median,
        "grid_cells_scored": r.grid_cells_scored, "flags": r.flags,
    })
}

/// Drafts can carry every region of a slide (100,000 points are ~11 MB of JSON).
const DRAFT_LIMIT: usize = 128 << 20;

/// Draft autosave from the workbench (JSON in, JSON out). The body is read only after the
/// read's access check: someone who may not write this read sends nothing into memory.
pub async fn read_draft(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = path.into_inner();
    let (actor, a2) = (user.actor.clone(), access.clone());
    state.db(move |c| reads::open_for(c, &actor, &a2, id)).await?;
    let body = match payload.to_bytes_limited(DRAFT_LIMIT).await {
        Ok(body) => body.map_err(|e| Error::invalid("draft", format!("the draft could not be read: {e}")))?,
        Err(_) => return Err(Error::invalid("draft", format!("over the limit of {} MiB", DRAFT_LIMIT >> 20)).into()),
    };
    let draft: Draft = serde_json::from_slice(&body).map_err(|e| Error::invalid("draft", e.to_string()))?;
    let actor = user.actor.clone();
    let saved = state.db(move |c| reads::save_draft(c, &actor, &access, id, &draft)).await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// The form's `field.<name>` inputs as a values map.
fn form_values(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("field.").map(|f| (f.to_string(), Value::String(v.clone()))))
        .collect()
}

pub async fn read_submit(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let values = form_values(&form);
    let actor = user.actor.clone();
    let url = format!("/studies/{code}/reads/{id}");
    let result = state
        .db(move |c| {
            reads::submit(c, &actor, &access, id, &values)?;
            let read = reads::open_for(c, &actor, &access, id)?.read;
            reads::neighbours(c, &read)
        })
        .await;
    match result {
        Ok((_, Some(next))) => Ok(redirect_with_flash(
            &format!("/studies/{code}/reads/{next}"),
            "ok",
            "Read submitted. Here is your next slide.",
        )),
        Ok((_, None)) => Ok(redirect_with_flash(&format!("/studies/{code}/reading"), "ok", "Read submitted.")),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            Ok(redirect_with_flash(&url, "error", &format!("Not submitted: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn read_reopen(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let actor = user.actor.clone();
    let url = format!("/studies/{code}/reads/{id}");
    let reason = form.into_inner().reason;
    let result = state.db(move |c| reads::reopen(c, &actor, &access, id, &reason)).await;
    flash_outcome(&url, result, "", |()| "The read is open for changes; submit it again when done.".into())
}

/// The read's regions as QuPath GeoJSON (to continue in QuPath).
pub async fn read_geojson(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let ra = read_for(&state, &user, &access, id).await?;
    let read_id = ra.read.id;
    let regions = state.db(move |c| reads::regions(c, read_id)).await?;
    let mut bytes = Vec::new();
    geojson::write(&regions, &mut bytes).map_err(|e| Error::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/geo+json")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"read-{read_id}.geojson\"")))
        .body(bytes))
}

/// Adds the regions of an uploaded QuPath GeoJSON file to the reader's draft.
pub async fn read_geojson_import(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let url = format!("/studies/{code}/reads/{id}");
    // The read's access check comes before the upload is read.
    let (actor, a2) = (user.actor.clone(), access.clone());
    state.db(move |c| reads::open_for(c, &actor, &a2, id)).await?;
    let dir =
        crate::tmp::PrivateDir::create(&state.config.tmp_dir(), "geojson").map_err(|e| Error::Internal(e.into()))?;
    let outcome = async {
        let (_, saved) = upload::save_to_dir(payload, dir.path(), 512 << 20).await?;
        let file = saved.first().ok_or_else(|| Error::invalid("file", "choose a GeoJSON file"))?;
        let bytes = std::fs::read(&file.path).map_err(|e| Error::Internal(e.into()))?;
        let actor = user.actor.clone();
        state.db(move |c| reads::import_regions(c, &actor, &access, id, &bytes, false)).await
    }
    .await;
    drop(dir);
    flash_outcome(&url, outcome, "Not imported: ", |s| {
        format!("Imported: the read now has {} regions.", s.region_count)
    })
}

/// The slide behind a read, for its tiles (the reader never needs the slide's own URL).
async fn slide_for_read(state: &AppState, user: &CurrentUser, access: &StudyAccess, id: i32) -> Result<Slide, Error> {
    let ra = read_for(state, user, access, id).await?;
    let (sid, slide_id) = (access.study.id, ra.read.slide_id);
    state.db(move |c| slides::get_by_id(c, sid, slide_id)).await
}

pub async fn read_dzi(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let slide = slide_for_read(&state, &user, &access, id).await?;
    Ok(super::slides::dzi_response(&req, &slide))
}

pub async fn read_tile(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32, u32, u64, u64)>,
) -> Result<HttpResponse, PageError> {
    let (_, id, level, col, row) = path.into_inner();
    let slide = slide_for_read(&state, &user, &access, id).await?;
    super::slides::image(&state, &req, slide, format!("{level}-{col}-{row}"), move |tiles, sha, file| {
        tiles.tile(sha, file, level, col, row)
    })
    .await
}
