//! The real binary: first start creates `admin` with a password printed once; secrets never
//! reach the log; SIGTERM shuts it down cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{csrf_from, location};

#[tokio::test]
async fn first_start_prints_the_admin_password_once_logs_no_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // On PostgreSQL, an empty database of its own (a password in its URL is never logged).
    let database = crate::helpers::postgres::fresh()
        .map(|url| url.replacen("postgres://postgres@", "postgres://postgres:db-secret-Zq9@", 1));
    let database_env = || database.clone().map(|u| ("EVIDENTIA_DATABASE_URL", u));
    let mut child = Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .envs(database_env())
        .env("RUST_LOG", "debug")
        .env_remove("EVIDENTIA_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let (mut port, mut password) = (String::new(), String::new());
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = output.lock().unwrap().clone();
        if let (Some(p), Some(w)) = (text.find("at http://127.0.0.1:"), text.find("with password  ")) {
            port = text[p + 20..].chars().take_while(|c| c.is_ascii_digit()).collect();
            password = text[w + 15..].chars().take_while(|c| !c.is_whitespace()).collect();
            break;
        }
    }
    assert!(!port.is_empty() && password.len() == 20, "server did not start:\n{}", output.lock().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let http =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&page).unwrap();
    let r = http
        .post(format!("{base}/login"))
        .form(&[("username", "admin"), ("password", password.as_str()), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the printed password works");
    assert_eq!(location(&r), "/studies");
    // An administrator sets up two-factor sign-in before anything else (on by default).
    let first_page = http.get(format!("{base}/studies")).send().await.unwrap();
    assert_eq!(location(&first_page), "/account");
    let page = http.get(format!("{base}/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&page).unwrap();
    let page = http
        .post(format!("{base}/account/mfa/start"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret: String = page
        .split(r#"id="totp-secret">"#)
        .nth(1)
        .unwrap_or_else(|| panic!("{page}"))
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    let code = crate::mfa::code_at(&secret, crate::mfa::step_now());
    let confirmed = http
        .post(format!("{base}/account/mfa/confirm"))
        .form(&[("code", code.as_str()), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    assert_eq!(http.get(format!("{base}/studies")).send().await.unwrap().status(), 200);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ev_session="))
        .unwrap();
    let session_token: String = session["ev_session=".len()..].chars().take_while(|c| *c != ';').collect();
    let page = http.get(format!("{base}/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&page).unwrap();
    let page = http
        .post(format!("{base}/account/tokens"))
        .form(&[("name", "t"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let t = page.find("evt_").unwrap();
    let api_token = &page[t..t + 68];
    let r = reqwest::Client::new().get(format!("{base}/api/v1/me")).bearer_auth(api_token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Graceful stop on SIGTERM.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.expect("the server stops on SIGTERM");
    assert!(exited.success(), "clean exit, got {exited:?}");

    let log = output.lock().unwrap().clone();
    // The password appears exactly once: the line that hands it to the operator.
    assert_eq!(log.matches(&password).count(), 1, "{log}");
    for secret in [session_token.as_str(), api_token, csrf.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    assert!(log.contains("route=\"/login\"") || log.contains("route=/login"), "requests are logged:\n{log}");

    // A second start does not create another admin or print a password.
    let out = Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["user", "list", "--data-dir"])
        .arg(dir.path())
        .envs(database_env())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    if let Some(url) = &database {
        assert!(
            !log.contains("db-secret-Zq9"),
            "the database password is never logged:
{log}"
        );
        crate::helpers::postgres::drop_database(url);
    }
}

/// Front-end files are served under content-hashed URLs with a long, immutable cache; old or
/// unversioned URLs still work but are not cached.
#[tokio::test]
async fn static_files_have_content_hashed_urls_cached_for_good() {
    let app = crate::helpers::spawn_app();
    let c = app.client();
    let (status, page) = c.get_text("/login").await;
    assert_eq!(status, 200);
    let start = page.find("href=\"/static/").expect("the stylesheet link") + "href=\"".len();
    let css_url = &page[start..start + page[start..].find('"').unwrap()];
    assert!(css_url.ends_with("/css/app.css"), "{css_url}");
    let hash = css_url.trim_start_matches("/static/").split('/').next().unwrap();
    assert_eq!(hash.len(), 12, "{css_url}");

    let res = c.get(css_url).await;
    assert_eq!(res.status(), 200);
    let cache = res.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{cache}");
    let body = res.bytes().await.unwrap();
    assert_eq!(&body[..], &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/css/app.css")).unwrap()[..]);

    for old in ["/static/000000000000/css/app.css", "/static/css/app.css"] {
        let res = c.get(old).await;
        assert_eq!(res.status(), 200, "{old}");
        assert_eq!(res.headers()["cache-control"], "no-cache", "{old}");
    }
    assert_eq!(c.get("/static/000000000000/css/nope.css").await.status(), 404);
    assert_eq!(c.get("/static/../Cargo.toml").await.status(), 404);
}

/// Runs `evidentia serve` on `dir` and returns its exit code, stderr and how long it took to
/// give up (it must not start).
fn serve_refuses(dir: &std::path::Path) -> (Option<i32>, String, Duration) {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("EVIDENTIA_ADMIN_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string(), started.elapsed())
}

#[tokio::test]
async fn a_damaged_database_is_named_at_start_and_the_server_does_not_start() {
    if crate::helpers::postgres::skip_sqlite_only("damaged database file") {
        return;
    }
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    // Not a database at all: named at once, not after the pool's 15 s timeout.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(evidentia::db::DB_FILE), vec![b'x'; 64 * 1024]).unwrap();
    let (code, err, took) = serve_refuses(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("evidentia.db: not a readable database") && err.contains("evidentia restore"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Damage inside one table (its root page overwritten): the file opens, but the server
    // refuses to start instead of reporting healthy.
    let app = crate::helpers::spawn_app();
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().to_path_buf();
    let db = dir.join(evidentia::db::DB_FILE);
    evidentia::db::online_backup(&mut app.conn(), &db).unwrap();
    drop(app);
    #[derive(diesel::QueryableByName)]
    struct Root {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        rootpage: i32,
    }
    #[derive(diesel::QueryableByName)]
    struct PageSize {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        page_size: i32,
    }
    let (root, page_size) = {
        let mut c = diesel::SqliteConnection::establish(&db.to_string_lossy()).unwrap();
        c.batch_execute("PRAGMA journal_mode = DELETE;").unwrap();
        let root = diesel::sql_query("SELECT rootpage FROM sqlite_master WHERE name = 'cases'")
            .get_result::<Root>(&mut c)
            .unwrap()
            .rootpage;
        let size = diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(&mut c).unwrap().page_size;
        (root as u64, size as u64)
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let at = ((root - 1) * page_size) as usize;
    bytes[at..at + page_size as usize].fill(0xA5);
    std::fs::write(&db, bytes).unwrap();
    let (code, err, _) = serve_refuses(&dir);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is damaged") && err.contains("the server did not start"), "{err}");
}

/// A tmpfs of `mb` MB mounted on a new folder for one test, unmounted when dropped. Mounting
/// needs root, as the README's test command runs.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "this test mounts a {mb} MB tmpfs for its data dir: run the tests as root");
        Tmpfs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the file system has no byte left.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // What is left is less than one write: the rest a byte block at a time.
    let small = vec![0u8; 512];
    while f.write_all(&small).is_ok() {}
}

/// A full disk, for real (the data dir on a 16 MB tmpfs filled to the last byte): a change is
/// refused with 507 and a message that says what to do, nothing of it is stored, every audit
/// chain still verifies, and once there is space again the same change goes through without a
/// restart.
#[tokio::test]
async fn a_full_disk_refuses_a_change_with_a_clear_message_and_nothing_is_half_written() {
    if crate::helpers::postgres::skip_sqlite_only(
        "the database file on a full disk (PostgreSQL's disk is its server's)",
    ) {
        return;
    }
    let disk = Tmpfs::mount(16);
    let app = crate::helpers::spawn_app_in(&disk.path().join("data"));
    let admin = app.login("admin").await;
    let form = [("code", "FULL-01"), ("title", "Written on a full disk"), ("study_type", "reader_study")];
    let filler = disk.path().join("filler");
    fill(&filler);

    let r = admin.post("/studies", &form).await;
    assert_eq!(r.status(), 507);
    let body = r.text().await.unwrap();
    assert!(body.contains("disk is full, so nothing was saved"), "{body}");
    assert!(evidentia::studies::get_by_code(&mut app.conn(), "FULL-01").is_err(), "nothing was stored");
    let chains = evidentia::audit::verify::verify_all(&mut app.conn()).unwrap();
    assert!(!chains.is_empty() && chains.iter().all(|c| c.broken.is_none()), "{chains:?}");

    std::fs::remove_file(&filler).unwrap();
    let r = admin.post("/studies", &form).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    assert!(evidentia::studies::get_by_code(&mut app.conn(), "FULL-01").is_ok());
    assert!(evidentia::audit::verify::verify_all(&mut app.conn()).unwrap().iter().all(|c| c.broken.is_none()));
    drop(admin);
    drop(app);
}

/// A `serve` process on `data_dir` (port chosen by the system), its stdout read for the address;
/// killed when dropped.
pub(crate) struct ServeProcess {
    child: std::process::Child,
    pub(crate) base: String,
}

impl ServeProcess {
    pub(crate) fn start(app: &crate::helpers::TestApp) -> ServeProcess {
        ServeProcess::spawn(app.command())
    }

    /// `serve` on a free port, with the data dir, database and storage `cmd` was given.
    fn spawn(mut cmd: Command) -> ServeProcess {
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0", "--job-workers", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.by_ref().map_while(Result::ok).find(|l| l.contains(" at http://")).expect("an address");
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let base = line[line.find("http://").unwrap()..].trim_end_matches('/').to_string();
        ServeProcess { child, base }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Concurrent writers on one audit chain from two server processes: 8 writers (4 per process)
/// make 10,000 audited changes to one study's cases; every change is recorded exactly once and
/// the chain verifies with no gap or fork (each append reads the head and writes in one write
/// transaction).
#[tokio::test]
async fn eight_writers_on_two_server_processes_leave_one_unbroken_chain() {
    const CHANGES: usize = 10_000;
    const WRITERS: usize = 8;
    let app = crate::helpers::spawn_app_with(|c| c.job_workers = 0);
    let nodes = [ServeProcess::start(&app), ServeProcess::start(&app)];
    let before = crate::helpers::audit_events(&app, "update").len();
    let mut sessions = Vec::new();
    for node in &nodes {
        let mut c = app.client();
        c.base = node.base.clone();
        let r = c.try_login("manager", crate::helpers::PASSWORD).await;
        assert_eq!(r.status(), 303, "sign-in on {}", node.base);
        c.refresh_csrf().await;
        sessions.push(c);
    }
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let c = sessions[w % 2].clone();
            let case = format!("/studies/LUNG-IO-01/cases/SNUBH-{:04}/edit", w + 1);
            tokio::spawn(async move {
                for i in 0..CHANGES / WRITERS {
                    // A new value each time (an unchanged save records nothing).
                    let tps = format!("{}.5", i % 100);
                    let r = c.post(&case, &[("pdl1_tps", tps.as_str()), ("_reason", "Data entry error")]).await;
                    if r.status() != 303 {
                        let page = r.text().await.unwrap_or_default();
                        let errors: Vec<&str> = page
                            .match_indices("form-error")
                            .map(|(at, _)| &page[at..(at + 200).min(page.len())])
                            .collect();
                        panic!("{case} change {i}: {errors:?}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let updates = crate::helpers::audit_events(&app, "update");
    assert_eq!(updates.len() - before, CHANGES, "every change recorded once");
    let chains = evidentia::audit::verify::verify_all(&mut app.conn()).unwrap();
    let study = chains.iter().find(|c| c.chain == "study:LUNG-IO-01").expect("the study's chain");
    assert!(study.events as usize >= CHANGES, "{study:?}");
    assert!(chains.iter().all(|c| c.broken.is_none()), "{chains:?}");
    let out = app.cli(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The two engines' migrations end at the same schema: the same tables, each with the same
/// columns in the same order, of corresponding types and nullability; and `migrate-data` copies
/// every one of those tables. On PostgreSQL runs of the suite.
#[test]
fn both_engines_migrate_to_the_same_tables_and_columns() {
    use diesel::RunQueryDsl;
    let Some(url) = crate::helpers::postgres::fresh() else {
        eprintln!("schema comparison: needs EVIDENTIA_TEST_POSTGRES_URL (the suite's PostgreSQL run)");
        return;
    };
    #[derive(diesel::QueryableByName, Debug)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        decl: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        nullable: bool,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = evidentia::db::DatabaseUrl::Sqlite(dir.path().join("s.db")).connect().unwrap();
    evidentia::db::run_migrations(&mut sqlite).unwrap();
    let mut pg = evidentia::db::DatabaseUrl::parse(Some(&url), dir.path()).unwrap().connect().unwrap();
    evidentia::db::run_migrations(&mut pg).unwrap();
    let on_sqlite: Vec<Column> = diesel::sql_query(
        "SELECT m.name AS table_name, p.name AS name, lower(p.type) AS decl, (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name != '__diesel_schema_migrations' \
         ORDER BY m.name, p.cid",
    )
    .load(&mut sqlite)
    .unwrap();
    let on_pg: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS name, data_type::text AS decl, \
         (is_nullable = 'YES') AS nullable FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name != '__diesel_schema_migrations' \
         ORDER BY table_name::text COLLATE \"C\", ordinal_position",
    )
    .load(&mut pg)
    .unwrap();
    let same_type = |s: &str, p: &str| {
        matches!(
            (s, p),
            ("integer", "integer")
                | ("bigint", "bigint")
                | ("text", "text")
                | ("boolean", "boolean")
                | ("double", "double precision")
                | ("date", "date")
                | ("timestamp", "timestamp without time zone")
        )
    };
    assert_eq!(on_sqlite.len(), on_pg.len(), "{on_sqlite:?}\n{on_pg:?}");
    for (s, p) in on_sqlite.iter().zip(&on_pg) {
        assert_eq!((&s.table_name, &s.name), (&p.table_name, &p.name), "column order");
        assert!(
            same_type(&s.decl, &p.decl),
            "{}.{}: {} on SQLite, {} on PostgreSQL",
            s.table_name,
            s.name,
            s.decl,
            p.decl
        );
        assert_eq!(s.nullable, p.nullable, "{}.{} nullability", s.table_name, s.name);
    }
    let mut tables: Vec<&str> = on_sqlite.iter().map(|c| c.table_name.as_str()).collect();
    tables.dedup();
    let mut copied: Vec<&str> = evidentia::db::copy::TABLES.to_vec();
    copied.sort();
    assert_eq!(tables, copied, "migrate-data copies every table");
    drop(pg);
    crate::helpers::postgres::drop_database(&url);
}

/// A write transaction inside another is refused on both engines (on PostgreSQL it would
/// otherwise become a savepoint of the outer one, holding the write lock meanwhile), and a read
/// transaction is read-only where the engine can say so.
#[test]
fn write_transactions_do_not_nest_on_either_engine() {
    use diesel::result::Error;
    let app = crate::helpers::spawn_app();
    let mut conn = app.conn();
    let nested = evidentia::db::write_tx(&mut conn, |c| evidentia::db::write_tx(c, |_| Ok::<_, Error>(())));
    assert!(matches!(nested, Err(Error::AlreadyInTransaction)), "{nested:?}");
    // The connection is usable afterwards: the outer transaction was rolled back.
    let n = evidentia::auth::users::count(&mut conn).unwrap();
    assert!(n > 0);
    if app.database_url.is_some() {
        let write_in_read = evidentia::db::read_tx(&mut conn, |c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE users SET failed_logins = failed_logins").execute(c)
        });
        assert!(write_in_read.unwrap_err().to_string().contains("read-only transaction"));
    }
}

/// Two server processes on one database: who signs in on one continues on the other — the
/// session is in the database and the CSRF check needs no per-process secret — and a change made
/// through the second is audited like any other (the multi-node shape of docs/operations.md, on
/// both engines).
#[tokio::test]
async fn a_user_signed_in_on_one_node_continues_on_the_other() {
    let app = crate::helpers::spawn_app_with(|c| c.job_workers = 0);
    let nodes = [ServeProcess::start(&app), ServeProcess::start(&app)];
    let mut c = app.client();
    c.base = nodes[0].base.clone();
    assert_eq!(c.try_login("manager", crate::helpers::PASSWORD).await.status(), 303);
    c.refresh_csrf().await;
    c.base = nodes[1].base.clone();
    let (status, page) = c.get_text("/studies/LUNG-IO-01").await;
    assert_eq!(status, 200, "signed in on node B too");
    assert!(page.contains("LUNG-IO-01"));
    let r = c
        .post("/studies/LUNG-IO-01/cases/SNUBH-0001/edit", &[("pdl1_tps", "42.5"), ("_reason", "Data entry error")])
        .await;
    assert_eq!(r.status(), 303, "a change through node B with the token node A handed out");
    let audited = crate::helpers::audit_events(&app, "update");
    assert!(
        audited
            .iter()
            .any(|e| e.entity_id.contains("SNUBH-0001") && e.new_value.as_deref().unwrap_or("").contains("42.5")),
        "audited"
    );
    // Signing out on B ends the session on A as well.
    c.post("/logout", &[]).await;
    c.base = nodes[0].base.clone();
    let r = c.get("/studies/LUNG-IO-01").await;
    assert_eq!(r.status(), 303, "signed out everywhere");
}

/// Keys come from a folder every host shares (`EVIDENTIA_SECRETS_DIR`), not from a node's data
/// dir: a second server process with a data dir of its own, on the same database and storage,
/// signs with the installation's key when it is pointed at the shared folder — and, the hazard
/// the setting exists for, would make a key of its own without it.
#[tokio::test]
async fn a_node_with_a_data_dir_of_its_own_uses_the_keys_of_the_shared_secrets_folder() {
    let app = crate::helpers::spawn_app_with(|c| c.job_workers = 0);
    let installation = evidentia::dossier::public_key_hex(&mut app.conn(), &app.data_dir).unwrap();
    let recorded = || -> Vec<(String, String)> {
        use diesel::prelude::*;
        use evidentia::db::schema::key_fingerprints as k;
        k::table.select((k::name, k::fingerprint)).order(k::name).load(&mut *app.conn()).unwrap()
    };
    let before = recorded();
    assert!(before.iter().any(|(n, _)| n == "dossier-signing"), "{before:?}");
    assert!(before.iter().any(|(n, _)| n == "study-LUNG-IO-01"), "the seeded study's key: {before:?}");
    let own = tempfile::tempdir().unwrap();
    let node = |secrets: Option<&std::path::Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evidentia"));
        cmd.arg("--data-dir").arg(own.path());
        cmd.env(
            "EVIDENTIA_DATABASE_URL",
            app.database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", app.data_dir.join("evidentia.db").display())),
        );
        cmd.env(
            "EVIDENTIA_STORAGE",
            match app.config.storage.local_root() {
                Some(root) => format!("file://{}", root.display()),
                None => app.config.storage.describe().to_string(),
            },
        );
        match secrets {
            Some(dir) => cmd.env("EVIDENTIA_SECRETS_DIR", dir),
            None => cmd.env_remove("EVIDENTIA_SECRETS_DIR"),
        };
        cmd
    };
    let shared = ServeProcess::spawn(node(Some(&app.data_dir.join("secrets"))));
    let r = reqwest::get(format!("{}/api/v1/signing-key", shared.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let served = r.json::<serde_json::Value>().await.unwrap()["public_key"].as_str().unwrap().to_string();
    assert_eq!(served, installation, "the installation's key, from the shared folder");

    // A node without the shared folder (its own data dir has no keys) neither starts nor makes
    // keys of its own; nor does a command there pseudonymise with a new key.
    let refused = |mut cmd: Command, args: &[&str], says: &str| {
        let out = cmd.args(args).env("RUST_LOG", "warn").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains(says) && err.contains("EVIDENTIA_SECRETS_DIR"), "{args:?}: {err}");
        assert!(!own.path().join("secrets").join("dossier-signing.key").exists(), "no key of its own");
        assert!(!own.path().join("secrets").join("study-LUNG-IO-01.key").exists(), "no key of its own");
    };
    let serve = ["serve", "--bind", "127.0.0.1:0", "--job-workers", "0"];
    refused(node(None), &serve, "missing on this host");
    refused(node(None), &["worker", "--threads", "1"], "missing on this host");
    let cases = app.scratch.join("one-case.csv");
    std::fs::write(&cases, "subject_id,site\nNEW-1,SNUBH\n").unwrap();
    let import = ["cases", "import", "--study", "LUNG-IO-01", cases.to_str().unwrap()];
    refused(node(None), &import, "missing on this host");
    // A folder that holds other keys (another installation's, or keys made by a lone node).
    let other = tempfile::tempdir().unwrap();
    for name in ["dossier-signing.key", "study-LUNG-IO-01.key"] {
        std::fs::write(other.path().join(name), "ab".repeat(32)).unwrap();
    }
    refused(node(Some(other.path())), &serve, "not the one the database was written with");
    refused(node(Some(other.path())), &import, "not the one the database was written with");
    assert_eq!(recorded(), before, "the recorded fingerprints are as they were");

    // The backup of a data dir without the keys is refused, naming the folder.
    let out = app
        .command()
        .env("EVIDENTIA_SECRETS_DIR", app.scratch.join("keys"))
        .args(["backup", "--out"])
        .arg(app.scratch.join("b.tar.gz"))
        .output()
        .unwrap();
    if app.database_url.is_none() && app.config.storage.local_root().is_some() {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("EVIDENTIA_SECRETS_DIR"));
    }
}
