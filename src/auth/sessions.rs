//! Server-side sessions. The cookie holds a random token; the database holds only its hash.
//! A session ends after `idle` without a request or `absolute` after login, whichever is first.

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

/// Starts a session; returns the token for the cookie (never stored).
pub fn create(conn: &mut Conn, user_id: i32) -> Result<String> {
    let token = random_token();
    let t = now();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash(&token)),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(t),
            sessions::last_seen_at.eq(t),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The active user behind a session token, refreshing its idle timer; `None` when the token
/// is unknown, ended, timed out, or its user was deactivated.
pub fn authenticate(conn: &mut Conn, token: &str, timeouts: &Timeouts) -> Result<Option<User>> {
    let found: Option<(i32, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>, User)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash(token)))
        .select((sessions::id, sessions::created_at, sessions::last_seen_at, sessions::ended_at, User::as_select()))
        .first(conn)
        .optional()?;
    let Some((id, created, last_seen, ended, user)) = found else { return Ok(None) };
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
    Ok(Some(user))
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
