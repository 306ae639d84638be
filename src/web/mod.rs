//! The web layer: routes, extractors, middleware and handlers. Handlers only extract,
//! authorise, call the domain and render.

pub mod assets;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod metrics;
pub mod middleware;
pub mod upload;

use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::auth::sessions::Timeouts;
use crate::config::Config;
use crate::db::paging::Page;
use crate::db::{Conn, DbPool};
use crate::error::Error;
use crate::export::{write_csv, CsvRecord};
use error::PageError;
use extract::{PageCtx, FLASH_COOKIE};

/// Shared by every handler.
pub struct AppState {
    pub pool: DbPool,
    pub config: Config,
    pub metrics: Arc<metrics::Metrics>,
    /// Open slides and encoded Deep Zoom tiles, shared by all requests.
    pub tiles: Arc<crate::slides::dzi::TileServer>,
    /// The scrubber of what is typed on case pages (the configured patterns, no names).
    pub edit_scrubber: Arc<crate::cases::scrub::Scrubber>,
    /// The case lists' ordered ids, while each study's cases are unchanged.
    pub case_lists: Arc<crate::cases::ListCache>,
    /// Locked studies' snapshot hashes, for their overview pages.
    pub snapshots: Arc<crate::studies::lock::SnapshotCache>,
    /// Sign-in attempts per client address and per username.
    pub login_throttle: Arc<crate::auth::throttle::LoginThrottle>,
    /// Permits to hash a password (argon2id): a bounded number at once.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Single sign-on, when configured.
    pub sso: Option<Arc<crate::auth::sso::Sso>>,
}

impl AppState {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: self.config.session_idle,
            absolute: self.config.session_absolute,
            clock: self.config.clock.clone(),
        }
    }

    /// Runs password hashing or checking off the async threads, holding no database
    /// connection, at most as many at once as `hashing` has permits (waiting without a thread).
    pub async fn hash_work<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit =
            self.hashing.acquire().await.map_err(|e| Error::Internal(anyhow::anyhow!("hashing permits: {e}")))?;
        web::block(f).await.map_err(|e| Error::Internal(anyhow::anyhow!("blocking task: {e}")))
    }

    /// Makes an e-signature with `sign`: checks the components `user` typed into `form` (21 CFR
    /// 11.200(a)(1)(i): the first signing of a session takes the username and the password,
    /// later ones the password), the password on the hashing threads holding no database
    /// connection (as sign-in does), then runs `sign` and records the session's first signing.
    pub async fn sign<T, F>(
        &self,
        req: &actix_web::HttpRequest,
        user: &extract::CurrentUser,
        form: SignForm,
        sign: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(&mut Conn, crate::auth::esign::Signing<'_>) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let first = user.session.is_none_or(|s| !s.has_signed);
        // Someone else's (or no) username fails like a wrong password: counted, and audited
        // where the signing function audits failures.
        let wrong_username = first && !form.username.trim().eq_ignore_ascii_case(&user.user.username);
        let hash = user.user.password_hash.clone();
        // An account without a local password re-authenticates at the single sign-on provider
        // instead, for this signature, within a few minutes.
        let reauthenticated = if user.user.password_login || wrong_username {
            None
        } else {
            let fresh = crate::auth::sso::reauth_window();
            let at = user.session.and_then(|s| s.reauthenticated_at.filter(|t| self.config.clock.now() - *t <= fresh));
            match (at, user.session) {
                (Some(_), Some(s)) => Some(s.id),
                _ => return Err(Error::invalid(
                    "password",
                    "confirm your identity with single sign-on first (the button by the signature); nothing was signed",
                )),
            }
        };
        let ok = match reauthenticated {
            Some(_) => true,
            None if wrong_username => false,
            None => {
                let stored = hash.clone();
                let typed = form.password;
                self.hash_work(move || crate::auth::passwords::verify(&stored, typed.expose())).await?
            }
        };
        let session = req.cookie(crate::auth::sessions::COOKIE).map(|c| c.value().to_string());
        let meaning = form.meaning;
        let since = self.config.clock.now() - crate::auth::sso::reauth_window();
        self.db(move |conn| {
            // Used up before signing: two signatures sent at once cannot share it.
            if let Some(id) = reauthenticated {
                if !crate::auth::sessions::use_reauthentication(conn, id, since)? {
                    return Err(Error::invalid(
                        "password",
                        "confirm your identity with single sign-on again; nothing was signed",
                    ));
                }
            }
            let password = if wrong_username {
                crate::auth::esign::Password::WrongUsername
            } else {
                crate::auth::esign::Password::Checked { ok, hash }
            };
            let done = sign(conn, crate::auth::esign::Signing { password, meaning: &meaning })?;
            if let Some(token) = session {
                crate::auth::sessions::mark_signed(conn, &token)?;
            }
            Ok(done)
        })
        .await
    }

    /// Runs blocking database work on the blocking thread pool.
    pub async fn db<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        // Set when this future is dropped before the work ran: the client went away (actix
        // drops the handler) while the work waited for a thread or a connection, so it is
        // skipped instead of keeping the server busy for nobody. Work that has started runs to
        // its end (a transaction is never cut short).
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _guard = SetOnDrop(gone.clone());
        web::block(move || {
            let abandoned = || gone.load(std::sync::atomic::Ordering::Relaxed);
            if abandoned() {
                return Err(Error::Abandoned);
            }
            let mut conn = pool.get()?;
            if abandoned() {
                return Err(Error::Abandoned);
            }
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("blocking task: {e}")))?
    }
}

/// What an e-signature form sends (the plan's and the study's).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SignForm {
    /// Asked for at the first signing of a session.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: crate::telemetry::Sensitive<String>,
    #[serde(default)]
    pub meaning: String,
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Renders a page; clears the flash cookie once its message was shown.
pub fn render(ctx: &PageCtx, page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render()?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if ctx.flash.is_some() {
        let mut c = Cookie::new(FLASH_COOKIE, "");
        c.set_path("/");
        c.set_http_only(true);
        c.set_same_site(actix_web::cookie::SameSite::Strict);
        c.make_removal();
        resp.cookie(c);
    }
    Ok(resp.body(body))
}

/// Renders a form page: 422 when it shows validation errors, else 200.
pub fn render_form(
    ctx: &PageCtx,
    page: &impl Template,
    errors: &crate::error::FieldErrors,
) -> Result<HttpResponse, PageError> {
    render_outcome(ctx, page, !errors.is_empty())
}

/// Renders a page that reports on submitted input: 422 when the input was refused.
pub fn render_outcome(ctx: &PageCtx, page: &impl Template, refused: bool) -> Result<HttpResponse, PageError> {
    let mut resp = render(ctx, page)?;
    if refused {
        *resp.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

/// Renders a fragment for htmx (no layout).
pub fn render_partial(page: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(page.render()?))
}

/// The answer to a form action that returns to a page: back to `url` with a flash saying what was
/// done, or (prefixed by `refused`) what was wrong with the input or the state; anything else
/// becomes an error page.
pub fn flash_outcome<T>(
    url: &str,
    result: Result<T, Error>,
    refused: &str,
    done: impl FnOnce(T) -> String,
) -> Result<HttpResponse, PageError> {
    match result {
        Ok(v) => Ok(extract::redirect_with_flash(url, "ok", &done(v))),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            Ok(extract::redirect_with_flash(url, "error", &format!("{refused}{e}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A CSV download of records (the one place tables become spreadsheets).
pub fn csv_download<'a, T: CsvRecord + 'a>(
    filename: &str,
    items: impl IntoIterator<Item = &'a T>,
) -> Result<HttpResponse, PageError> {
    let mut bytes = Vec::new();
    write_csv(&mut bytes, items).map_err(Error::Internal)?;
    Ok(csv_response(filename, bytes))
}

/// A CSV download of rows whose columns are known only at run time (a schema's fields).
pub fn csv_rows_download(
    filename: &str,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
) -> Result<HttpResponse, PageError> {
    let mut bytes = Vec::new();
    crate::export::write_rows(&mut bytes, header, rows).map_err(Error::Internal)?;
    Ok(csv_response(filename, bytes))
}

/// A download of `len` bytes named `filename`, read in 1 MiB pieces by `read(at, n)` on the
/// blocking pool (a large file never sits in memory whole); `keep` is held until the stream ends
/// or the client goes (a temporary folder to remove then).
pub fn streamed_download<K: Send + 'static>(
    content_type: &str,
    filename: &str,
    len: u64,
    read: impl Fn(u64, u64) -> std::io::Result<Vec<u8>> + Clone + Send + 'static,
    keep: K,
) -> HttpResponse {
    const PIECE: u64 = 1024 * 1024;
    let chunks = futures_util::stream::unfold(Some((0u64, keep)), move |state| {
        let read = read.clone();
        async move {
            let (at, keep) = state.filter(|(a, _)| *a < len)?;
            let n = PIECE.min(len - at);
            match web::block(move || read(at, n)).await {
                Ok(Ok(buf)) => Some((Ok::<_, actix_web::Error>(web::Bytes::from(buf)), Some((at + n, keep)))),
                Ok(Err(e)) => Some((Err(e.into()), None)),
                Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            }
        }
    });
    HttpResponse::Ok()
        .content_type(content_type.to_string())
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .no_chunking(len)
        .streaming(chunks)
}

/// Bytes of a CSV file as a download named `filename`.
pub fn csv_response(filename: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .body(bytes)
}

/// Links for a pager, keeping the page's other query parameters.
#[derive(Debug, Clone)]
pub struct Pager {
    pub label: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// The pager of a filtered list and the query string that exports the same rows as CSV.
    pub fn with_csv_query<T>(page: &Page<T>, base_path: &str, params: &[(&'static str, String)]) -> (Self, String) {
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let csv = serde_urlencoded::to_string(borrowed.iter().filter(|(_, v)| !v.is_empty()).collect::<Vec<_>>())
            .unwrap_or_default();
        (Pager::new(page, base_path, &borrowed), csv)
    }

    pub fn new<T>(page: &Page<T>, base_path: &str, params: &[(&str, &str)]) -> Self {
        let link = |p: i64| {
            let mut q: Vec<(&str, String)> =
                params.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.to_string())).collect();
            q.push(("page", p.to_string()));
            format!("{base_path}?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
        };
        Pager {
            label: page.range_label(),
            prev: page.has_prev().then(|| link(page.page - 1)),
            next: page.has_next().then(|| link(page.page + 1)),
        }
    }
}

/// Times as shown in tables: minutes are enough, and they are UTC.
/// A measurement to three decimals, "–" when there is none.
pub fn fmt_num(v: &Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

/// A share as a percentage to one decimal, "–" when there is none.
pub fn fmt_pct(v: &Option<f64>) -> String {
    v.map(|x| format!("{:.1} %", x * 100.0)).unwrap_or_else(|| "–".into())
}

pub fn fmt_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

pub fn fmt_opt_time(t: &Option<chrono::NaiveDateTime>) -> String {
    t.as_ref().map(fmt_time).unwrap_or_default()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    handlers::configure(cfg);
}

/// The address of the client: the TCP peer, or behind a trusted reverse proxy
/// (`EVIDENTIA_TRUST_FORWARDED_FOR`) the address it forwards. Used to throttle sign-ins and to
/// scope lockouts.
pub fn client_ip(req: &actix_web::HttpRequest, config: &crate::config::Config) -> Option<std::net::IpAddr> {
    if config.trust_forwarded_for {
        let info = req.connection_info();
        if let Some(addr) = info.realip_remote_addr() {
            // "203.0.113.7", "203.0.113.7:4711", "[2001:db8::1]:4711" or "[2001:db8::1]".
            let addr = addr.trim();
            let ip = addr
                .parse::<std::net::IpAddr>()
                .ok()
                .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
                .or_else(|| addr.trim_start_matches('[').trim_end_matches(']').parse().ok());
            if ip.is_some() {
                return ip;
            }
        }
    }
    req.peer_addr().map(|a| a.ip())
}
