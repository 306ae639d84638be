//! User accounts: creation, login with lockout, password changes, (de)activation.
//! Every change is audited on the system chain.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::Actor;
use crate::audit::{self, Action, Chain, Change, Entity};
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::users;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, OptionalExt, Result};
use crate::export::CsvRecord;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i32,
    pub username: String,
    pub full_name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_admin: bool,
    pub active: bool,
    pub failed_logins: i32,
    pub first_failed_at: Option<NaiveDateTime>,
    pub locked_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The client address whose failures locked the account (the lock holds for it alone);
    /// `None`: for every client.
    #[serde(skip)]
    pub locked_client: Option<String>,
    #[serde(skip)]
    pub totp_secret: Option<String>,
    #[serde(skip)]
    pub totp_pending_secret: Option<String>,
    /// When two-factor sign-in was set up; `None`: the password alone signs in.
    pub totp_enabled_at: Option<NaiveDateTime>,
    #[serde(skip)]
    pub totp_last_step: Option<i64>,
    /// The single sign-on identity bound to the account (`issuer|sub`).
    #[serde(skip)]
    pub sso_subject: Option<String>,
    /// The local password signs in (off: single sign-on only).
    pub password_login: bool,
}

impl CsvRecord for User {
    const HEADER: &'static [&'static str] = &["username", "full_name", "is_admin", "active", "locked", "created_at"];
    fn record(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            self.full_name.clone(),
            self.is_admin.to_string(),
            self.active.to_string(),
            self.is_locked(now()).to_string(),
            self.created_at.to_string(),
        ]
    }
}

impl User {
    /// Signs in with a password and a second factor.
    pub fn has_mfa(&self) -> bool {
        self.totp_enabled_at.is_some() && self.totp_secret.is_some()
    }

    /// Locked for someone (an administrator sees it and may unlock).
    pub fn is_locked(&self, at: NaiveDateTime) -> bool {
        self.locked_until.is_some_and(|t| t > at)
    }

    fn public_json(&self) -> serde_json::Value {
        json!({"username": self.username, "full_name": self.full_name, "is_admin": self.is_admin, "active": self.active})
    }
}

/// A username that passed validation: 2–32 of `a-z 0-9 . _ -`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim().to_lowercase();
        let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !(2..=32).contains(&s.len()) || !ok_chars || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Error::invalid(
                "username",
                "2–32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter",
            ));
        }
        Ok(Username(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Input for a new account.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewUserInput {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub is_admin: bool,
}

pub fn get(conn: &mut Conn, id: i32) -> Result<User> {
    users::table.find(id).select(User::as_select()).first(conn).or_not_found()
}

pub fn find_by_username(conn: &mut Conn, username: &str) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::username.eq(username.trim().to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The full names of `usernames` (those that are users: `cli:…` operators are not), for pages
/// that show who did what.
pub fn full_names(conn: &mut Conn, usernames: &[&str]) -> Result<std::collections::HashMap<String, String>> {
    Ok(users::table
        .filter(users::username.eq_any(usernames))
        .select((users::username, users::full_name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

pub fn count(conn: &mut Conn) -> Result<i64> {
    Ok(users::table.count().get_result(conn)?)
}

/// Users whose username or full name contains `q`, by username.
pub fn list(conn: &mut Conn, q: &str, page: PageRequest) -> Result<Page<User>> {
    let pattern = format!("%{}%", q.trim());
    let build = || {
        use crate::db::lower;
        users::table
            .filter(
                lower(users::username)
                    .like(lower(pattern.clone()))
                    .or(lower(users::full_name).like(lower(pattern.clone()))),
            )
            .into_boxed()
    };
    let total = build().count().get_result(conn)?;
    let items = build()
        .order(users::username.asc())
        .limit(page.per_page)
        .offset(page.offset())
        .select(User::as_select())
        .load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

/// Creates an account with an already-checked password. The hash is computed by the caller
/// (off the async threads).
pub fn create(conn: &mut Conn, actor: &Actor, input: &NewUserInput, password_hash: &str) -> Result<User> {
    let mut errors = FieldErrors::default();
    let username = match Username::parse(&input.username) {
        Ok(u) => Some(u),
        Err(Error::Invalid(e)) => {
            errors.0.extend(e.0);
            None
        }
        Err(e) => return Err(e),
    };
    let full_name = input.full_name.trim();
    if full_name.is_empty() || full_name.chars().count() > 100 {
        errors.add("full_name", "required, at most 100 characters (it is printed on signatures)");
    }
    errors.into_result()?;
    let username = username.ok_or(Error::NotFound)?;
    write_tx(conn, |conn| {
        if find_by_username(conn, username.as_str())?.is_some() {
            return Err(Error::invalid("username", format!("'{}' is already taken", username.as_str())));
        }
        let t = now();
        diesel::insert_into(users::table)
            .values((
                users::username.eq(username.as_str()),
                users::full_name.eq(full_name),
                users::password_hash.eq(password_hash),
                users::is_admin.eq(input.is_admin),
                users::active.eq(true),
                users::created_at.eq(t),
                users::updated_at.eq(t),
            ))
            .execute(conn)?;
        let user = find_by_username(conn, username.as_str())?.ok_or(Error::NotFound)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::Create, Entity::User, &user.username)
                .after(user.public_json()),
        )?;
        Ok(user)
    })
}

/// Why a login failed. The message shown is the same for all of them.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginFailure {
    BadCredentials,
    Locked,
}

pub struct LockoutPolicy {
    pub threshold: i32,
    pub window: Duration,
    pub duration: Duration,
}

impl LockoutPolicy {
    /// Five failed password entries within 15 minutes lock the account for 15 minutes: sign-in,
    /// the current password on a change, and the password re-entered for an e-signature count
    /// alike (NIST SP 800-63B §5.2.2 allows at most 100).
    pub const STANDARD: LockoutPolicy =
        LockoutPolicy { threshold: 5, window: Duration::from_secs(15 * 60), duration: Duration::from_secs(15 * 60) };
}

/// Records the outcome of a password check (done by the caller, off the async threads) made
/// from `client` (its address; `None` where unknown): on success the failure counter resets; on
/// failure it counts within the window and locks the account at the threshold, for that client
/// (audited). See [`User::is_locked_for`].
pub fn record_login_attempt(
    conn: &mut Conn,
    user: &User,
    password_ok: bool,
    client: Option<&str>,
) -> Result<std::result::Result<(), LoginFailure>> {
    record_sign_in(conn, user, password_ok, client, None)
}

/// Whether a sign-in lock holds for a password entered from `client` at `at`. A lock caused by
/// failures from one client address holds for that address only (each address its own lock), so
/// that nobody can lock a well-known account (such as `admin`) out for everyone; a lock caused
/// where the client is unknown holds everywhere.
pub fn locked_for(conn: &mut Conn, user_id: i32, client: Option<&str>, at: NaiveDateTime) -> Result<bool> {
    use crate::db::schema::login_locks as l;
    let holding = l::table
        .filter(l::user_id.eq(user_id))
        .filter(l::ended_at.is_null())
        .filter(l::locked_until.gt(at))
        .into_boxed();
    let holding = match client {
        Some(c) => holding.filter(l::client.is_null().or(l::client.eq(c))),
        None => holding.filter(l::client.is_null()),
    };
    Ok(holding.count().get_result::<i64>(conn)? > 0)
}

/// Whether `user` may go on to the second factor after a right password from `client`: active
/// and not locked for it. Nothing is reset or recorded: only a complete sign-in (or a failure)
/// counts, so a known password cannot be used to reset the count of wrong codes.
pub fn may_continue_sign_in(conn: &mut Conn, user: &User, client: Option<&str>) -> Result<bool> {
    let current = get(conn, user.id)?;
    Ok(current.active && !locked_for(conn, user.id, client, now())?)
}

/// [`record_login_attempt`] for a sign-in whose last step was `ok`, with what completed it
/// (`detail`, e.g. the second factor) written into the login audit event.
pub fn record_sign_in(
    conn: &mut Conn,
    user: &User,
    password_ok: bool,
    client: Option<&str>,
    detail: Option<serde_json::Value>,
) -> Result<std::result::Result<(), LoginFailure>> {
    let policy = LockoutPolicy::STANDARD;
    let t = now();
    write_tx(conn, |conn| {
        let current = get(conn, user.id)?;
        if locked_for(conn, user.id, client, t)? {
            return Ok(Err(LoginFailure::Locked));
        }
        if !current.active {
            return Ok(Err(LoginFailure::BadCredentials));
        }
        if password_ok {
            // A lock that still holds (for another client) stays; an expired one goes.
            let (locked_until, locked_client) = if current.is_locked(t) {
                (current.locked_until, current.locked_client.as_deref())
            } else {
                (None, None)
            };
            if current.failed_logins != 0 || current.locked_until != locked_until {
                reset_failures(conn, user.id, locked_until, locked_client)?;
            }
            audit::record(
                conn,
                system_change(&current.username, Action::Login, &current.username, None, detail, None),
            )?;
            return Ok(Ok(()));
        }
        let window = chrono::Duration::from_std(policy.window).unwrap_or_default();
        let in_window = current.first_failed_at.is_some_and(|f| t - f <= window);
        let (count, first) =
            if in_window { (current.failed_logins + 1, current.first_failed_at) } else { (1, Some(t)) };
        let lock = count >= policy.threshold;
        let locked_until = lock.then(|| t + chrono::Duration::from_std(policy.duration).unwrap_or_default());
        if let (true, Some(until)) = (lock, locked_until) {
            diesel::insert_into(crate::db::schema::login_locks::table)
                .values((
                    crate::db::schema::login_locks::user_id.eq(user.id),
                    crate::db::schema::login_locks::client.eq(client),
                    crate::db::schema::login_locks::locked_at.eq(t),
                    crate::db::schema::login_locks::locked_until.eq(until),
                ))
                .execute(conn)?;
            // The account shows the latest lock (and is "locked" while any holds).
            let shown = current.locked_until.filter(|u| *u > until).or(locked_until);
            reset_failures(conn, user.id, shown, client)?;
            audit::record(
                conn,
                system_change(
                    &current.username,
                    Action::Lock,
                    &current.username,
                    None,
                    Some(json!({
                        "locked_until": locked_until.map(|d| d.to_string()),
                        "failed_logins": count,
                        "client": client.unwrap_or("any"),
                    })),
                    Some("too many failed logins"),
                ),
            )?;
            return Ok(Err(LoginFailure::Locked));
        }
        diesel::update(users::table.find(user.id))
            .set((users::failed_logins.eq(count), users::first_failed_at.eq(first)))
            .execute(conn)?;
        Ok(Err(LoginFailure::BadCredentials))
    })
}

/// Clears the failure count and sets the lock (none: `None, None`; or until when, for which
/// client): what a success, a new lock and an administrator's unlock write.
fn reset_failures(
    conn: &mut Conn,
    user_id: i32,
    locked_until: Option<NaiveDateTime>,
    locked_client: Option<&str>,
) -> Result<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::failed_logins.eq(0),
            users::first_failed_at.eq(None::<NaiveDateTime>),
            users::locked_until.eq(locked_until),
            users::locked_client.eq(locked_client),
        ))
        .execute(conn)?;
    Ok(())
}

fn system_change<'a>(
    actor: &'a str,
    action: crate::audit::Action,
    username: &str,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
    reason: Option<&'a str>,
) -> Change<'a> {
    Change::new(Chain::System, actor, action, Entity::User, username).before_opt(old).after_opt(new).because_opt(reason)
}

/// Admin actions on an account that flip one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Deactivate,
    Reactivate,
    Unlock,
}

pub fn apply_account_action(conn: &mut Conn, actor: &Actor, user_id: i32, action: AccountAction) -> Result<User> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators manage accounts"));
    }
    write_tx(conn, |conn| {
        let u = get(conn, user_id)?;
        let (name, old, new) = match action {
            AccountAction::Deactivate => {
                if actor.user_id == Some(u.id) {
                    return Err(Error::Conflict("you cannot deactivate your own account".into()));
                }
                diesel::update(users::table.find(u.id)).set(users::active.eq(false)).execute(conn)?;
                // A deactivated account loses its sessions and tokens at once.
                super::sessions::end_all_for_user(conn, u.id, None)?;
                super::tokens::revoke_all_for_user(conn, u.id)?;
                (Action::Deactivate, json!({"active": u.active}), json!({"active": false}))
            }
            AccountAction::Reactivate => {
                diesel::update(users::table.find(u.id)).set(users::active.eq(true)).execute(conn)?;
                (Action::Reactivate, json!({"active": u.active}), json!({"active": true}))
            }
            AccountAction::Unlock => {
                reset_failures(conn, u.id, None, None)?;
                use crate::db::schema::login_locks as l;
                diesel::update(l::table.filter(l::user_id.eq(u.id)).filter(l::ended_at.is_null()))
                    .set(l::ended_at.eq(Some(now())))
                    .execute(conn)?;
                (
                    Action::Unlock,
                    json!({"locked_until": u.locked_until.map(|d| d.to_string())}),
                    json!({"locked_until": null}),
                )
            }
        };
        diesel::update(users::table.find(u.id)).set(users::updated_at.eq(now())).execute(conn)?;
        audit::record(conn, system_change(&actor.name, name, &u.username, Some(old), Some(new), None))?;
        get(conn, u.id)
    })
}

/// Stores a new password hash: an admin reset (`reset = true`) or the user's own change. Every
/// session of the user ends but `keep_session` (the one making a person's own change), and
/// every API token is revoked; the audit event counts both.
pub fn set_password(
    conn: &mut Conn,
    actor: &Actor,
    user_id: i32,
    new_hash: &str,
    reset: bool,
    keep_session: Option<&str>,
) -> Result<()> {
    if reset && !actor.is_admin {
        return Err(Error::forbidden("only administrators reset passwords"));
    }
    if !reset && actor.user_id != Some(user_id) {
        return Err(Error::forbidden("you can only change your own password"));
    }
    write_tx(conn, |conn| {
        let u = get(conn, user_id)?;
        diesel::update(users::table.find(u.id))
            .set((users::password_hash.eq(new_hash), users::updated_at.eq(now())))
            .execute(conn)?;
        let sessions_ended = super::sessions::end_all_for_user(conn, u.id, keep_session.filter(|_| !reset))?;
        let tokens_revoked = super::tokens::revoke_all_for_user(conn, u.id)?;
        let action = if reset { Action::ResetPassword } else { Action::ChangePassword };
        let effect = json!({"sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked});
        audit::record(conn, system_change(&actor.name, action, &u.username, None, Some(effect), None))?;
        Ok(())
    })
}

/// The user for a CLI `--as USERNAME`: must exist and be active.
pub fn actor_for_username(conn: &mut Conn, username: &str) -> Result<Actor> {
    match find_by_username(conn, username)? {
        Some(u) if u.active => Ok(Actor::from_user(&u)),
        Some(_) => Err(Error::invalid("as", format!("user '{username}' is deactivated"))),
        None => Err(Error::invalid("as", format!("no user '{username}'"))),
    }
}
