//! Slide pages: the study's slide list, ingest (manifest + files, run as a job), the viewer with
//! its Deep Zoom descriptor, tiles and thumbnails, and slide QC. Every route checks study access;
//! annotators see no slide here (404): their reads hand them theirs (`handlers::reading`).

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{ActionForm, StudyNav};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::slides::dzi::DeepZoom;
use crate::slides::ingest::{self, IngestRecord, SourceFile};
use crate::slides::{self, Slide, SlideFilter};
use crate::studies::sites::{self, Site};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{csv_download, flash_outcome, render, render_outcome, upload, AppState, Pager};

#[derive(Template)]
#[template(path = "slides/list.html")]
pub struct SlidesListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub slides: Vec<Slide>,
    pub total: i64,
    pub filter: SlideFilter,
    pub sites: Vec<Site>,
    pub stains: Vec<String>,
    pub pager: Pager,
    pub csv_query: String,
    pub can_manage: bool,
}

fn filter_params(f: &SlideFilter) -> Vec<(&'static str, String)> {
    vec![
        ("site", f.site.clone()),
        ("stain", f.stain.clone()),
        ("status", f.status.clone()),
        ("q", f.q.clone()),
        ("sort", f.sort.clone()),
        ("dir", f.dir.clone()),
    ]
}

pub async fn slides_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewSlides>,
    q: web::Query<SlideFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = q.into_inner();
    let (sid, f2) = (access.study.id, filter.clone());
    let (page, site_list, stains) = state
        .db(move |c| {
            let page = slides::list(c, sid, &f2, PageRequest::new(f2.page, None))?;
            Ok((page, sites::list(c, sid, true)?, slides::stains(c, sid)?))
        })
        .await?;
    let base = format!("/studies/{}/slides", access.study.code);
    let (pager, csv_query) = Pager::with_csv_query(&page, &base, &filter_params(&filter));
    let ctx = PageCtx::new(&req, Some(&user), format!("Slides · {}", access.study.code), "studies");
    render(
        &ctx,
        &SlidesListPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "slides"),
            total: page.total,
            slides: page.items,
            filter,
            sites: site_list,
            stains,
            pager,
            csv_query,
            can_manage: access.can(Permission::ManageSlides) && access.study.ensure_editable().is_ok(),
        },
    )
}

pub async fn slides_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    q: web::Query<SlideFilter>,
) -> Result<HttpResponse, PageError> {
    let (sid, f) = (access.study.id, q.into_inner());
    let page = state.db(move |c| slides::list(c, sid, &f, PageRequest::all())).await?;
    csv_download(&format!("{}-slides.csv", access.study.code), &page.items)
}

#[derive(Template)]
#[template(path = "slides/ingest.html")]
pub struct SlideIngestPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub sites: Vec<Site>,
    pub ingests: Vec<IngestRecord>,
    pub errors: FieldErrors,
    pub max_mb: u64,
    /// Saved analyses computed on the data as it is now: new slides make them stale.
    pub saved_current: i64,
    /// Why nothing can be ingested (a locked or archived study), if so.
    pub locked: Option<String>,
}

async fn ingest_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (site_list, ingests, saved_current) = state
        .db(move |c| {
            Ok((sites::list(c, sid, false)?, ingest::ingests(c, sid)?, crate::analyses::saved::current_count(c, sid)?))
        })
        .await?;
    let ctx = PageCtx::new(req, Some(user), format!("Ingest slides · {}", access.study.code), "studies");
    let failed = !errors.is_empty();
    let page = SlideIngestPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "slides"),
        sites: site_list,
        ingests,
        errors,
        max_mb: state.config.max_slide_upload_bytes / (1024 * 1024),
        saved_current,
        locked: access.study.ensure_editable().err().map(|_| {
            format!("The study is {}: its slides cannot change, so nothing can be ingested.", access.study.status)
        }),
    };
    render_outcome(&ctx, &page, failed)
}

pub async fn slide_ingest_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageSlides>,
) -> Result<HttpResponse, PageError> {
    ingest_page(&req, &state, &user, access, FieldErrors::default()).await
}

/// Streams the manifest and the slide files to a private folder, checks the manifest, and
/// queues the ingest job; on any problem the folder is removed and nothing is recorded.
pub async fn slide_ingest_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageSlides>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    access.study.ensure_editable()?;
    let tmp = state.config.tmp_dir();
    // Removed when this request ends (an error, a client that went away) unless the ingest
    // job took it.
    let dir = crate::tmp::PrivateDir::create(&tmp, "slide-upload").map_err(|e| Error::Internal(e.into()))?;
    let started = async {
        let (fields, saved) = upload::save_to_dir(payload, dir.path(), state.config.max_slide_upload_bytes).await?;
        let manifest = saved
            .iter()
            .find(|f| f.field == "manifest")
            .ok_or_else(|| Error::invalid("manifest", "choose the manifest CSV"))?;
        let manifest_bytes = std::fs::read(&manifest.path).map_err(|e| Error::Internal(e.into()))?;
        // Files, and folders (a MIRAX slide, a DICOM series) as the browser names their files.
        let uploads: Vec<(String, std::path::PathBuf)> =
            saved.iter().filter(|f| f.field != "manifest").map(|f| (f.file_name.clone(), f.path.clone())).collect();
        let files: Vec<SourceFile> = ingest::arrange_uploads(dir.path(), &uploads)?;
        if files.is_empty() {
            return Err(Error::invalid("files", "choose the slide files named in the manifest"));
        }
        let site = fields.get("site").cloned().unwrap_or_default();
        let (a2, data_dir, dir2) = (access.clone(), state.config.data_dir.clone(), dir.path().to_path_buf());
        let scrubber = state.edit_scrubber.clone();
        let plan = state
            .db(move |c| {
                let key = crate::cases::deid::study_key(c, &data_dir, &a2.study.code)?;
                let mut plan = ingest::plan(c, &a2, &key, &scrubber, &manifest_bytes, &files, Some(&site))?;
                plan.upload_dir = Some(dir2);
                Ok(plan)
            })
            .await?;
        // On object storage the files go into the bucket now, for a worker on any host.
        let storage = state.config.storage.clone();
        let plan = web::block(move || ingest::stage(&storage, plan)).await.map_err(|e| Error::Internal(e.into()))??;
        let (actor, a2, storage, tmp2) =
            (user.actor.clone(), access.clone(), state.config.storage.clone(), tmp.clone());
        state
            .db(move |c| {
                let started = ingest::start(c, &actor, &a2, &storage, &tmp2, &plan, None);
                if started.is_err() {
                    // Not started: the staged files go again.
                    ingest::unstage(&storage, &plan);
                }
                started
            })
            .await
    }
    .await;
    match started {
        Ok((id, _job)) => {
            dir.keep();
            Ok(redirect_with_flash(
                &format!("/studies/{}/slides/ingests/{id}", access.study.code),
                "ok",
                "Upload received: the slides are being de-identified and ingested.",
            ))
        }
        Err(e) => {
            drop(dir);
            match e {
                Error::Invalid(errors) => ingest_page(&req, &state, &user, access, errors).await,
                e => Err(e.into()),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "slides/ingest_show.html")]
pub struct SlideIngestShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub ingest: IngestRecord,
    pub rows: Vec<ingest::RowOutcome>,
    pub job: Option<crate::jobs::Job>,
    /// For the job row partial.
    pub base: String,
    pub cancel: super::jobs::CancelRights,
    pub csrf: String,
}

pub async fn slide_ingest_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageSlides>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let (record, job) = state
        .db(move |c| {
            let record = ingest::ingests(c, sid)?.into_iter().find(|r| r.id == id).ok_or(Error::NotFound)?;
            let job = match record.job_id {
                Some(j) => Some(crate::jobs::get_in_study(c, sid, j)?),
                None => None,
            };
            Ok((record, job))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Slide ingest #{id} · {code}"), "studies");
    render(
        &ctx,
        &SlideIngestShowPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "slides"),
            rows: record.rows(),
            ingest: record,
            job,
            base: format!("/studies/{code}/jobs"),
            cancel: super::jobs::CancelRights::in_study(&access, &user),
            csrf: ctx.csrf.clone(),
        },
    )
}

#[derive(Template)]
#[template(path = "slides/show.html")]
pub struct SlideShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub slide: Slide,
    pub info: serde_json::Value,
    pub attributes: Vec<(String, String)>,
    pub metadata: Vec<(String, String)>,
    pub removed: Vec<String>,
    /// "pixels re-encoded from Hamamatsu NDPI, JPEG quality 90 (PSNR 50.8 dB)" for a converted slide.
    pub conversion: Option<String>,
    /// For a slide from DICOM: the PS3.15 profile, its option and what it kept.
    pub profile: Option<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub position: String,
    pub history: Vec<crate::audit::AuditEvent>,
    pub can_manage: bool,
    pub can_cases: bool,
    pub reasons: Vec<&'static str>,
}

impl SlideShowPage {
    pub fn mpp(&self) -> String {
        self.slide.mpp_x.map(|m| format!("{m:.4}")).unwrap_or_default()
    }
    pub fn level_rows(&self) -> Vec<(usize, String, String)> {
        self.info["levels"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .enumerate()
                    .map(|(i, l)| {
                        (
                            i,
                            format!("{} × {}", l["width"], l["height"]),
                            format!("{:.2}", l["downsample"].as_f64().unwrap_or(0.0)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub async fn slide_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (code, label) = path.into_inner();
    let sid = access.study.id;
    let can_history = access.can(Permission::ViewAudit);
    let (slide, siblings, history) = state
        .db(move |c| {
            let slide = slides::get(c, sid, &label)?;
            let siblings = slides::of_case(c, sid, &slide.case_display_id)?;
            let history = if can_history { slides::history(c, sid, &slide.label)? } else { Vec::new() };
            Ok((slide, siblings, history))
        })
        .await?;
    let at = siblings.iter().position(|s| s.id == slide.id).unwrap_or(0);
    let info = slide.info();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let metadata =
        info["metadata"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect()).unwrap_or_default();
    let removed = ["removed_images", "removed_metadata"]
        .iter()
        .flat_map(|k| info["deidentification"][k].as_array().cloned().unwrap_or_default())
        .map(|v| text(&v))
        .collect();
    let conversion =
        serde_json::from_value::<crate::slides::deid::Conversion>(info["deidentification"]["conversion"].clone())
            .ok()
            .map(|c| c.summary());
    let profile =
        serde_json::from_value::<crate::slides::deid::DicomProfile>(info["deidentification"]["dicom_profile"].clone())
            .ok()
            .map(|p| p.summary());
    let ctx = PageCtx::new(&req, Some(&user), format!("{} · {}", slide.label, code), "studies");
    let page = SlideShowPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "slides"),
        attributes: slide.attributes().iter().map(|(k, v)| (crate::text::label_of(k), text(v))).collect(),
        metadata,
        removed,
        conversion,
        profile,
        prev: at.checked_sub(1).map(|i| siblings[i].label.clone()),
        next: siblings.get(at + 1).map(|s| s.label.clone()),
        position: format!("slide {} of {} of case {}", at + 1, siblings.len(), slide.case_display_id),
        info,
        slide,
        history,
        can_manage: access.can(Permission::ManageSlides) && access.study.ensure_editable().is_ok(),
        can_cases: access.can(Permission::ViewCases),
        reasons: slides::EXCLUSION_REASONS.to_vec(),
    };
    render(&ctx, &page)
}

pub async fn slide_qc(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageSlides>,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let (code, label) = path.into_inner();
    let url = format!("/studies/{code}/slides/{label}");
    let form = form.into_inner();
    let exclude = match form.action.as_str() {
        "exclude" => true,
        "include" => false,
        _ => return Ok(redirect_with_flash(&url, "error", "Choose to exclude or include the slide.")),
    };
    let actor = user.actor.clone();
    let result =
        state.db(move |c| slides::set_excluded(c, &actor, &access, &label, exclude, &form.reason.reason)).await;
    flash_outcome(&url, result, "", |s| format!("{} is now {}.", s.label, s.status))
}

/// The slide for a tile request, in the study its extractor checked.
async fn slide_for_tiles(state: &AppState, access: &StudyAccess, label: String) -> Result<Slide, Error> {
    let sid = access.study.id;
    state.db(move |c| slides::get(c, sid, &label)).await
}

pub async fn slide_dzi(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (_, label) = path.into_inner();
    let slide = slide_for_tiles(&state, &access, label).await?;
    Ok(dzi_response(&req, &slide))
}

/// The slide's Deep Zoom descriptor (the viewer asks for it first).
pub(super) fn dzi_response(req: &HttpRequest, slide: &Slide) -> HttpResponse {
    let dz = DeepZoom { width: slide.width as u64, height: slide.height as u64 };
    cached_or(req, slide_etag(slide, "dzi"), || {
        HttpResponse::Ok().content_type("application/xml").body(dz.descriptor())
    })
}

pub async fn slide_tile(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String, u32, u64, u64)>,
) -> Result<HttpResponse, PageError> {
    let (_, label, level, col, row) = path.into_inner();
    let slide = slide_for_tiles(&state, &access, label).await?;
    image(&state, &req, slide, format!("{level}-{col}-{row}"), move |tiles, sha, file| {
        tiles.tile(sha, file, level, col, row)
    })
    .await
}

pub async fn slide_thumbnail(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (_, label) = path.into_inner();
    let slide = slide_for_tiles(&state, &access, label).await?;
    image(&state, &req, slide, "thumbnail".into(), |tiles, sha, file| tiles.thumbnail(sha, file)).await
}

/// The slide as a DICOM whole-slide series, zipped (`<label>-dicom.zip`), for a PACS or a
/// regulator's viewer: made in a private temporary folder, streamed, removed when sent.
pub async fn slide_dicom_zip(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewSlides>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (_, label) = path.into_inner();
    let tmp = crate::tmp::PrivateDir::create(&state.config.tmp_dir(), "dicom-export")
        .map_err(|e| Error::Internal(e.into()))?;
    let (dir, storage, data_dir) =
        (tmp.path().to_path_buf(), state.config.storage.clone(), state.config.data_dir.clone());
    let (code, study) = (access.study.code.clone(), access.study.id);
    let c2 = code.clone();
    let (slide, key) = state
        .db(move |c| Ok((slides::get(c, study, &label)?, crate::cases::deid::study_key(c, &data_dir, &c2)?)))
        .await?;
    // Written with no database connection held (re-encoding a large slide takes a while).
    let c2 = code.clone();
    let (zip, exported) = web::block(move || crate::slides::export::dicom_zip(&storage, &key, &c2, &slide, &dir))
        .await
        .map_err(|e| Error::Internal(e.into()))??;
    let actor = user.actor.clone();
    state.db(move |c| crate::slides::export::record_export(c, &actor, &code, &[exported])).await?;
    let file = std::fs::File::open(&zip).map_err(|e| Error::Internal(e.into()))?;
    let len = file.metadata().map_err(|e| Error::Internal(e.into()))?.len();
    let name = zip.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let file = std::sync::Arc::new(file);
    let read = move |at: u64, n: u64| {
        let mut buf = vec![0u8; n as usize];
        std::os::unix::fs::FileExt::read_exact_at(file.as_ref(), &mut buf, at).map(|_| buf)
    };
    // The folder (and the zip) go when the stream is done or dropped.
    Ok(crate::web::streamed_download("application/zip", &name, len, read, tmp))
}

type Rendered = Result<std::sync::Arc<Vec<u8>>, crate::slides::reader::SlideError>;

/// Images and descriptors of a stored slide never change (the file is content-addressed), but
/// they are study data: cached by the browser only (`private`), for a day, then revalidated by
/// their ETag. Every request still passes the access check first.
const SLIDE_CACHE: &str = "private, max-age=86400";

/// The ETag of one image of a slide: the file's SHA-256 and what was drawn from it (`what`
/// names the level and tile, or the thumbnail).
fn slide_etag(slide: &Slide, what: &str) -> String {
    format!("\"{}-{what}\"", slide.sha256)
}

/// True when the browser already holds this version (`If-None-Match`).
fn browser_has(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Marks a slide response cacheable under `etag`.
fn cacheable(mut res: HttpResponse, etag: &str) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static(SLIDE_CACHE));
    res
}

/// 304 when the browser already holds `etag`, else the response `make` builds; both cacheable.
fn cached_or(req: &HttpRequest, etag: String, make: impl FnOnce() -> HttpResponse) -> HttpResponse {
    cacheable(if browser_has(req, &etag) { HttpResponse::NotModified().finish() } else { make() }, &etag)
}

/// Renders (or takes from the cache) a JPEG of a stored slide on the blocking pool; nothing is
/// rendered when the browser already holds it (304).
pub(super) async fn image(
    state: &AppState,
    req: &HttpRequest,
    slide: Slide,
    what: String,
    render: impl FnOnce(&crate::slides::dzi::TileServer, &str, crate::slides::dzi::Opener) -> Rendered + Send + 'static,
) -> Result<HttpResponse, PageError> {
    let etag = slide_etag(&slide, &what);
    if browser_has(req, &etag) {
        return Ok(cacheable(HttpResponse::NotModified().finish(), &etag));
    }
    let (tiles, storage) = (state.tiles.clone(), state.config.storage.clone());
    let bytes = web::block(move || render(&tiles, &slide.sha256, &|| slide.open(&storage)))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(slide_error)?;
    Ok(cacheable(HttpResponse::Ok().content_type("image/jpeg").body(bytes.as_ref().clone()), &etag))
}

/// The AI heatmap of `run` over `slide` as a PNG (`runs::heatmap_png`), drawn on the blocking
/// pool; cached by the browser like the slide's images (a run's result never changes).
pub(super) async fn heatmap_image(
    state: &AppState,
    req: &HttpRequest,
    slide: Slide,
    run: i32,
    heatmap: serde_json::Value,
) -> Result<HttpResponse, Error> {
    let etag = slide_etag(&slide, &format!("heatmap-run{run}"));
    if browser_has(req, &etag) {
        return Ok(cacheable(HttpResponse::NotModified().finish(), &etag));
    }
    let (tiles, storage) = (state.tiles.clone(), state.config.storage.clone());
    let png = web::block(move || {
        let reader = tiles.reader(&slide.sha256, &|| slide.open(&storage)).map_err(slide_error)?;
        crate::biomarker::runs::heatmap_png(reader.as_ref(), &heatmap)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))??;
    Ok(cacheable(HttpResponse::Ok().content_type("image/png").body(png), &etag))
}

/// A tile outside the pyramid is a 404; a stored file that no longer reads is a server fault.
fn slide_error(e: crate::slides::reader::SlideError) -> Error {
    match e {
        crate::slides::reader::SlideError::OutOfBounds(_) => Error::NotFound,
        e => Error::Internal(anyhow::anyhow!("reading a stored slide: {e}")),
    }
}
