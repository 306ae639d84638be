//! Middleware for every response: security headers, request metrics and logs, and the CSRF
//! check on every state-changing request.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::error::ErrorPage;
use super::AppState;
use crate::auth::{csrf, random_token};

/// No inline script or style anywhere: htmx is configured through a meta tag, and progress
/// bars use `<progress>` elements. The one hash allowed is OpenSeadragon's own `<style>` (its
/// focus outline on touch screens, `openseadragon.min.js`), which it adds to the page itself.
pub const CSP: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE='; img-src 'self' data: blob:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_static = req.path().starts_with("/static/");
    let https = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.https());
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    if https {
        // One year, as the HSTS preload list asks (RFC 6797 §6.1.1); not subdomains, which the
        // hospital may serve otherwise.
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    // Pages hold study data and change: never stored. A handler that knows better (slide
    // images, static files) says so itself.
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// Counts and times each request by its route pattern, and logs one line per request
/// (method, route, status, duration: never query strings, cookies or bodies).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "(unmatched)".to_string());
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(state) = state {
        state.metrics.observe(&method, &route, status, elapsed);
    }
    tracing::info!(method, route, status, ms = elapsed.as_millis() as u64, "request");
    Ok(res)
}

/// The CSRF token of this request (from its cookie, or newly made), for forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

fn is_form(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn has_bearer(req: &ServiceRequest) -> bool {
    req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer "))
}

/// The first field of an `application/x-www-form-urlencoded` body whose name or value is not
/// UTF-8 once percent-decoded (WHATWG URL, "application/x-www-form-urlencoded parsing"), named
/// as far as it can be.
fn field_with_invalid_utf8(body: &[u8]) -> Option<String> {
    // `+` is a space; then percent-decoding, which keeps a lone or broken `%` as it is.
    let decode = |part: &[u8]| -> Vec<u8> {
        let spaced: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_encoding::percent_decode(&spaced).collect()
    };
    body.split(|&b| b == b'&').find_map(|pair| {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        let name = decode(parts.next().unwrap_or_default());
        let value = decode(parts.next().unwrap_or_default());
        match std::str::from_utf8(&name) {
            Err(_) => Some(String::from_utf8_lossy(&name).into_owned()),
            Ok(n) => std::str::from_utf8(&value).is_err().then(|| n.to_string()),
        }
    })
}

/// Double-submit check for every POST/PUT/PATCH/DELETE, except API calls authenticated by a
/// bearer token (no cookie, so no CSRF). Also hands out the token cookie. A rejection is a
/// normal response (not an error), so that the outer middleware counts it and adds headers.
pub async fn csrf_protect(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let cookie = req.cookie(csrf::COOKIE).map(|c| c.value().to_string()).filter(|v| v.len() == 64);
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A form's body is read here once (it is small: actix's form limit) and handed on.
    let mut form_body = None;
    if changes_state && is_form(&req) {
        let body = match req.extract::<web::Bytes>().await {
            Ok(b) => b,
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        req.set_payload(actix_web::dev::Payload::from(body.clone()));
        form_body = Some(body);
    }
    if changes_state && !(has_bearer(&req) && req.path().starts_with("/api/")) {
        let mut submitted = req.headers().get(csrf::HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        // File uploads (multipart) carry the token in the form's action URL.
        if submitted.is_none() {
            let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
            submitted = query.into_iter().find(|(k, _)| k == csrf::FIELD).map(|(_, v)| v);
        }
        if let (None, Some(body)) = (&submitted, &form_body) {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
            submitted = fields.into_iter().find(|(k, _)| k == csrf::FIELD).map(|(_, v)| v);
        }
        if !csrf::matches(cookie.as_deref(), submitted.as_deref()) {
            tracing::warn!(path = req.path(), "CSRF check failed");
            let resp = ErrorPage::response(
                actix_web::http::StatusCode::FORBIDDEN,
                "The form has expired or did not come from Evidentia (CSRF check failed). Reload the page and try again."
                    .into(),
            );
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    // Text that is not UTF-8 would be stored as U+FFFD by the form decoder, silently.
    if let Some(field) = form_body.as_deref().and_then(field_with_invalid_utf8) {
        let resp = ErrorPage::response(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "The form field {field} holds text that is not valid UTF-8 (a copy from another program's \
                 encoding?); nothing was saved. Type or paste it again."
            ),
        );
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let (token, fresh) = match cookie {
        Some(c) => (c, false),
        None => (random_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let secure = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.secure_cookies);
    let mut res = next.call(req).await?.map_into_left_body();
    // Only a page can hold a form: images, files and API answers set no cookie (and so stay
    // cacheable).
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if fresh && is_page {
        let c = Cookie::build(csrf::COOKIE, token)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .finish();
        let _ = res.response_mut().add_cookie(&c);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::field_with_invalid_utf8;

    #[test]
    fn form_fields_that_are_not_utf8_are_found_by_name() {
        assert_eq!(field_with_invalid_utf8(b"name=Kim+%ED%95%9C&note=ok%21"), None);
        assert_eq!(field_with_invalid_utf8(b"a=1&reason=caf%E9&b=2").as_deref(), Some("reason"));
        assert_eq!(field_with_invalid_utf8(b"%FF=1").as_deref(), Some("\u{fffd}"));
        // A lone or broken escape is kept as it is (valid UTF-8 text).
        assert_eq!(field_with_invalid_utf8(b"a=100%&b=%zz&c=%4"), None);
    }
}
