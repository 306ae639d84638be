//! The one domain error type. Web handlers turn it into a status and a rendered page
//! (`web::error`); the CLI prints it on one line and exits 2 for bad input.

use std::fmt;

/// A validation failure on one named field of user input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every field that failed validation, so a form can show them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.to_string(), message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The message for `field`, if it failed.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|e| e.field == field).map(|e| e.message.as_str())
    }
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::default();
        e.add(field, message);
        e
    }
    /// `Ok(())` when nothing failed, else the errors.
    pub fn into_result(self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self))
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        write!(f, "{}", parts.join("; "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, or hidden from this user (another study, blinding): always shown as 404.
    #[error("not found")]
    NotFound,
    /// The user can see the object but their role lacks the right.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The request conflicts with the current state (duplicate code, locked study, …).
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
    /// The client went away before its work ran; the work was skipped (no one reads this).
    #[error("the request was abandoned by its client")]
    Abandoned,
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(FieldErrors::single(field, message))
    }
    pub fn forbidden(why: impl Into<String>) -> Self {
        Error::Forbidden(why.into())
    }
    /// True for errors caused by the input rather than by the system (CLI exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::NotFound | Error::Forbidden(_) | Error::Invalid(_) | Error::Conflict(_))
    }
}

/// Maps "no such row" to `NotFound`, so lookups can use `?` directly.
pub trait OptionalExt<T> {
    fn or_not_found(self) -> Result<T, Error>;
}

impl<T> OptionalExt<T> for Result<T, diesel::result::Error> {
    fn or_not_found(self) -> Result<T, Error> {
        match self {
            Ok(v) => Ok(v),
            Err(diesel::result::Error::NotFound) => Err(Error::NotFound),
            Err(e) => Err(Error::Db(e)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
