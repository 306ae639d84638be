//! The signed-in user's own account: password change and personal API tokens.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::auth::tokens::{self, ApiToken, TokenScope};
use crate::auth::users::LoginFailure;
use crate::auth::{passwords, sessions, users};
use crate::error::{Error, FieldErrors};
use crate::telemetry::Sensitive;
use crate::web::error::PageError;
use crate::web::extract::{redirect_with_flash, CurrentUser, PageCtx};
use crate::web::{render, render_form, AppState};

#[derive(Template)]
#[template(path = "account/show.html")]
pub struct AccountShowPage {
    pub ctx: PageCtx,
    pub tokens: Vec<ApiToken>,
    pub errors: FieldErrors,
    /// To mark expired tokens.
    pub now: chrono::NaiveDateTime,
}

/// A secret shown exactly once (new password, new API token).
#[derive(Template)]
#[template(path = "shared/secret.html")]
pub struct SecretPage {
    pub ctx: PageCtx,
    pub heading: String,
    pub explanation: String,
    pub secret: String,
    pub back: String,
}

async fn show(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let uid = user.user.id;
    let list = state.db(move |c| tokens::list_for_user(c, uid)).await?;
    let ctx = PageCtx::new(req, Some(user), "My account", "account");
    render_form(
        &ctx,
        &AccountShowPage { ctx: ctx.clone(), tokens: list, errors: errors.clone(), now: crate::db::now() },
        &errors,
    )
}

pub async fn account_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, PageError> {
    show(&req, &state, &user, FieldErrors::default()).await
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: Sensitive<String>,
    #[serde(default)]
    pub new_password: Sensitive<String>,
    #[serde(default)]
    pub confirm_password: Sensitive<String>,
}

pub async fn password_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    // The checks and the hash run holding no database connection.
    let (stored, username) = (user.user.password_hash.clone(), user.user.username.clone());
    let checked = state
        .hash_work(move || -> Result<(bool, String), Error> {
            if !passwords::verify(&stored, form.current_password.expose()) {
                return Ok((false, String::new()));
            }
            passwords::check_policy("new_password", form.new_password.expose(), &username)?;
            if form.new_password != form.confirm_password {
                return Err(Error::invalid("confirm_password", "does not match the new password"));
            }
            Ok((true, passwords::hash(form.new_password.expose())?))
        })
        .await?;
    let (actor, uid, account) = (user.actor.clone(), user.user.id, user.user.clone());
    let client = crate::web::client_ip(&req, &state.config).map(|ip| ip.to_string());
    // This session stays; every other one ends, and every API token is revoked.
    let current = req.cookie(sessions::COOKIE).map(|c| c.value().to_string());
    let result = match checked {
        Ok((true, h)) => {
            state.db(move |conn| users::set_password(conn, &actor, uid, &h, false, current.as_deref())).await
        }
        Ok((false, _)) => {
            // A wrong current password counts like a failed sign-in (and locks the same way).
            let locked = state
                .db(move |conn| {
                    Ok(users::record_login_attempt(conn, &account, false, client.as_deref())?
                        .is_err_and(|f| f == LoginFailure::Locked))
                })
                .await?;
            Err(Error::invalid(
                "current_password",
                if locked {
                    "is not your current password; the account is now locked after too many attempts"
                } else {
                    "is not your current password"
                },
            ))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(redirect_with_flash(
            "/account",
            "ok",
            "Your password was changed. Your other sessions were ended and your API tokens revoked.",
        )),
        Err(Error::Invalid(errors)) => show(&req, &state, &user, errors).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub name: String,
    /// `read` (the default) or `read_write`.
    #[serde(default)]
    pub scope: String,
    /// Days until it expires; empty: the default.
    #[serde(default)]
    pub days: String,
}

pub async fn token_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let form = form.into_inner();
    let parsed = (|| {
        let scope = match form.scope.trim() {
            "" => TokenScope::Read,
            s => TokenScope::parse(s).ok_or_else(|| Error::invalid("scope", "choose read only or read and write"))?,
        };
        let days = match form.days.trim() {
            "" => tokens::DEFAULT_DAYS,
            d => d.parse::<i64>().map_err(|_| Error::invalid("days", "a whole number of days"))?,
        };
        Ok::<_, Error>((scope, days))
    })();
    let created = match parsed {
        Ok((scope, days)) => state.db(move |c| tokens::create(c, &actor, &form.name, scope, days)).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((tok, secret)) => {
            let ctx = PageCtx::new(&req, Some(&user), "New API token", "account");
            render(
                &ctx,
                &SecretPage {
                    ctx: ctx.clone(),
                    heading: format!("API token “{}”", tok.name),
                    explanation: format!(
                        "Copy it now: it is shown only once. Send it as `Authorization: Bearer <token>` to /api/v1/. \
                         It can {} and expires on {}.",
                        if tok.scope == TokenScope::ReadWrite { "read and change data" } else { "only read" },
                        crate::web::fmt_time(&tok.expires_at)
                    ),
                    secret,
                    back: "/account".into(),
                },
            )
        }
        Err(Error::Invalid(errors)) => show(&req, &state, &user, errors).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn token_revoke(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let id = path.into_inner();
    state.db(move |c| tokens::revoke(c, &actor, id)).await?;
    Ok(redirect_with_flash("/account", "ok", "The token was revoked."))
}
