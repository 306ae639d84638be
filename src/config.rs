//! Run-time settings: command-line flags over environment variables over defaults.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The clock session time-outs are measured on: the system's UTC time plus an offset that only
/// tests move (`advance`), so that expiry is tested without sleeping. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> chrono::NaiveDateTime {
        crate::db::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    /// `EVIDENTIA_DATABASE_URL` / `--database-url` as given (`None`: SQLite in the data dir);
    /// see [`Config::database`].
    pub database_url: Option<String>,
    /// Where slides, models and dossiers are stored (`--storage` / `EVIDENTIA_STORAGE`): the data
    /// dir by default, or an S3-compatible object store.
    pub storage: crate::storage::Storage,
    /// The address users open (`EVIDENTIA_PUBLIC_URL`, e.g. `https://evidentia.hospital.org`).
    /// When it is `https://`, cookies are `Secure` and every answer carries HSTS.
    pub public_url: Option<String>,
    /// Take the client's address from `X-Forwarded-For` / `Forwarded` (the reverse proxy's), for
    /// sign-in throttling and lockout (`EVIDENTIA_TRUST_FORWARDED_FOR=1`). Only behind a proxy
    /// that sets it: otherwise any client could claim any address.
    pub trust_forwarded_for: bool,
    /// Adds `Secure` to cookies: on behind an `https://` public URL, else off;
    /// `EVIDENTIA_SECURE_COOKIES` (`1`/`0`) overrides.
    pub secure_cookies: bool,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// Job worker threads inside the server process (0: only `evidentia worker` runs jobs).
    pub job_workers: usize,
    /// A running job whose heartbeat is older than this is taken to have lost its worker.
    pub job_stale_after: Duration,
    pub db_pool_size: u32,
    /// Largest accepted upload (`EVIDENTIA_MAX_UPLOAD_MB`, default 200).
    pub max_upload_bytes: usize,
    /// Largest accepted slide upload, all files of one form together
    /// (`EVIDENTIA_MAX_SLIDE_UPLOAD_MB`, default 20480 = 20 GB).
    pub max_slide_upload_bytes: u64,
    /// Encoded Deep Zoom tiles kept in memory (`EVIDENTIA_TILE_CACHE_MB`, default 256).
    pub tile_cache_bytes: usize,
    /// Medical-record / accession number patterns (regexes) scrubbed from free text
    /// (`EVIDENTIA_MRN_PATTERNS`, one per line); the built-in ones when empty.
    pub mrn_patterns: Vec<String>,
    /// Sign-in attempts a client address may make, as a burst and then per minute
    /// (`EVIDENTIA_LOGIN_PER_CLIENT_PER_MIN`, default 30).
    pub login_per_client_per_minute: u32,
    /// Sign-in attempts for one username from anywhere (`EVIDENTIA_LOGIN_PER_USER_PER_MIN`,
    /// default 10).
    pub login_per_username_per_minute: u32,
    /// The bearer token `/metrics` asks for (`EVIDENTIA_METRICS_TOKEN`); without one, `/metrics`
    /// is off (404).
    pub metrics_token: Option<String>,
    /// Administrators must sign in with two factors (`EVIDENTIA_ADMIN_MFA`, default on; `0`
    /// turns it off, e.g. for a laptop demo): one without it set up is sent to set it up before
    /// any other page.
    pub admin_mfa: bool,
    /// Single sign-on with OpenID Connect (`EVIDENTIA_OIDC_*`); `None`: passwords only.
    pub sso: Option<crate::auth::sso::SsoSettings>,
    /// What session time-outs are measured on (the system clock; tests move it forward).
    pub clock: Clock,
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(default)
}

fn env_secs(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default);
    Duration::from_secs(secs)
}

fn is_https(url: Option<&str>) -> bool {
    url.is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
}

/// `Secure` cookies: what `EVIDENTIA_SECURE_COOKIES` says (`1`/`true`/`yes`, `0`/`false`/`no`),
/// else on exactly when the public URL is `https://`.
fn secure_cookies(public_url: Option<&str>, setting: Option<&str>) -> bool {
    match setting.map(str::trim) {
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        _ => is_https(public_url),
    }
}

impl Config {
    /// The database this installation uses.
    pub fn database(&self) -> anyhow::Result<crate::db::DatabaseUrl> {
        crate::db::DatabaseUrl::parse(self.database_url.as_deref(), &self.data_dir)
    }

    /// Defaults and environment; `bind` and `data_dir` come from the CLI (which reads
    /// `EVIDENTIA_BIND` / `EVIDENTIA_DATA_DIR` itself).
    pub fn from_env(bind: String, data_dir: PathBuf) -> Self {
        let public_url =
            std::env::var("EVIDENTIA_PUBLIC_URL").ok().map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        let secure_cookies =
            secure_cookies(public_url.as_deref(), std::env::var("EVIDENTIA_SECURE_COOKIES").ok().as_deref());
        let sso = crate::auth::sso::SsoSettings::from_env(public_url.as_deref(), &bind);
        Config {
            bind,
            storage: crate::storage::Storage::local(&data_dir),
            data_dir,
            database_url: std::env::var("EVIDENTIA_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()),
            public_url,
            trust_forwarded_for: matches!(
                std::env::var("EVIDENTIA_TRUST_FORWARDED_FOR").as_deref().map(str::trim),
                Ok("1" | "true" | "yes")
            ),
            secure_cookies,
            admin_mfa: !matches!(
                std::env::var("EVIDENTIA_ADMIN_MFA").as_deref().map(str::trim),
                Ok("0" | "false" | "no")
            ),
            sso,
            session_idle: env_secs("EVIDENTIA_SESSION_IDLE_SECS", 30 * 60),
            session_absolute: env_secs("EVIDENTIA_SESSION_ABSOLUTE_SECS", 12 * 3600),
            job_workers: std::env::var("EVIDENTIA_JOB_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2),
            job_stale_after: env_secs("EVIDENTIA_JOB_STALE_SECS", 60),
            db_pool_size: 8,
            max_upload_bytes: std::env::var("EVIDENTIA_MAX_UPLOAD_MB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(200)
                * 1024
                * 1024,
            max_slide_upload_bytes: std::env::var("EVIDENTIA_MAX_SLIDE_UPLOAD_MB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(20 * 1024)
                * 1024
                * 1024,
            tile_cache_bytes: std::env::var("EVIDENTIA_TILE_CACHE_MB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(256)
                * 1024
                * 1024,
            mrn_patterns: std::env::var("EVIDENTIA_MRN_PATTERNS")
                .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
            login_per_client_per_minute: env_u32("EVIDENTIA_LOGIN_PER_CLIENT_PER_MIN", 30),
            login_per_username_per_minute: env_u32("EVIDENTIA_LOGIN_PER_USER_PER_MIN", 10),
            metrics_token: std::env::var("EVIDENTIA_METRICS_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            clock: Clock::default(),
        }
    }

    /// Whether users reach the server over HTTPS (an `https://` public URL): then browsers are
    /// told to use nothing else (HSTS).
    pub fn https(&self) -> bool {
        is_https(self.public_url.as_deref())
    }

    pub fn exports_dir(&self) -> PathBuf {
        self.data_dir.join("exports")
    }

    /// Work in progress: de-identified import previews waiting for confirmation, uploads being
    /// received (owner-only, swept at start and hourly, never backed up: `crate::tmp`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_behind_an_https_public_url_unless_set_otherwise() {
        assert!(secure_cookies(Some("https://evidentia.hospital.org"), None));
        assert!(secure_cookies(Some(" HTTPS://x "), None));
        assert!(!secure_cookies(Some("http://localhost:8080"), None));
        assert!(!secure_cookies(None, None));
        assert!(secure_cookies(None, Some("1")));
        assert!(!secure_cookies(Some("https://x"), Some("0")));
    }
}
