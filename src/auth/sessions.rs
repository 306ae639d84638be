//! Server-side sessions. The cookie holds a random token; the database holds only its hash.
//! A session ends after `idle` without a request or `absolute` after login, whichever is first.
//! A user with two-factor sign-in first gets a session that only waits for the second factor
//! (for [`SECOND_FACTOR_WAIT`]); it is ended and replaced by a full one when the code is right.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::users::User;
use super::{random_token, token_hash};
use crate::db::schema::{sessions, users};
use crate::db::{now, Conn};
use crate::error::Result;

pub const COOKIE: &str = "ev_session";

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub idle: Duration,
    pub absolute: Duration,
    /// What "now" is when a session is checked.
    pub clock: crate::config::Clock,
}

/// How long the password alone keeps a sign-in waiting for its second factor.
pub const SECOND_FACTOR_WAIT: Duration = Duration::from_secs(5 * 60);

/// What a handler may need to know of the session behind a request.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo {
    pub id: i32,
    /// When the person last re-authenticated at the single sign-on provider in this session (an
    /// e-signature by an account without a local password).
    pub reauthenticated_at: Option<NaiveDateTime>,
    /// An e-signature was made in this session (21 CFR 11.200(a)(1)(i): the first signing of a
    /// session takes every component, later ones at least the password).
    pub has_signed: bool,
}

/// Starts a session; returns the token for the cookie (never stored).
pub fn create(conn: &mut Conn, user_id: i32) -> Result<String> {
    insert(conn, user_id, false)
}

/// Starts a sign-in that waits for its second factor: it authenticates nothing.
pub fn create_awaiting_second_factor(conn: &mut Conn, user_id: i32) -> Result<String> {
    insert(conn, user_id, true)
}

fn insert(conn: &mut Conn, user_id: i32, awaiting_second_factor: bool) -> Result<String> {
    let token = random_token();
    let t = now();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash(&token)),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(t),
            sessions::last_seen_at.eq(t),
            sessions::awaiting_second_factor.eq(awaiting_second_factor),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The user whose sign-in behind `token` waits for a second factor, if it does and is younger
/// than [`SECOND_FACTOR_WAIT`] at `at`.
pub fn awaiting_second_factor(conn: &mut Conn, token: &str, at: NaiveDateTime) -> Result<Option<User>> {
    let found: Option<(NaiveDateTime, User)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash(token)))
        .filter(sessions::awaiting_second_factor.eq(true))
        .filter(sessions::ended_at.is_null())
        .select((sessions::created_at, User::as_select()))
        .first(conn)
        .optional()?;
    let wait = chrono::Duration::from_std(SECOND_FACTOR_WAIT).unwrap_or_default();
    Ok(found.filter(|(created, u)| at - *created <= wait && u.active).map(|(_, u)| u))
}

/// The user of session `id` while it is open and not waiting for a second factor.
pub fn open_owner(conn: &mut Conn, id: i32) -> Result<Option<i32>> {
    Ok(sessions::table
        .find(id)
        .filter(sessions::ended_at.is_null())
        .filter(sessions::awaiting_second_factor.eq(false))
        .select(sessions::user_id)
        .first(conn)
        .optional()?)
}

/// Records a re-authentication at the single sign-on provider in session `id` of `user_id`
/// (open, not waiting for a second factor); false when there is no such session.
pub fn mark_reauthenticated(conn: &mut Conn, id: i32, user_id: i32) -> Result<bool> {
    let n = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::awaiting_second_factor.eq(false)),
    )
    .set(sessions::reauthenticated_at.eq(Some(now())))
    .execute(conn)?;
    Ok(n == 1)
}

/// Uses up the session's re-authentication if it was made at or after `since` (one per
/// e-signature, even for two signatures sent at once); false when there is none to use.
pub fn use_reauthentication(conn: &mut Conn, id: i32, since: NaiveDateTime) -> Result<bool> {
    let n = diesel::update(sessions::table.find(id).filter(sessions::reauthenticated_at.ge(since)))
        .set(sessions::reauthenticated_at.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records that the session behind `token` made an e-signature (the first one, if none was).
pub fn mark_signed(conn: &mut Conn, token: &str) -> Result<()> {
    diesel::update(
        sessions::table.filter(sessions::token_hash.eq(token_hash(token))).filter(sessions::first_signed_at.is_null()),
    )
    .set(sessions::first_signed_at.eq(Some(now())))
    .execute(conn)?;
    Ok(())
}

/// The active user behind a session token, refreshing its idle timer; `None` when the token
/// is unknown, ended, timed out, waiting for a second factor, or its user was deactivated.
pub fn authenticate(conn: &mut Conn, token: &str, timeouts: &Timeouts) -> Result<Option<(User, SessionInfo)>> {
    type Row =
        (i32, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>, Option<NaiveDateTime>, Option<NaiveDateTime>, User);
    let found: Option<Row> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash(token)))
        .filter(sessions::awaiting_second_factor.eq(false))
        .select((
            sessions::id,
            sessions::created_at,
            sessions::last_seen_at,
            sessions::ended_at,
            sessions::first_signed_at,
            sessions::reauthenticated_at,
            User::as_select(),
        ))
        .first(conn)
        .optional()?;
    let Some((id, created, last_seen, ended, signed, reauthenticated_at, user)) = found else { return Ok(None) };
    let t = timeouts.clock.now();
    let idle = chrono::Duration::from_std(timeouts.idle).unwrap_or_default();
    let absolute = chrono::Duration::from_std(timeouts.absolute).unwrap_or_default();
    if ended.is_some() || !user.active {
        return Ok(None);
    }
    if t - last_seen > idle || t - created > absolute {
        diesel::update(sessions::table.find(id)).set(sessions::ended_at.eq(Some(t))).execute(conn)?;
        return Ok(None);
    }
    // Refresh at most once a second: each refresh is a write.
    if t - last_seen >= chrono::Duration::seconds(1) {
        diesel::update(sessions::table.find(id)).set(sessions::last_seen_at.eq(t)).execute(conn)?;
    }
    Ok(Some((user, SessionInfo { id, reauthenticated_at, has_signed: signed.is_some() })))
}

pub fn end(conn: &mut Conn, token: &str) -> Result<()> {
    diesel::update(sessions::table.filter(sessions::token_hash.eq(token_hash(token))))
        .set(sessions::ended_at.eq(Some(now())))
        .execute(conn)?;
    Ok(())
}

/// Ends every open session of the user but `keep` (the token of the session making the
/// change, on a person's own password change); returns how many ended.
pub fn end_all_for_user(conn: &mut Conn, user_id: i32, keep: Option<&str>) -> Result<usize> {
    let open = sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::ended_at.is_null());
    let ended = match keep {
        Some(token) => diesel::update(open.filter(sessions::token_hash.ne(token_hash(token))))
            .set(sessions::ended_at.eq(Some(now())))
            .execute(conn)?,
        None => diesel::update(open).set(sessions::ended_at.eq(Some(now()))).execute(conn)?,
    };
    Ok(ended)
}
