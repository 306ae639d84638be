//! Sign in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::auth::users::{self, LoginFailure};
use crate::auth::{csrf, mfa, passwords, random_token, sessions};
use crate::telemetry::Sensitive;
use crate::web::error::PageError;
use crate::web::extract::{flash_cookie, redirect, redirect_with_flash, urlencode, PageCtx};
use crate::web::{render, AppState};

#[derive(Template)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub ctx: PageCtx,
    /// The single sign-on provider's name, when configured.
    pub sso_label: Option<String>,
    pub username: String,
    pub next: String,
    pub error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    pub next: String,
}

/// Only same-site paths: never redirect to another host after login. Browsers drop tabs and
/// line breaks from a URL and read `\` as `/`, so `/\t/evil.example` would leave the site:
/// no control character or backslash at all (and a CR/LF could not go into a header anyway).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.chars().any(|c| c.is_control() || c == '\\') {
        next.to_string()
    } else {
        "/studies".to_string()
    }
}

pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(&req, None, "Sign in", "login");
    let sso_label = state.sso.as_ref().map(|s| s.settings.label.clone());
    render(&ctx, &LoginPage { ctx: ctx.clone(), sso_label, username: String::new(), next: q.next.clone(), error: None })
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Sensitive<String>,
    #[serde(default)]
    pub next: String,
}

pub async fn login_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let failed = |status: StatusCode, message: String| -> Result<HttpResponse, PageError> {
        let ctx = PageCtx::new(&req, None, "Sign in", "login");
        let page = LoginPage {
            ctx: ctx.clone(),
            sso_label: state.sso.as_ref().map(|s| s.settings.label.clone()),
            username: form.username.clone(),
            next: form.next.clone(),
            error: Some(message),
        };
        let mut resp = render(&ctx, &page)?;
        *resp.status_mut() = status;
        Ok(resp)
    };
    // Throttled before any database or hashing work.
    let client = crate::web::client_ip(&req, &state.config);
    if let Err(t) = state.login_throttle.attempt(client, &form.username) {
        tracing::warn!("sign-in throttled");
        let secs = t.retry_after.as_secs().max(1);
        let message =
            format!("Too many sign-in attempts from this computer or for this username: try again in {secs} seconds.");
        return Ok(retry_after(failed(StatusCode::TOO_MANY_REQUESTS, message)?, secs));
    }
    let client_key = client.map(|ip| ip.to_string());
    let username = form.username.clone();
    let user = state.db(move |conn| users::find_by_username(conn, &username)).await?;
    // The password is checked holding no database connection, a bounded number at once.
    let password = form.password.clone();
    // An account that signs in by single sign-on only has no password to check (the same work
    // is done, and the same answer given, as for a wrong one).
    let stored = user.as_ref().filter(|u| u.password_login).map(|u| u.password_hash.clone());
    let ok = state
        .hash_work(move || match stored {
            Some(h) => passwords::verify(&h, password.expose()),
            None => {
                passwords::dummy_verify(password.expose());
                false
            }
        })
        .await?;
    let outcome = match user {
        None => None,
        Some(user) => {
            state
                .db(move |conn| {
                    let ok = ok && user.password_login;
                    if ok && user.has_mfa() {
                        // The password was right; the sign-in waits for the second factor.
                        if !users::may_continue_sign_in(conn, &user, client_key.as_deref())? {
                            return Ok(None);
                        }
                        return Ok(Some(Signed::AwaitingSecondFactor(sessions::create_awaiting_second_factor(
                            conn, user.id,
                        )?)));
                    }
                    match users::record_login_attempt(conn, &user, ok, client_key.as_deref())? {
                        Ok(()) => Ok(Some(Signed::In {
                            token: sessions::create(conn, user.id)?,
                            landing: crate::studies::members::landing(conn, user.id)?,
                        })),
                        Err(LoginFailure::Locked) | Err(LoginFailure::BadCredentials) => Ok(None),
                    }
                })
                .await?
        }
    };
    match outcome {
        Some(Signed::In { token, landing }) => {
            // Where the person was going, else their landing page (a reader's queue).
            let to = if form.next.is_empty() { landing } else { safe_next(&form.next) };
            signed_in(&state, token, &to)
        }
        Some(Signed::AwaitingSecondFactor(token)) => {
            let to = format!("/login/code?next={}", urlencode(&form.next));
            let mut resp = redirect(&to);
            resp.add_cookie(&session_cookie(&state, token)).map_err(cookie_error)?;
            Ok(resp)
        }
        None => {
            tracing::info!("failed sign-in");
            failed(
                StatusCode::UNAUTHORIZED,
                "Wrong username or password, or the account is locked after too many attempts (wait 15 minutes or ask an administrator).".into(),
            )
        }
    }
}

/// A throttled answer says when to come back.
fn retry_after(mut resp: HttpResponse, secs: u64) -> HttpResponse {
    resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    resp
}

enum Signed {
    /// Signed in: the session token and the user's landing page.
    In { token: String, landing: String },
    /// The password was right; the token of the sign-in waiting for the second factor.
    AwaitingSecondFactor(String),
}

fn cookie_error(e: impl std::fmt::Display) -> PageError {
    PageError(anyhow::anyhow!("cookie: {e}").into())
}

fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build(sessions::COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies)
        .finish()
}

/// The answer that completes a sign-in: the session cookie, a new CSRF token (one planted
/// before sign-in is useless after) and a redirect to `to`.
fn signed_in(state: &AppState, token: String, to: &str) -> Result<HttpResponse, PageError> {
    let csrf_cookie = Cookie::build(csrf::COOKIE, random_token())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies)
        .finish();
    let mut resp = redirect(to);
    resp.add_cookie(&session_cookie(state, token)).map_err(cookie_error)?;
    resp.add_cookie(&csrf_cookie).map_err(cookie_error)?;
    Ok(resp)
}

#[derive(Template)]
#[template(path = "auth/code.html")]
pub struct CodePage {
    pub ctx: PageCtx,
    pub next: String,
    pub error: Option<String>,
}

/// The second step of a sign-in with two factors: the code of the authenticator app, or a
/// recovery code. Without a sign-in waiting for it, back to the first step.
pub async fn code_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(token) = req.cookie(sessions::COOKIE).map(|c| c.value().to_string()) else {
        return Ok(redirect("/login"));
    };
    let at = state.config.clock.now();
    let waiting = state.db(move |conn| sessions::awaiting_second_factor(conn, &token, at)).await?;
    if waiting.is_none() {
        return Ok(redirect_with_flash("/login", "error", "Sign in again: the sign-in waited too long for its code."));
    }
    let ctx = PageCtx::new(&req, None, "Sign-in code", "login");
    render(&ctx, &CodePage { ctx: ctx.clone(), next: q.next.clone(), error: None })
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: Sensitive<String>,
    #[serde(default)]
    pub next: String,
}

pub async fn code_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let Some(pending) = req.cookie(sessions::COOKIE).map(|c| c.value().to_string()) else {
        return Ok(redirect("/login"));
    };
    let failed = |status: StatusCode, message: &str| -> Result<HttpResponse, PageError> {
        let ctx = PageCtx::new(&req, None, "Sign-in code", "login");
        let mut resp =
            render(&ctx, &CodePage { ctx: ctx.clone(), next: form.next.clone(), error: Some(message.to_string()) })?;
        *resp.status_mut() = status;
        Ok(resp)
    };
    let token = pending.clone();
    let at = state.config.clock.now();
    let Some(user) = state.db(move |conn| sessions::awaiting_second_factor(conn, &token, at)).await? else {
        return Ok(redirect_with_flash("/login", "error", "Sign in again: the sign-in waited too long for its code."));
    };
    // Codes are throttled like passwords: six digits must not be guessable at the server's pace.
    let client = crate::web::client_ip(&req, &state.config);
    if let Err(t) = state.login_throttle.attempt(client, &user.username) {
        let secs = t.retry_after.as_secs().max(1);
        let message = format!("Too many attempts: try again in {secs} seconds.");
        return Ok(retry_after(failed(StatusCode::TOO_MANY_REQUESTS, &message)?, secs));
    }
    let client_key = client.map(|ip| ip.to_string());
    let code = form.code.clone();
    let at = state.config.clock.now();
    let outcome = state
        .db(move |conn| {
            let factor = mfa::check_second_factor(conn, user.id, code.expose(), at)?;
            // Whoever types codes knows the password: their failures lock the account for every
            // client (a guesser rotating addresses gets five codes, not five per address).
            let client = if factor.is_some() { client_key.as_deref() } else { None };
            let recorded =
                users::record_sign_in(conn, &user, factor.is_some(), client, factor.map(|f| f.audit_json()))?;
            match recorded {
                Ok(()) => {
                    // The waiting sign-in ends; a new session (a new token) takes its place.
                    sessions::end(conn, &pending)?;
                    let token = sessions::create(conn, user.id)?;
                    Ok(Ok((token, crate::studies::members::landing(conn, user.id)?, factor)))
                }
                Err(LoginFailure::Locked) => {
                    sessions::end(conn, &pending)?;
                    Ok(Err(true))
                }
                Err(LoginFailure::BadCredentials) => Ok(Err(false)),
            }
        })
        .await?;
    match outcome {
        Ok((token, landing, factor)) => {
            let to = if form.next.is_empty() { landing } else { safe_next(&form.next) };
            let mut resp = signed_in(&state, token, &to)?;
            if let Some(mfa::SecondFactor::RecoveryCode { left }) = factor {
                let note = flash_cookie(
                    if left <= 2 { "error" } else { "ok" },
                    &format!("You signed in with a recovery code; {left} left. Make new ones on My account if you are running low."),
                );
                resp.add_cookie(&note).map_err(cookie_error)?;
            }
            Ok(resp)
        }
        Err(true) => Ok(redirect_with_flash(
            "/login",
            "error",
            "Too many wrong codes: the account is locked for 15 minutes (or until an administrator unlocks it).",
        )),
        Err(false) => {
            tracing::info!("wrong second factor");
            failed(StatusCode::UNAUTHORIZED, "That code is not right (or was used already). Type the current 6-digit code of your authenticator app, or a recovery code.")
        }
    }
}

const SSO_COOKIE: &str = "ev_sso";

#[derive(serde::Deserialize)]
pub struct SsoStart {
    #[serde(default)]
    pub next: String,
    /// `1`: re-authenticate the signed-in person for an e-signature.
    #[serde(default)]
    pub reauth: String,
    /// `1`: link the signed-in person's account to their single sign-on identity.
    #[serde(default)]
    pub link: String,
}

/// Sends the browser to the single sign-on provider (a sign-in, or a re-authentication for an
/// e-signature), remembering the flow's secrets in a short-lived cookie.
pub async fn sso_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<SsoStart>,
) -> Result<HttpResponse, PageError> {
    let Some(sso) = state.sso.clone() else { return Err(crate::error::Error::NotFound.into()) };
    let link = q.link == "1";
    let reauth_session = if q.reauth == "1" || link {
        // Only a signed-in person re-authenticates (or links), for their own session.
        let Some(token) = req.cookie(sessions::COOKIE).map(|c| c.value().to_string()) else {
            return Ok(redirect("/login"));
        };
        let timeouts = state.timeouts();
        match state.db(move |conn| sessions::authenticate(conn, &token, &timeouts)).await? {
            Some((_, info)) => Some(info.id),
            None => return Ok(redirect("/login")),
        }
    } else {
        None
    };
    let next = safe_next(&q.next);
    let (url, flow) = match sso.begin(&next, reauth_session, link).await {
        Ok(v) => v,
        Err(e) => return Ok(redirect_with_flash("/login", "error", &e.to_string())),
    };
    let value = serde_urlencoded::to_string(&flow).map_err(|e| PageError(anyhow::anyhow!("sso flow: {e}").into()))?;
    // Lax, not Strict: the provider's redirect back is a navigation from another site.
    let cookie = Cookie::build(SSO_COOKIE, urlencode(&value))
        .path("/login/sso")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies)
        .max_age(actix_web::cookie::time::Duration::minutes(10))
        .finish();
    let mut resp = redirect(&url);
    resp.add_cookie(&cookie).map_err(cookie_error)?;
    Ok(resp)
}

#[derive(serde::Deserialize)]
pub struct SsoCallback {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

#[derive(Template)]
#[template(path = "auth/continue.html")]
pub struct ContinuePage {
    pub ctx: PageCtx,
    pub to: String,
}

/// The provider's answer: the state must be the flow's; the code is exchanged and the ID token
/// checked; then the account signs in (or the session is marked re-authenticated).
pub async fn sso_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<SsoCallback>,
) -> Result<HttpResponse, PageError> {
    let Some(sso) = state.sso.clone() else { return Err(crate::error::Error::NotFound.into()) };
    let refuse = |message: &str| {
        tracing::info!("single sign-on refused");
        let mut resp = redirect_with_flash("/login", "error", message);
        resp.add_cookie(&sso_cookie_removal()).map_err(cookie_error)?;
        Ok::<_, PageError>(resp)
    };
    // actix percent-decodes cookie values once: what is left is the flow's form encoding.
    let flow: Option<crate::auth::sso::Flow> =
        req.cookie(SSO_COOKIE).and_then(|c| serde_urlencoded::from_str(c.value()).ok());
    let Some(flow) = flow else { return refuse("Single sign-on took too long or was not started here: try again.") };
    // The state first: an answer that is not this browser's flow says nothing, not even its error.
    if !crate::auth::constant_time_eq(q.state.as_bytes(), flow.state.as_bytes()) {
        return refuse("Single sign-on failed: the answer does not belong to this sign-in. Try again.");
    }
    if !q.error.is_empty() {
        return refuse(&format!("The single sign-on provider refused: {} {}", q.error, q.error_description));
    }
    let who = match sso.finish(&q.code, &flow).await {
        Ok(w) => w,
        Err(e) => return refuse(&e.to_string()),
    };
    let settings = sso.settings.clone();
    let to = flow.next.clone();
    if let (Some(session_id), true) = (flow.reauth_session, flow.link) {
        // Linking: the session's account (proved with its password and second factor) takes
        // the identity the provider just vouched for.
        let linked = state
            .db(move |conn| match sessions::open_owner(conn, session_id)? {
                Some(uid) => crate::auth::sso::link(conn, &settings, uid, &who).map(Some),
                None => Ok(None),
            })
            .await;
        return match linked {
            Ok(Some(_)) => continue_to(&req, &to, vec![], Some("Single sign-on is linked to your account.")),
            Ok(None) => refuse("Sign in again, then link single sign-on."),
            Err(e @ crate::error::Error::Conflict(_)) => refuse(&e.to_string()),
            Err(e) => Err(e.into()),
        };
    }
    if let Some(session_id) = flow.reauth_session {
        // A re-authentication: the same identity as the session's account, just now.
        let fresh = who.auth_time.is_some_and(|t| (crate::db::now() - t).abs() <= crate::auth::sso::reauth_window());
        let subject = who.subject.clone();
        let marked = state
            .db(move |conn| {
                let Some(uid) = sessions::open_owner(conn, session_id)? else { return Ok(false) };
                let user = users::get(conn, uid)?;
                if user.sso_subject.as_deref() != Some(subject.as_str()) || !fresh {
                    return Ok(false);
                }
                sessions::mark_reauthenticated(conn, session_id, uid)
            })
            .await?;
        if !marked {
            return refuse("Single sign-on did not confirm the signed-in person just now: nothing was confirmed.");
        }
        return continue_to(&req, &to, vec![], Some("Identity confirmed: sign within 5 minutes."));
    }
    let outcome = state
        .db(move |conn| {
            let user = crate::auth::sso::resolve(conn, &settings, &who)?;
            if user.has_mfa() {
                return Ok(Signed::AwaitingSecondFactor(sessions::create_awaiting_second_factor(conn, user.id)?));
            }
            users::record_sign_in(conn, &user, true, None, Some(serde_json::json!({"method": "single_sign_on"})))?
                .map_err(|_| crate::error::Error::Conflict("the account is locked".into()))?;
            Ok(Signed::In {
                token: sessions::create(conn, user.id)?,
                landing: crate::studies::members::landing(conn, user.id)?,
            })
        })
        .await;
    match outcome {
        Ok(Signed::In { token, landing }) => {
            let to = if flow.next.is_empty() || flow.next == "/studies" { landing } else { to };
            let csrf_cookie = Cookie::build(csrf::COOKIE, random_token())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(state.config.secure_cookies)
                .finish();
            continue_to(&req, &to, vec![session_cookie(&state, token), csrf_cookie], None)
        }
        Ok(Signed::AwaitingSecondFactor(token)) => {
            let to = format!("/login/code?next={}", urlencode(&flow.next));
            continue_to(&req, &to, vec![session_cookie(&state, token)], None)
        }
        Err(e @ (crate::error::Error::Conflict(_) | crate::error::Error::Invalid(_))) => refuse(&e.to_string()),
        Err(e) => Err(e.into()),
    }
}

/// A page that moves on to `to` by itself: the provider's redirect is a navigation from another
/// site, which carries no SameSite=Strict cookie, so the next page is opened from this one.
fn continue_to(
    req: &HttpRequest,
    to: &str,
    cookies: Vec<Cookie<'static>>,
    flash: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(req, None, "Signing in", "login");
    let mut resp = render(&ctx, &ContinuePage { ctx: ctx.clone(), to: to.to_string() })?;
    resp.add_cookie(&sso_cookie_removal()).map_err(cookie_error)?;
    for c in cookies.iter().chain(flash.map(|m| flash_cookie("ok", m)).iter()) {
        resp.add_cookie(c).map_err(cookie_error)?;
    }
    Ok(resp)
}

fn sso_cookie_removal() -> Cookie<'static> {
    let mut gone = Cookie::new(SSO_COOKIE, "");
    gone.set_path("/login/sso");
    gone.set_http_only(true);
    gone.set_same_site(SameSite::Lax);
    gone.make_removal();
    gone
}

pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    if let Some(c) = req.cookie(sessions::COOKIE) {
        let token = c.value().to_string();
        state.db(move |conn| sessions::end(conn, &token)).await?;
    }
    let mut resp = redirect_with_flash("/login", "ok", "You are signed out.");
    let mut c = Cookie::new(sessions::COOKIE, "");
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.make_removal();
    resp.add_cookie(&c).map_err(|e| PageError(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_is_kept_on_site() {
        assert_eq!(super::safe_next("/studies/X"), "/studies/X");
        assert_eq!(super::safe_next("//evil.example"), "/studies");
        assert_eq!(super::safe_next("https://evil.example"), "/studies");
        assert_eq!(super::safe_next("/\t/evil.example"), "/studies");
        assert_eq!(super::safe_next("/\\evil.example"), "/studies");
        assert_eq!(super::safe_next("/studies\r\nSet-Cookie: x=1"), "/studies");
    }
}
