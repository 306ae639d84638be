//! Request extractors: the signed-in user (session cookie, or an API bearer token on `/api/`
//! only: scoped, never with administrator rights), the study of the
//! route with a permission checked (`InStudy<perm::…>`), and the per-page context every template
//! needs (user, CSRF token, flash message).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};

use super::middleware::CsrfToken;
use super::AppState;
pub use crate::auth::permissions::perm;
use crate::auth::permissions::{study_access, Needs, StudyAccess};
use crate::auth::tokens::TokenScope;
use crate::auth::users::User;
use crate::auth::{sessions, tokens, Actor};
use crate::error::Error;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub actor: Actor,
    /// The scope of the API token the request was authenticated by (`None`: a browser session).
    pub token: Option<TokenScope>,
    /// The browser session (`None`: an API token).
    pub session: Option<sessions::SessionInfo>,
}

impl CurrentUser {
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.user.is_admin {
            Ok(())
        } else {
            Err(Error::forbidden("this page is for administrators"))
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

fn unauthenticated(req: &HttpRequest) -> actix_web::Error {
    let resp = if req.path().starts_with("/api/") {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({"error": {"code": "unauthenticated", "message": "sign in or send a valid API token", "fields": []}}))
    } else {
        let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let target = if req.method() == actix_web::http::Method::GET {
            format!("/login?next={}", urlencode(next))
        } else {
            "/login".to_string()
        };
        HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish()
    };
    actix_web::error::InternalError::from_response("unauthenticated", resp).into()
}

/// What an administrator who must set up two-factor sign-in may still open.
fn mfa_setup_path(path: &str) -> bool {
    path == "/account" || path == "/logout" || path.starts_with("/account/mfa")
}

fn must_set_up_mfa() -> actix_web::Error {
    let resp = redirect_with_flash(
        "/account",
        "error",
        "Administrators sign in with two factors on this server: set up an authenticator app below to continue.",
    );
    actix_web::error::InternalError::from_response("two-factor set-up required", resp).into()
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|v| v.trim_start_matches('=').to_string()).unwrap_or_default()
}

impl FromRequest for CurrentUser {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(actix_web::error::ErrorInternalServerError("no app state"));
            };
            // Tokens are for the API: elsewhere (pages, administration) a bearer header counts
            // for nothing, so a token can never reach what only a signed-in person may do.
            let token = bearer(&req).filter(|_| req.path().starts_with("/api/"));
            let session = req.cookie(sessions::COOKIE).map(|c| c.value().to_string());
            if token.is_none() && session.is_none() {
                return Err(unauthenticated(&req));
            }
            let timeouts = state.timeouts();
            let pool = state.pool.clone();
            type Found = (User, Result<TokenScope, sessions::SessionInfo>);
            let found = web::block(move || -> Result<Option<Found>, Error> {
                let mut conn = pool.get()?;
                Ok(match (token, session) {
                    (Some(t), _) => tokens::authenticate(&mut conn, &t)?.map(|(u, scope)| (u, Ok(scope))),
                    (None, Some(s)) => sessions::authenticate(&mut conn, &s, &timeouts)?.map(|(u, i)| (u, Err(i))),
                    (None, None) => None,
                })
            })
            .await
            .map_err(actix_web::error::ErrorInternalServerError)?
            .map_err(|e| actix_web::Error::from(super::error::PageError(e)))?;
            match found {
                Some((mut user, Ok(scope))) => {
                    if !scope.allows(req.method()) {
                        let e = Error::forbidden("this API token is read-only: make a token with the write scope");
                        return Err(super::error::ApiError(e).into());
                    }
                    // Administration is for a person at a browser, never a script's token.
                    user.is_admin = false;
                    Ok(CurrentUser { actor: Actor::from_user(&user), user, token: Some(scope), session: None })
                }
                Some((user, Err(info))) => {
                    if user.is_admin && state.config.admin_mfa && !user.has_mfa() && !mfa_setup_path(req.path()) {
                        return Err(must_set_up_mfa());
                    }
                    Ok(CurrentUser { actor: Actor::from_user(&user), user, token: None, session: Some(info) })
                }
                None => Err(unauthenticated(&req)),
            }
        })
    }
}

/// The study of the route's `{code}`, for the signed-in user, with permission `P` checked: a
/// handler that takes it cannot reach the study without the permission its signature names.
/// Not a member (or no such study): 404; a member without `P`: 403 (404 where annotators are
/// blinded); on `/api/` routes the errors are JSON.
pub struct InStudy<P: Needs> {
    pub user: CurrentUser,
    pub access: StudyAccess,
    needs: PhantomData<P>,
}

impl<P: Needs + 'static> FromRequest for InStudy<P> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let user = CurrentUser::from_request(&req, payload);
        Box::pin(async move {
            let user = user.await?;
            let fail = |e: Error| -> actix_web::Error {
                if req.path().starts_with("/api/") {
                    super::error::ApiError(e).into()
                } else {
                    super::error::PageError(e).into()
                }
            };
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(actix_web::error::ErrorInternalServerError("no app state"));
            };
            let code = req.match_info().get("code").unwrap_or_default().to_string();
            let actor = user.actor.clone();
            let access = state.db(move |c| study_access(c, &actor, &code)).await.map_err(fail)?;
            if access.study.require_mfa && !user.user.has_mfa() {
                return Err(fail(Error::forbidden(format!(
                    "{} is open only to members who sign in with two factors: set it up under My account (/account/mfa)",
                    access.study.code
                ))));
            }
            access.require(P::PERMISSION).map_err(fail)?;
            Ok(InStudy { user, access, needs: PhantomData })
        })
    }
}

pub const FLASH_COOKIE: &str = "ev_flash";

/// A one-shot message shown on the next page (after a redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error` (the CSS class).
    pub kind: &'static str,
    pub message: String,
}

/// What the base layout needs.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub title: String,
    pub username: String,
    pub full_name: String,
    pub signed_in: bool,
    pub is_admin: bool,
    pub csrf: String,
    /// The next e-signature is the first of this session: it asks for the username too.
    pub first_signature: bool,
    /// E-signatures re-authenticate at the single sign-on provider (no local password); and
    /// whether that was done in the last minutes.
    pub sign_by_sso: bool,
    pub sso_confirmed: bool,
    /// The page's own path and query (to come back to after a re-authentication).
    pub here: String,
    pub flash: Option<Flash>,
    /// Which top-level section is active, for the navigation.
    pub section: &'static str,
}

impl PageCtx {
    pub fn new(req: &HttpRequest, user: Option<&CurrentUser>, title: impl Into<String>, section: &'static str) -> Self {
        let csrf = req.extensions().get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        let flash = req.cookie(FLASH_COOKIE).and_then(|c| {
            let decoded: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={}", c.value())).ok()?;
            let raw = decoded.into_iter().next()?.1;
            let (kind, message) = raw.split_once('|')?;
            let kind = if kind == "error" { "error" } else { "ok" };
            Some(Flash { kind, message: message.to_string() })
        });
        PageCtx {
            title: title.into(),
            username: user.map(|u| u.user.username.clone()).unwrap_or_default(),
            full_name: user.map(|u| u.user.full_name.clone()).unwrap_or_default(),
            signed_in: user.is_some(),
            is_admin: user.is_some_and(|u| u.user.is_admin),
            csrf,
            first_signature: user.and_then(|u| u.session).is_none_or(|s| !s.has_signed),
            sign_by_sso: user.is_some_and(|u| !u.user.password_login),
            sso_confirmed: user
                .and_then(|u| u.session)
                .and_then(|s| s.reauthenticated_at)
                .is_some_and(|t| crate::db::now() - t <= crate::auth::sso::reauth_window()),
            here: req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
            flash,
            section,
        }
    }
}

/// A 303 redirect carrying a flash message for the next page.
pub fn redirect_with_flash(location: &str, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .cookie(flash_cookie(kind, message))
        .finish()
}

/// The cookie that carries a flash message to the next page.
pub fn flash_cookie(kind: &str, message: &str) -> Cookie<'static> {
    // Cookie values cannot hold every character (names may be Korean): percent-encode.
    let value = urlencode(&format!("{kind}|{message}"));
    Cookie::build(FLASH_COOKIE, value).path("/").http_only(true).same_site(SameSite::Strict).finish()
}

pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_string())).finish()
}
