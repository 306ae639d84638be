//! Electronic signatures (21 CFR Part 11 §11.50, §11.200), shared by the analysis plan and the
//! study lock: only a signed-in user signs, as themselves; a signature carries one of the
//! meanings below; the password is re-entered for each signature.

use super::{passwords, users, Actor};
use crate::db::Conn;
use crate::error::{Error, Result};

crate::db::text_enum! {
    /// The meaning a signer gives their signature (§11.50(a)(3)).
    pub enum Meaning {
        Authorship = "authorship",
        Review = "review",
        Approval = "approval",
        Responsibility = "responsibility",
    }
}

impl Meaning {
    /// The meaning typed or chosen; another is refused, naming the field.
    pub fn parse_input(meaning: &str) -> Result<Meaning> {
        Meaning::parse(meaning).ok_or_else(|| {
            let all: Vec<&str> = Meaning::ALL.iter().map(Meaning::as_str).collect();
            Error::invalid("meaning", format!("'{meaning}': one of {}", all.join(", ")))
        })
    }
}

/// The account of the user behind `actor`, who is about to sign: never the CLI operator or the
/// system, never someone else's account.
pub fn signer(conn: &mut Conn, actor: &Actor) -> Result<users::User> {
    actor
        .user_id
        .and_then(|uid| users::find_by_username(conn, &actor.name).ok().flatten().filter(|u| u.id == uid))
        .ok_or_else(|| Error::forbidden("only a signed-in user signs, with their own password"))
}

/// The password a signer re-entered, as the signing functions take it.
pub enum Password<'a> {
    /// Checked here, on the caller's connection (the CLI and the demo).
    Plain(&'a str),
    /// Checked beforehand against `hash` holding no database connection (the server, where
    /// argon2id would otherwise hold a pool connection for its tens of milliseconds). It counts
    /// only while `hash` is still the signer's.
    Checked { ok: bool, hash: String },
    /// The first signature of a session was given a username that is not the signer's (21 CFR
    /// 11.200(a)(1)(i)): it fails, is counted and audited, like a wrong password.
    WrongUsername,
}

/// What a signer gives for one signature: the re-entered password and the meaning (one of
/// [`Meaning`], checked by the signing function).
pub struct Signing<'a> {
    pub password: Password<'a>,
    pub meaning: &'a str,
}

/// Checks the password re-entered for a signature. A locked account signs nothing; a wrong
/// password counts like a failed sign-in and locks the account the same way
/// ([`users::LockoutPolicy::STANDARD`]), so a signature prompt cannot be used to guess passwords.
/// `nothing_done` ends the message ("nothing was signed").
pub fn check_password(conn: &mut Conn, user: &users::User, password: Password<'_>, nothing_done: &str) -> Result<()> {
    // The signer is signed in; where they sign from is not known here: only a lock that holds
    // for every client stops them (one caused by someone else's failures elsewhere does not).
    if users::locked_for(conn, user.id, None, crate::db::now())? {
        return Err(Error::Conflict(format!(
            "the account is locked after too many wrong passwords; {nothing_done}. Try again later or ask an administrator to unlock it"
        )));
    }
    let (ok, field, wrong) = match password {
        Password::Plain(p) => (passwords::verify(&user.password_hash, p), "password", "the password is not correct"),
        Password::Checked { ok, hash } => (ok && hash == user.password_hash, "password", "the password is not correct"),
        Password::WrongUsername => (
            false,
            "username",
            "type your own username: the first signature of a session takes your username and your password",
        ),
    };
    if ok {
        return Ok(());
    }
    let locked = users::record_login_attempt(conn, user, false, None)?.is_err_and(|f| f == users::LoginFailure::Locked);
    let tail = if locked { "; the account is now locked after too many failed attempts" } else { "" };
    Err(Error::invalid(field, format!("{wrong}; {nothing_done}{tail}")))
}

/// What a failed [`check_password`] was, for the `sign_failed` audit event.
pub fn failure_reason(e: &Error) -> &'static str {
    match e {
        Error::Invalid(f) if f.0.iter().any(|x| x.field == "username") => "wrong username",
        Error::Invalid(_) => "wrong password",
        Error::Conflict(_) => "account locked",
        _ => "error",
    }
}
