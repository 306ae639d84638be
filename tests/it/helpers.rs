//! `spawn_app()`: a seeded data dir (the demo's users and study plus an unrelated study), the
//! real server on a free port, and an HTTP client that signs in and submits forms with the
//! CSRF token like a browser would.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use evidentia::auth::{passwords, users, Actor};
use evidentia::config::Config;
use evidentia::db::DbPool;
use evidentia::startup::{self, Application};
use evidentia::studies::{self, StudyInput};

pub const PASSWORD: &str = evidentia::demo::DEMO_PASSWORD;
/// A study in which none of the demo users (but admin) is a member.
pub const OTHER_STUDY: &str = "OTHER-01";

pub struct TestApp {
    pub base: String,
    pub data_dir: PathBuf,
    /// The app's PostgreSQL database when the suite runs on PostgreSQL (`None`: SQLite, the
    /// file in the data dir). Commands started for this app get it with [`TestApp::command`].
    pub database_url: Option<String>,
    pub pool: DbPool,
    pub config: Config,
    /// A folder outside the data dir for files a test hands to the app (uploads, CLI input).
    pub scratch: PathBuf,
    server: actix_web::dev::ServerHandle,
    stopped: mpsc::Receiver<()>,
    _dir: Option<tempfile::TempDir>,
    _scratch: tempfile::TempDir,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::from_env("127.0.0.1:0".into(), dir.to_path_buf());
    cfg.session_idle = Duration::from_secs(1800);
    cfg.session_absolute = Duration::from_secs(12 * 3600);
    cfg.job_workers = 1;
    cfg.job_stale_after = Duration::from_secs(60);
    // The seeded administrator signs in with a password alone, except where a test turns it on.
    cfg.admin_mfa = false;
    cfg
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// The seeded data dir every test starts from: the demo's users, study and cases, an unrelated
/// study and a user in no study. Seeded once per test run (under the target's tmp dir, named by
/// the process) and copied for each test, which is much faster than seeding each time.
fn seeded_template() -> &'static std::path::Path {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // Templates of earlier runs (a run leaves its own: statics are never dropped), but not
        // those of test processes still running beside this one (nextest runs one per test).
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("it-template-") {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("it-template-{}", std::process::id()));
        // A template an earlier process with the same (reused) pid left behind is stale.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("template dir");
        let mut cfg = test_config(&dir);
        cfg.database_url = postgres::template();
        if let Some(storage) = storage::template(&dir) {
            cfg.storage = storage;
        }
        let pool = startup::open_database(&cfg).expect("open db");
        let mut conn = pool.get().expect("conn");
        evidentia::demo::seed(&mut conn, &cfg.data_dir).expect("seed demo");
        let other = StudyInput { code: OTHER_STUDY.into(), title: "Another study".into(), ..Default::default() };
        studies::create(&mut conn, &Actor::cli_operator(), &other).expect("other study");
        let h = passwords::hash(PASSWORD).expect("hash");
        let outsider =
            users::NewUserInput { username: "outsider".into(), full_name: "Out Sider".into(), is_admin: false };
        users::create(&mut conn, &Actor::cli_operator(), &outsider, &h).expect("outsider");
        if cfg.database_url.is_none() {
            evidentia::db::checkpoint(&mut conn).expect("checkpoint the template");
        }
        // Every connection closed before the files are copied.
        drop(conn);
        drop(pool);
        dir
    })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read template").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy template file");
        }
    }
}

/// A copy of the seeded data dir, then the server in its own thread and actix system.
pub fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_path_buf();
    start_app(data_dir, Some(dir), adjust)
}

/// As [`spawn_app`], with the data dir at `data_dir` (a new folder the test owns and removes,
/// e.g. on a small file system of its own).
pub fn spawn_app_in(data_dir: &std::path::Path) -> TestApp {
    start_app(data_dir.to_path_buf(), None, |_| {})
}

fn start_app(data_dir: PathBuf, dir: Option<tempfile::TempDir>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    copy_dir(seeded_template(), &data_dir);
    let mut cfg = test_config(&data_dir);
    cfg.database_url = postgres::copy_of_template();
    if let Some(storage) = storage::copy_of_template(&data_dir) {
        cfg.storage = storage;
    }
    adjust(&mut cfg);
    let (tx, rx) = mpsc::channel();
    let (stopped_tx, stopped) = mpsc::channel();
    let cfg2 = cfg.clone();
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        sys.block_on(async move {
            let app = Application::build(cfg2).expect("build app");
            tx.send((app.port(), app.pool.clone(), app.handle())).expect("send port");
            let _ = app.run_until_stopped().await;
        });
        let _ = stopped_tx.send(());
    });
    let (port, pool, server) = rx.recv_timeout(Duration::from_secs(30)).expect("app started");
    let scratch = tempfile::tempdir().expect("scratch dir");
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        data_dir: cfg.data_dir.clone(),
        database_url: cfg.database_url.clone(),
        pool,
        config: cfg,
        scratch: scratch.path().canonicalize().expect("canonical scratch"),
        server,
        stopped,
        _dir: dir,
        _scratch: scratch,
    }
}

impl Drop for TestApp {
    /// Stops the server and its job workers when the test ends (before its data dir goes).
    fn drop(&mut self) {
        drop(self.server.stop(false));
        let _ = self.stopped.recv_timeout(Duration::from_secs(15));
        if let Some(url) = &self.database_url {
            postgres::drop_database(url);
        }
    }
}

/// The suite on object storage: with `EVIDENTIA_TEST_STORAGE` (an `s3://BUCKET` URL; the
/// endpoint and keys in the usual `AWS_*` variables: `tools/test` starts Garage and sets them for
/// its PostgreSQL pass), every app keeps its files under a prefix of its own in that bucket,
/// starting with a copy of the seeded template's (the demonstration model). Without it, in the
/// data dir.
pub mod storage {
    use evidentia::storage::Storage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn bucket() -> Option<String> {
        std::env::var("EVIDENTIA_TEST_STORAGE")
            .ok()
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
    }

    fn at(prefix: &str, data_dir: &std::path::Path) -> Storage {
        let bucket = bucket().expect("EVIDENTIA_TEST_STORAGE");
        Storage::parse(Some(&format!("{bucket}/{prefix}")), data_dir).expect("the test object store")
    }

    /// The seeded template's storage (a prefix named by the process).
    pub fn template(data_dir: &std::path::Path) -> Option<Storage> {
        bucket()?;
        Some(at(&format!("it-{}-template", std::process::id()), data_dir))
    }

    /// A new prefix for one app, holding a copy of the template's files.
    pub fn copy_of_template(data_dir: &std::path::Path) -> Option<Storage> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let template = template(data_dir)?;
        let n = N.fetch_add(1, Ordering::Relaxed);
        let storage = at(&format!("it-{}-{n}", std::process::id()), data_dir);
        for (key, _) in template.list("models").expect("list the template's models") {
            storage.put_bytes(&key, template.read(&key).expect("read a template file")).expect("copy a template file");
        }
        Some(storage)
    }
}

/// The suite on PostgreSQL: with `EVIDENTIA_TEST_POSTGRES_URL` (a server's URL with a user that
/// may create databases, e.g. `postgres://postgres@127.0.0.1:54329`; `tools/test` starts a
/// throw-away cluster and runs the suite a second time with it), the seeded template is a
/// database of its own and every app gets a copy of it (`CREATE DATABASE … TEMPLATE`), dropped
/// when the app is. Without it, every app uses SQLite in its data dir.
pub mod postgres {
    use diesel::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn server() -> Option<String> {
        std::env::var("EVIDENTIA_TEST_POSTGRES_URL")
            .ok()
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
    }

    /// Whether the suite runs on PostgreSQL.
    pub fn enabled() -> bool {
        server().is_some()
    }

    /// For a test of SQLite's own machinery (its file, WAL, `VACUUM INTO` backups): whether to
    /// skip it, because the suite runs on PostgreSQL (said on stderr).
    pub fn skip_sqlite_only(test: &str) -> bool {
        let skip = enabled();
        if skip {
            eprintln!("{test}: tests SQLite's own file handling; skipped on PostgreSQL");
        }
        skip
    }

    fn admin(server: &str) -> PgConnection {
        PgConnection::establish(&format!("{server}/postgres")).expect("connect to the test PostgreSQL server")
    }

    fn template_name() -> String {
        format!("it_{}_template", std::process::id())
    }

    /// A new, empty template database (and those of earlier test processes gone), or `None` on SQLite.
    pub fn template() -> Option<String> {
        let server = server()?;
        let mut conn = admin(&server);
        #[derive(QueryableByName)]
        struct Db {
            #[diesel(sql_type = diesel::sql_types::Text)]
            datname: String,
        }
        let stale: Vec<Db> =
            diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE 'it\\_%'")
                .load(&mut conn)
                .expect("list databases");
        for db in stale {
            let pid = db.datname.split('_').nth(1).unwrap_or("");
            if pid == std::process::id().to_string() || !std::path::Path::new("/proc").join(pid).exists() {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", db.datname))
                    .execute(&mut conn);
            }
        }
        let name = template_name();
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .expect("create the template database");
        Some(format!("{server}/{name}"))
    }

    /// A database of its own for one app (with the seeded template's data), or `None` on SQLite.
    pub fn copy_of_template() -> Option<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let server = server()?;
        let name = format!("it_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", template_name());
        let mut conn = admin(&server);
        // Two copies made at the same moment: PostgreSQL lets one use the template at a time.
        for attempt in 0.. {
            match diesel::sql_query(&sql).execute(&mut conn) {
                Ok(_) => break,
                Err(e) if attempt < 100 && e.to_string().contains("is being accessed by other users") => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("copy the template database: {e}"),
            }
        }
        Some(format!("{server}/{name}"))
    }

    /// An empty database, for a test that starts an installation from nothing, or `None` on SQLite.
    pub fn fresh() -> Option<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let server = server()?;
        let name = format!("it_{}_fresh_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin(&server))
            .expect("create a database");
        Some(format!("{server}/{name}"))
    }

    /// The whole database as `pg_dump` writes it (schema and every row, as SQL text).
    pub fn dump(url: &str) -> Vec<u8> {
        let out = std::process::Command::new("pg_dump").arg(url).output().expect("pg_dump (postgresql-client)");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    pub fn drop_database(url: &str) {
        let (Some(server), Some((_, name))) = (server(), url.rsplit_once('/')) else { return };
        let _ =
            diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin(&server));
    }
}

/// Pulls the CSRF token out of a page's hidden form field.
pub fn csrf_from(html: &str) -> Option<String> {
    let key = "name=\"csrf_token\" value=\"";
    let start = html.find(key)? + key.len();
    Some(html[start..start + 64].to_string())
}

/// A browser-like client: cookie jar, no automatic redirects, the current CSRF token.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

impl TestApp {
    pub fn client(&self) -> Client {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            // The server closes idle connections after its keep-alive (5 s); a pooled one reused
            // after a long CLI step would fail with IncompleteMessage.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .expect("client");
        Client { http, base: self.base.clone(), csrf: String::new() }
    }

    /// A client signed in as `username` (demo password).
    pub async fn login(&self, username: &str) -> Client {
        let mut c = self.client();
        let resp = c.try_login(username, PASSWORD).await;
        assert_eq!(resp.status(), 303, "login of {username} should succeed");
        c.refresh_csrf().await;
        c
    }

    pub fn conn(&self) -> evidentia::db::PooledConn {
        self.pool.get().expect("conn")
    }

    /// The CLI binary with this app's data dir (`--data-dir`) and database.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"));
        cmd.arg("--data-dir").arg(&self.data_dir);
        match &self.database_url {
            Some(url) => cmd.env("EVIDENTIA_DATABASE_URL", url),
            None => cmd.env_remove("EVIDENTIA_DATABASE_URL"),
        };
        match self.config.storage.local_root() {
            Some(_) => cmd.env_remove("EVIDENTIA_STORAGE"),
            None => cmd.env("EVIDENTIA_STORAGE", self.config.storage.describe()),
        };
        cmd
    }

    /// The keys of the files stored under `folder` (`slides/`, `models/`), wherever the app
    /// stores them (its data dir, or its prefix in the object store).
    pub fn stored(&self, folder: &str) -> Vec<String> {
        self.config.storage.list(folder).expect("list the storage").into_iter().map(|(k, _)| k).collect()
    }

    /// Every byte the app keeps: the files of its data dir and, on object storage, every stored
    /// file, staged uploads included (for scans that nothing identifying was kept anywhere).
    pub fn every_file(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = files_under(&self.data_dir)
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read a data dir file")))
            .collect();
        if self.config.storage.local_root().is_none() {
            for folder in evidentia::storage::FOLDERS.into_iter().chain(["uploads"]) {
                for key in self.stored(folder) {
                    let bytes = self.config.storage.read(&key).expect("read a stored file");
                    out.push((format!("{}/{key}", self.config.storage.describe()), bytes));
                }
            }
        }
        out
    }

    /// Runs the CLI binary against this app's data dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut cmd = self.command();
        cmd.args(args);
        cmd.env("RUST_LOG", "warn");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cli");
        if let Some(input) = stdin {
            child.stdin.as_mut().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("cli output")
    }
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        let s = r.status().as_u16();
        (s, r.text().await.expect("body"))
    }

    /// Submits a form with the client's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.http.post(self.url(path)).form(&form).send().await.expect("POST")
    }

    /// Submits a form without any CSRF token.
    pub async fn post_without_csrf(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url(path)).form(&fields).send().await.expect("POST")
    }

    pub async fn try_login(&mut self, username: &str, password: &str) -> reqwest::Response {
        let (_, page) = self.get_text("/login").await;
        self.csrf = csrf_from(&page).expect("csrf on login page");
        self.post("/login", &[("username", username), ("password", password), ("next", "")]).await
    }

    /// Reads the current token from a page (it changes at sign-in).
    pub async fn refresh_csrf(&mut self) {
        let (_, page) = self.get_text("/account").await;
        if let Some(t) = csrf_from(&page) {
            self.csrf = t;
        }
    }
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Audit events of a chain with a given action, newest first.
pub fn audit_events(app: &TestApp, action: &str) -> Vec<evidentia::audit::AuditEvent> {
    let filter = evidentia::audit::query::AuditFilter { action: action.into(), ..Default::default() };
    evidentia::audit::query::list(&mut app.conn(), None, &filter, evidentia::db::paging::PageRequest::all())
        .expect("audit")
        .items
}

/// Every file below `dir` (recursively); none when it does not exist.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Waits (up to a minute) for a job to finish; returns it.
pub async fn wait_finished(app: &TestApp, id: i32) -> evidentia::jobs::Job {
    for _ in 0..600 {
        let j = evidentia::jobs::get(&mut app.conn(), id).unwrap();
        if j.is_finished() {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

/// An administrator locks `study` whatever its checklist says (with a reason), then its
/// statistician and manager sign through the CLI.
pub async fn lock_and_sign(app: &TestApp, study: &str) {
    let admin = app.login("admin").await;
    admin.post(&format!("/studies/{study}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    for (who, meaning) in [("statistician", "approval"), ("manager", "responsibility")] {
        let r = app.cli(
            &["study", "sign", "--study", study, "--username", who, "--meaning", meaning, "--password-stdin"],
            Some(PASSWORD),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
}

/// The scrubber of an installation with the built-in identifier patterns only.
pub fn no_patterns() -> evidentia::cases::scrub::Scrubber {
    evidentia::cases::scrub::Scrubber::new(&[], &[]).unwrap()
}

/// Sends a POST as `username` that declares a body of `declared` bytes but sends only `sent`,
/// and returns the status line of the answer, or `None` if none comes within 10 s: the answer to
/// a refused request must not wait for a body the server should never read.
pub async fn post_with_unfinished_body(
    app: &TestApp,
    username: &str,
    path: &str,
    declared: usize,
    sent: &[u8],
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uid = evidentia::auth::users::find_by_username(&mut app.conn(), username).unwrap().unwrap().id;
    let session = evidentia::auth::sessions::create(&mut app.conn(), uid).unwrap();
    let csrf = "c".repeat(64);
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\
         Cookie: {}={session}; {}={csrf}\r\nX-CSRF-Token: {csrf}\r\n\r\n",
        evidentia::auth::sessions::COOKIE,
        evidentia::auth::csrf::COOKIE,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.ok()?.ok()?;
    String::from_utf8_lossy(&buf[..n]).lines().next().map(str::to_string)
}

/// The status a request is answered with.
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}
