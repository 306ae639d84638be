//! Health, metrics, static files, the front door and the 404 page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::sessions;
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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (hits, misses, bytes) = state.tiles.stats();
    let tiles = format!(
        "# TYPE evidentia_tile_cache_requests_total counter\n\
         evidentia_tile_cache_requests_total{{result=\"hit\"}} {hits}\n\
         evidentia_tile_cache_requests_total{{result=\"miss\"}} {misses}\n\
         # TYPE evidentia_tile_cache_bytes gauge\nevidentia_tile_cache_bytes {bytes}\n"
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&state.pool) + &tiles)
}

/// Front-end files are compiled into the binary, so the demo runs from any directory.
const STATIC_FILES: &[(&str, &str, &[u8])] = &[
    ("css/app.css", "text/css; charset=utf-8", include_bytes!("../../../static/css/app.css")),
    ("js/app.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/js/app.js")),
    (
        "vendor/htmx/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/vendor/htmx/htmx.min.js"),
    ),
    ("js/viewer.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/js/viewer.js")),
    ("js/heatmap.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/js/heatmap.js")),
    ("js/workbench.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/js/workbench.js")),
    ("css/workbench.css", "text/css; charset=utf-8", include_bytes!("../../../static/css/workbench.css")),
    (
        "vendor/openseadragon/openseadragon.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/vendor/openseadragon/openseadragon.min.js"),
    ),
    (
        "vendor/openseadragon/images/button_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/button_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/button_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/button_hover.png"),
    ),
    (
        "vendor/openseadragon/images/button_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/button_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/button_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/button_rest.png"),
    ),
    (
        "vendor/openseadragon/images/flip_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/flip_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/flip_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/flip_hover.png"),
    ),
    (
        "vendor/openseadragon/images/flip_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/flip_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/flip_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/flip_rest.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/fullpage_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/fullpage_hover.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/fullpage_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/fullpage_rest.png"),
    ),
    (
        "vendor/openseadragon/images/home_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/home_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/home_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/home_hover.png"),
    ),
    (
        "vendor/openseadragon/images/home_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/home_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/home_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/home_rest.png"),
    ),
    (
        "vendor/openseadragon/images/next_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/next_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/next_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/next_hover.png"),
    ),
    (
        "vendor/openseadragon/images/next_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/next_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/next_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/next_rest.png"),
    ),
    (
        "vendor/openseadragon/images/previous_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/previous_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/previous_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/previous_hover.png"),
    ),
    (
        "vendor/openseadragon/images/previous_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/previous_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/previous_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/previous_rest.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateleft_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateleft_hover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateleft_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateleft_rest.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateright_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateright_hover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateright_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/rotateright_rest.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomin_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomin_hover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomin_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomin_rest.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_grouphover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomout_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_hover.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomout_hover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_pressed.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomout_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_rest.png",
        "image/png",
        include_bytes!("../../../static/vendor/openseadragon/images/zoomout_rest.png"),
    ),
];

pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    match STATIC_FILES.iter().find(|(p, _, _)| *p == path.as_str()) {
        Some((_, mime, bytes)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
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
