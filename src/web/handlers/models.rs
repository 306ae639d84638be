//! The model registry page (administrators): registered models with their cards, registering an
//! ONNX file with its card (checked on this server's backend), retiring a version.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::ReasonForm;
use crate::biomarker::engine::{self, Backend};
use crate::biomarker::registry::{self, ModelRecord};
use crate::error::{Error, FieldErrors};
use crate::web::error::PageError;
use crate::web::extract::{CurrentUser, PageCtx};
use crate::web::{flash_outcome, render_outcome, upload, AppState};

#[derive(Template)]
#[template(path = "admin/models.html")]
pub struct ModelsPage {
    pub ctx: PageCtx,
    pub models: Vec<ModelRecord>,
    pub backend: Option<Backend>,
    pub backend_error: Option<String>,
    pub errors: FieldErrors,
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let models = state.db(registry::list).await?;
    // Finding the backend may load a library: off the async threads.
    let backend = web::block(|| engine::backend().cloned()).await.map_err(|e| Error::Internal(e.into()))?;
    let ctx = PageCtx::new(req, Some(user), "Models", "models");
    let failed = !errors.is_empty();
    let (backend, backend_error) = match backend {
        Ok(b) => (Some(b), None),
        Err(e) => (None, Some(e)),
    };
    render_outcome(&ctx, &ModelsPage { ctx: ctx.clone(), models, backend, backend_error, errors }, failed)
}

pub async fn models_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    page(&req, &state, &user, FieldErrors::default()).await
}

/// Registers an uploaded ONNX file with its card; any problem shows on the page, nothing stored.
pub async fn model_register(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let dir = crate::tmp::PrivateDir::create(&state.config.tmp_dir(), "model-upload")
        .map_err(|e| Error::Internal(e.into()))?;
    let outcome = async {
        let (_, saved) = upload::save_to_dir(payload, dir.path(), 1 << 30).await?;
        let file =
            saved.iter().find(|f| f.field == "model").ok_or_else(|| Error::invalid("model", "choose the ONNX file"))?;
        let card = saved
            .iter()
            .find(|f| f.field == "card")
            .ok_or_else(|| Error::invalid("card", "choose the model card (JSON)"))?;
        let card_bytes = std::fs::read(&card.path).map_err(|e| Error::Internal(e.into()))?;
        let (actor, storage, path) = (user.actor.clone(), state.config.storage.clone(), file.path.clone());
        state.db(move |c| registry::register(c, &actor, &storage, &path, &card_bytes)).await
    }
    .await;
    drop(dir);
    match outcome {
        Ok(m) => flash_outcome("/admin/models", Ok(m), "", |m| {
            format!("Registered {} (SHA-256 {}).", m.key(), m.short_sha())
        }),
        Err(Error::Invalid(errors)) => page(&req, &state, &user, errors).await,
        Err(Error::Conflict(m)) => page(&req, &state, &user, FieldErrors::single("model", m)).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn model_retire(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let (key, actor, reason) = (path.into_inner(), user.actor.clone(), form.into_inner().reason);
    let result = state.db(move |c| registry::retire(c, &actor, &key, &reason)).await;
    flash_outcome("/admin/models", result, "", |m| format!("{} is retired.", m.key()))
}
