//! Personal API tokens: shown once, stored as a SHA-256, revocable; sent as
//! `Authorization: Bearer evt_…` to `/api/` and accepted nowhere else. A token is read-only
//! unless made with the write scope, expires (90 days unless chosen otherwise, at most a year),
//! never carries administrator rights, and ends with a password change or reset. Creating and
//! revoking are audited.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::users::User;
use super::{random_token, token_hash, Actor};
use crate::audit::{self, Action, Chain, Change, Entity};
use crate::db::schema::{api_tokens, users};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};

pub const PREFIX: &str = "evt_";
/// How long a token lives unless its maker chooses otherwise, and the longest it may live.
pub const DEFAULT_DAYS: i64 = 90;
pub const MAX_DAYS: i64 = 365;

crate::db::text_enum! {
    /// What a token may do on `/api/`: read (GET) only, or also change data.
    pub enum TokenScope { Read = "read", ReadWrite = "read_write" }
}

impl TokenScope {
    pub fn label(&self) -> &'static str {
        match self {
            TokenScope::Read => "read only",
            TokenScope::ReadWrite => "read and write",
        }
    }

    pub fn allows(&self, method: &actix_web::http::Method) -> bool {
        use actix_web::http::Method;
        *self == TokenScope::ReadWrite || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub token_prefix: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub scope: TokenScope,
    pub expires_at: NaiveDateTime,
}

impl ApiToken {
    pub fn is_expired(&self, at: NaiveDateTime) -> bool {
        self.expires_at <= at
    }
}

/// Creates a token for the actor, living `days` days (1 to [`MAX_DAYS`]); returns it in clear
/// text, the only time it is shown.
pub fn create(conn: &mut Conn, actor: &Actor, name: &str, scope: TokenScope, days: i64) -> Result<(ApiToken, String)> {
    let user_id = actor.user_id.ok_or_else(|| Error::forbidden("tokens belong to a user account"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(Error::invalid("name", "required, at most 80 characters"));
    }
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::invalid("days", format!("a token lives from 1 to {MAX_DAYS} days")));
    }
    let secret = format!("{PREFIX}{}", random_token());
    let created = now();
    write_tx(conn, |conn| {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user_id),
                api_tokens::name.eq(name),
                api_tokens::token_hash.eq(token_hash(&secret)),
                api_tokens::token_prefix.eq(&secret[..PREFIX.len() + 8]),
                api_tokens::created_at.eq(created),
                api_tokens::scope.eq(scope),
                api_tokens::expires_at.eq(created + chrono::Duration::days(days)),
            ))
            .execute(conn)?;
        let tok: ApiToken = api_tokens::table
            .filter(api_tokens::token_hash.eq(token_hash(&secret)))
            .select(ApiToken::as_select())
            .first(conn)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::Create, Entity::ApiToken, tok.id).after(json!({
                "name": tok.name,
                "prefix": tok.token_prefix,
                "scope": tok.scope,
                "expires_at": tok.expires_at.to_string(),
            })),
        )?;
        Ok((tok, secret))
    })
}

pub fn list_for_user(conn: &mut Conn, user_id: i32) -> Result<Vec<ApiToken>> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order(api_tokens::id.desc())
        .select(ApiToken::as_select())
        .load(conn)?)
}

/// Revokes one of the actor's own tokens (admins may revoke anyone's).
pub fn revoke(conn: &mut Conn, actor: &Actor, token_id: i32) -> Result<()> {
    write_tx(conn, |conn| {
        let tok: ApiToken =
            api_tokens::table.find(token_id).select(ApiToken::as_select()).first(conn).or_not_found()?;
        if Some(tok.user_id) != actor.user_id && !actor.is_admin {
            return Err(Error::NotFound);
        }
        if tok.revoked_at.is_some() {
            return Ok(());
        }
        diesel::update(api_tokens::table.find(tok.id)).set(api_tokens::revoked_at.eq(Some(now()))).execute(conn)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::Revoke, Entity::ApiToken, tok.id)
                .before(json!({"revoked": false}))
                .after(json!({"revoked": true})),
        )?;
        Ok(())
    })
}

/// Revokes every live token of the user (deactivation, password change or reset); returns how
/// many. The caller audits the account change that caused it.
pub fn revoke_all_for_user(conn: &mut Conn, user_id: i32) -> Result<usize> {
    Ok(diesel::update(
        api_tokens::table.filter(api_tokens::user_id.eq(user_id)).filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(now())))
    .execute(conn)?)
}

/// The active user behind a live (not revoked, not expired) bearer token, with the token's
/// scope; `None` otherwise.
pub fn authenticate(conn: &mut Conn, secret: &str) -> Result<Option<(User, TokenScope)>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let found: Option<(ApiToken, User)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash(secret)))
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .optional()?;
    let t = now();
    match found {
        Some((tok, user)) if tok.revoked_at.is_none() && !tok.is_expired(t) && user.active => {
            diesel::update(api_tokens::table.find(tok.id)).set(api_tokens::last_used_at.eq(Some(t))).execute(conn)?;
            Ok(Some((user, tok.scope)))
        }
        _ => Ok(None),
    }
}
