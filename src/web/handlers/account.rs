//! The signed-in user's own account: password change and personal API tokens.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::auth::tokens::{self, ApiToken, TokenScope};
use crate::auth::users::LoginFailure;
use crate::auth::{mfa, passwords, sessions, users};
use crate::error::{Error, FieldErrors};
use crate::telemetry::Sensitive;
use crate::web::error::PageError;
use crate::web::extract::{redirect_with_flash, CurrentUser, PageCtx};
use crate::web::{render, render_form, AppState};

#[derive(Template)]
#[template(path = "account/show.html")]
pub struct AccountShowPage {
    pub ctx: PageCtx,
    /// Two-factor sign-in: since when (`None`: off), and the recovery codes left.
    pub mfa_since: Option<chrono::NaiveDateTime>,
    pub recovery_codes_left: i64,
    /// Administrators must have it on this server (so it cannot be turned off).
    pub mfa_required: bool,
    /// Single sign-on's name when configured, and whether the account is linked to it.
    pub sso_label: Option<String>,
    pub sso_linked: bool,
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
    let (list, user_now, left) = state
        .db(move |c| Ok((tokens::list_for_user(c, uid)?, users::get(c, uid)?, mfa::recovery_codes_left(c, uid)?)))
        .await?;
    let ctx = PageCtx::new(req, Some(user), "My account", "account");
    render_form(
        &ctx,
        &AccountShowPage {
            ctx: ctx.clone(),
            mfa_since: user_now.has_mfa().then_some(user_now.totp_enabled_at).flatten(),
            recovery_codes_left: left,
            mfa_required: user_now.is_admin && state.config.admin_mfa,
            sso_label: state.sso.as_ref().map(|s| s.settings.label.clone()),
            sso_linked: user_now.sso_subject.is_some(),
            tokens: list,
            errors: errors.clone(),
            now: crate::db::now(),
        },
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

#[derive(Template)]
#[template(path = "account/mfa_setup.html")]
pub struct MfaSetupPage {
    pub ctx: PageCtx,
    pub secret: String,
    pub qr_svg: String,
    pub errors: FieldErrors,
}

/// The recovery codes, shown once.
#[derive(Template)]
#[template(path = "account/recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub ctx: PageCtx,
    pub heading: String,
    pub codes: Vec<String>,
}

async fn setup_page(
    req: &HttpRequest,
    user: &CurrentUser,
    secret: String,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let qr_svg = mfa::qr_svg(&mfa::otpauth_uri(&user.user.username, &secret))?;
    let ctx = PageCtx::new(req, Some(user), "Set up two-factor sign-in", "account");
    render_form(&ctx, &MfaSetupPage { ctx: ctx.clone(), secret, qr_svg, errors: errors.clone() }, &errors)
}

fn codes_page(
    req: &HttpRequest,
    user: &CurrentUser,
    heading: &str,
    codes: Vec<String>,
) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(req, Some(user), heading, "account");
    render(&ctx, &RecoveryCodesPage { ctx: ctx.clone(), heading: heading.to_string(), codes })
}

/// Starts setting up an authenticator app: a new secret and its QR code.
pub async fn mfa_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, PageError> {
    let (actor, account) = (user.actor.clone(), user.user.clone());
    let secret = state.db(move |c| mfa::start_enrolment(c, &actor, &account)).await?;
    setup_page(&req, &user, secret, FieldErrors::default()).await
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: Sensitive<String>,
}

/// Confirms the set-up with the app's first code; shows the recovery codes once.
pub async fn mfa_confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, uid) = (user.actor.clone(), user.user.id);
    let current = req.cookie(sessions::COOKIE).map(|c| c.value().to_string());
    let code = form.into_inner().code;
    let at = state.config.clock.now();
    let result = state.db(move |c| mfa::confirm_enrolment(c, &actor, uid, code.expose(), at, current.as_deref())).await;
    match result {
        Ok(codes) => codes_page(&req, &user, "Two-factor sign-in is on: your recovery codes", codes),
        Err(Error::Invalid(errors)) => {
            let pending = state.db(move |c| users::get(c, uid)).await?.totp_pending_secret;
            match pending {
                Some(secret) => setup_page(&req, &user, secret, errors).await,
                None => Ok(redirect_with_flash("/account", "error", "Start the set-up again.")),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `work`, which checks a code typed on the account page: such codes are guessed like those
/// at sign-in (someone may hold a stolen session), so they are throttled, and a wrong one counts
/// toward the lockout, for every client.
async fn code_attempt<T, F>(req: &HttpRequest, state: &AppState, user: &CurrentUser, work: F) -> Result<T, Error>
where
    F: FnOnce(&mut crate::db::Conn) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let client = crate::web::client_ip(req, &state.config);
    if let Err(t) = state.login_throttle.attempt(client, &user.user.username) {
        let secs = t.retry_after.as_secs().max(1);
        return Err(Error::invalid("code", format!("too many attempts: try again in {secs} seconds")));
    }
    let result = state.db(work).await;
    if let Err(Error::Invalid(_)) = &result {
        let account = user.user.clone();
        state.db(move |c| users::record_login_attempt(c, &account, false, None).map(|_| ())).await?;
    }
    result
}

/// New recovery codes (the unused old ones stop working), with a current code.
pub async fn mfa_recovery_codes(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, uid) = (user.actor.clone(), user.user.id);
    let code = form.into_inner().code;
    let at = state.config.clock.now();
    match code_attempt(&req, &state, &user, move |c| mfa::renew_recovery_codes(c, &actor, uid, code.expose(), at)).await
    {
        Ok(codes) => codes_page(&req, &user, "Your new recovery codes", codes),
        Err(Error::Invalid(errors)) => show(&req, &state, &user, errors).await,
        Err(e) => Err(e.into()),
    }
}

/// Turns two-factor sign-in off, with a current code (not where it is required).
pub async fn mfa_disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let (actor, uid) = (user.actor.clone(), user.user.id);
    let required = user.user.is_admin && state.config.admin_mfa;
    let code = form.into_inner().code;
    let at = state.config.clock.now();
    match code_attempt(&req, &state, &user, move |c| mfa::disable(c, &actor, uid, code.expose(), at, required)).await {
        Ok(()) => {
            Ok(redirect_with_flash("/account", "ok", "Two-factor sign-in is off: your password alone signs you in."))
        }
        Err(Error::Invalid(errors)) => show(&req, &state, &user, errors).await,
        Err(e) => Err(e.into()),
    }
}
