//! Sign in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::auth::users::{self, LoginFailure};
use crate::auth::{csrf, passwords, random_token, sessions};
use crate::telemetry::Sensitive;
use crate::web::error::PageError;
use crate::web::extract::{redirect, redirect_with_flash, PageCtx};
use crate::web::{render, AppState};

#[derive(Template)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub ctx: PageCtx,
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

pub async fn login_form(req: HttpRequest, q: web::Query<NextQuery>) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(&req, None, "Sign in", "login");
    render(&ctx, &LoginPage { ctx: ctx.clone(), username: String::new(), next: q.next.clone(), error: None })
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
        let mut resp = failed(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many sign-in attempts from this computer or for this username: try again in {secs} seconds."),
        )?;
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return Ok(resp);
    }
    let client_key = client.map(|ip| ip.to_string());
    let username = form.username.clone();
    let user = state.db(move |conn| users::find_by_username(conn, &username)).await?;
    // The password is checked holding no database connection, a bounded number at once.
    let password = form.password.clone();
    let stored = user.as_ref().map(|u| u.password_hash.clone());
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
                .db(move |conn| match users::record_login_attempt(conn, &user, ok, client_key.as_deref())? {
                    Ok(()) => {
                        Ok(Some((sessions::create(conn, user.id)?, crate::studies::members::landing(conn, user.id)?)))
                    }
                    Err(LoginFailure::Locked) | Err(LoginFailure::BadCredentials) => Ok(None),
                })
                .await?
        }
    };
    let Some((token, landing)) = outcome else {
        tracing::info!("failed sign-in");
        return failed(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password, or the account is locked after too many attempts (wait 15 minutes or ask an administrator).".into(),
        );
    };
    let secure = state.config.secure_cookies;
    let session = Cookie::build(sessions::COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish();
    // A new CSRF token with the new session: a token planted before sign-in is useless after.
    let csrf_cookie = Cookie::build(csrf::COOKIE, random_token())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish();
    // Where the person was going, else their landing page (a reader's queue).
    let to = if form.next.is_empty() { landing } else { safe_next(&form.next) };
    let mut resp = redirect(&to);
    resp.add_cookie(&session).map_err(|e| PageError(anyhow::anyhow!("cookie: {e}").into()))?;
    resp.add_cookie(&csrf_cookie).map_err(|e| PageError(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(resp)
}

pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    if let Some(c) = req.cookie(sessions::COOKIE) {
        let token = c.value().to_string();
        state.db(move |conn| sessions::end(conn, &token)).await?;
    }
    let mut resp = redirect_with_flash("/login", "ok", "You are signed out.");
    let mut c = Cookie::new(sessions::COOKIE, "");
    c.set_path("/");
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
