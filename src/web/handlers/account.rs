//! The signed-in user's own account: password change and personal API tokens.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::auth::tokens::{self, ApiToken};
use crate::auth::{passwords, users};
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
    render_form(&ctx, &AccountShowPage { ctx: ctx.clone(), tokens: list, errors: errors.clone() }, &errors)
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
    let actor = user.actor.clone();
    let stored = user.user.password_hash.clone();
    let uid = user.user.id;
    let result = state
        .db(move |conn| {
            if !passwords::verify(&stored, form.current_password.expose()) {
                return Err(Error::invalid("current_password", "is not your current password"));
            }
            passwords::check_policy("new_password", form.new_password.expose())?;
            if form.new_password != form.confirm_password {
                return Err(Error::invalid("confirm_password", "does not match the new password"));
            }
            let h = passwords::hash(form.new_password.expose())?;
            users::set_password(conn, &actor, uid, &h, false)
        })
        .await;
    match result {
        Ok(()) => Ok(redirect_with_flash("/account", "ok", "Your password was changed.")),
        Err(Error::Invalid(errors)) => show(&req, &state, &user, errors).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub name: String,
}

pub async fn token_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let actor = user.actor.clone();
    let name = form.name.clone();
    match state.db(move |c| tokens::create(c, &actor, &name)).await {
        Ok((tok, secret)) => {
            let ctx = PageCtx::new(&req, Some(&user), "New API token", "account");
            render(
                &ctx,
                &SecretPage {
                    ctx: ctx.clone(),
                    heading: format!("API token “{}”", tok.name),
                    explanation:
                        "Copy it now: it is shown only once. Send it as `Authorization: Bearer <token>` to /api/v1/."
                            .into(),
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
