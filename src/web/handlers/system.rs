//! Health, metrics, static files, the front door and the 404 page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::sessions;
use crate::web::assets;
use crate::web::error::ErrorPage;
use crate::web::AppState;

pub async fn index(req: HttpRequest) -> HttpResponse {
    let target = if req.cookie(sessions::COOKIE).is_some() { "/studies" } else { "/login" };
    HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish()
}

/// 200 when the database answers, 503 otherwise.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let ok = state.db(|c| Ok(crate::db::ping(c))).await.unwrap_or(false);
    if ok {
        HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "error", "database": "unreachable"}))
    }
}

/// Prometheus metrics, for a scraper that sends `Authorization: Bearer <EVIDENTIA_METRICS_TOKEN>`;
/// without a configured token they are off (404), like any page that is not there.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(expected) = state.config.metrics_token.as_deref() else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("metrics are off: set EVIDENTIA_METRICS_TOKEN\n");
    };
    let sent =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !sent.is_some_and(|t| crate::auth::constant_time_eq(t.trim().as_bytes(), expected.as_bytes())) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .content_type("text/plain")
            .body("send the metrics token as Authorization: Bearer <token>\n");
    }
    let (hits, misses, bytes) = state.tiles.stats();
    let tiles = format!(
        "# TYPE evidentia_tile_cache_requests_total counter\n\
         evidentia_tile_cache_requests_total{{result=\"hit\"}} {hits}\n\
         evidentia_tile_cache_requests_total{{result=\"miss\"}} {misses}\n\
         # TYPE evidentia_tile_cache_bytes gauge\nevidentia_tile_cache_bytes {bytes}\n"
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&state.pool) + &tiles)
}

/// `/static/{hash}/{path}`: a file under its content hash (`web::assets::url`), cached for a
/// year, since its URL changes when it does. A hash that is not the file's (a page from before an
/// upgrade) and the plain `/static/{path}` still get the current file, but not cached.
pub async fn static_file(tail: web::Path<String>) -> HttpResponse {
    let tail = tail.into_inner();
    let versioned = tail.split_once('/').filter(|(hash, path)| {
        hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && assets::get(path).is_some()
    });
    let (path, cache) = match versioned {
        Some((hash, path)) if assets::is_current(path, hash) => (path, "public, max-age=31536000, immutable"),
        Some((_, path)) => (path, "no-cache"),
        None => (tail.as_str(), "no-cache"),
    };
    match assets::get(path) {
        Some(asset) => {
            HttpResponse::Ok().content_type(asset.mime).insert_header((header::CACHE_CONTROL, cache)).body(asset.bytes)
        }
        None => ErrorPage::response(StatusCode::NOT_FOUND, "No such file.".into()),
    }
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        return HttpResponse::NotFound()
            .json(serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint", "fields": []}}));
    }
    ErrorPage::response(StatusCode::NOT_FOUND, "The page you asked for does not exist.".into())
}
