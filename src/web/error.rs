//! Domain errors at the web boundary: a rendered page for browsers (`PageError`) or a JSON
//! body for the API (`ApiError`). The user sees a clean message; the log gets the cause.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::Error;

/// Whether the error is the disk (or the user's quota) being full: an upload or a database
/// write that ran out of space. `ENOSPC` and `EDQUOT` (Linux), SQLite's `SQLITE_FULL`,
/// PostgreSQL's `disk_full` (its message names the file it could not extend and the OS error).
fn disk_full(e: &Error) -> bool {
    let full_message = |m: &str| m.contains("database or disk is full") || m.contains("No space left on device");
    let io_full = |io: &std::io::Error| {
        matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
            || matches!(io.raw_os_error(), Some(28 | 122))
    };
    match e {
        Error::Internal(a) => {
            a.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(io_full) || full_message(&c.to_string()))
        }
        Error::Db(d) => full_message(&d.to_string()),
        _ => false,
    }
}

fn status_of(e: &Error) -> StatusCode {
    if disk_full(e) {
        return StatusCode::INSUFFICIENT_STORAGE;
    }
    match e {
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Db(_) | Error::Pool(_) | Error::Internal(_) | Error::Abandoned => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What the user is told; internal causes stay in the log.
fn public_message(e: &Error) -> String {
    match e {
        Error::NotFound => "The page or record you asked for does not exist, or you do not have access to it.".into(),
        Error::Forbidden(why) => format!("You are not allowed to do this: {why}."),
        Error::Invalid(f) => f.to_string(),
        Error::Conflict(m) => m.clone(),
        _ if disk_full(e) => "The server's disk is full, so nothing was saved. Tell your administrator: the disk \
            holding Evidentia's data folder needs free space; then try again."
            .into(),
        _ => "Something went wrong on our side. The error was logged; please try again.".into(),
    }
}

fn log_if_internal(e: &Error) {
    if matches!(e, Error::Abandoned) {
        tracing::debug!("request abandoned by its client before its work ran");
    } else if status_of(e).is_server_error() {
        tracing::error!(error = %e, "request failed");
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
    /// What to do next, by kind of error.
    pub hint: &'static str,
}

/// What a person can do about an error of this status.
fn hint_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "Check the address, or open the study from your studies list: records of studies you are not a member of are not shown.",
        403 => "Your role in this study does not include this. The study's manager can change your role on the Members page.",
        409 => "The record's current state does not allow this (for example, the study is locked or the campaign is closed). Go back to the study's page: it shows what can be done now.",
        422 => "Go back, correct what is named above, and try again: nothing was changed.",
        413 => "The upload is larger than this server accepts. Split it, or ask the administrator to raise the limit.",
        s if s >= 500 => "Nothing was changed. Try again in a moment; if it happens again, tell your administrator the time it happened.",
        _ => "Go back and try again.",
    }
}

impl ErrorPage {
    pub fn response(status: StatusCode, message: String) -> HttpResponse {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let page = ErrorPage { status: status.as_u16(), title, message, hint: hint_for(status) };
        let body = page.render().unwrap_or_else(|_| "Error".into());
        HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub Error);

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        PageError(e.into())
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError(Error::Internal(anyhow::anyhow!("template: {e}")))
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log_if_internal(&self.0);
        ErrorPage::response(self.status_code(), public_message(&self.0))
    }
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub Error);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log_if_internal(&self.0);
        let code = match &self.0 {
            Error::NotFound => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::Invalid(_) => "invalid",
            Error::Conflict(_) => "conflict",
            _ => "internal",
        };
        let fields = match &self.0 {
            Error::Invalid(f) => serde_json::to_value(&f.0).unwrap_or_default(),
            _ => serde_json::Value::Array(vec![]),
        };
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({"error": {"code": code, "message": public_message(&self.0), "fields": fields}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_as_such() {
        let enospc =
            Error::Internal(anyhow::Error::from(std::io::Error::from_raw_os_error(28)).context("saving the upload"));
        assert_eq!(status_of(&enospc), StatusCode::INSUFFICIENT_STORAGE);
        assert!(public_message(&enospc).starts_with("The server's disk is full, so nothing was saved"));
        let sqlite_full = Error::Db(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database or disk is full".to_string()),
        ));
        assert_eq!(status_of(&sqlite_full), StatusCode::INSUFFICIENT_STORAGE);
        let other = Error::Internal(anyhow::Error::from(std::io::Error::from_raw_os_error(13)));
        assert_eq!(status_of(&other), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(public_message(&other).starts_with("Something went wrong"));
    }
}
