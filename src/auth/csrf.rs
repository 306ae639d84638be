//! CSRF protection by double submit: a random token in an HttpOnly, SameSite=Strict cookie,
//! echoed by every state-changing request in the `csrf_token` form field or the
//! `X-CSRF-Token` header (htmx). Checked for every POST in `web::middleware::csrf`.

pub const COOKIE: &str = "ev_csrf";
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// True when the submitted token matches the cookie's.
pub fn matches(cookie: Option<&str>, submitted: Option<&str>) -> bool {
    match (cookie, submitted) {
        (Some(c), Some(s)) if c.len() == 64 => super::constant_time_eq(c.as_bytes(), s.as_bytes()),
        _ => false,
    }
}
