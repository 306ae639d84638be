//! The command line: same domain functions, exit 0 / 2, `--as` checked against roles.

use crate::helpers::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test]
async fn cli_manages_users_studies_sites_and_members() {
    let app = spawn_app();
    let out = app.cli(
        &["user", "add", "--username", "kim", "--full-name", "Kim Minji", "--password-stdin"],
        Some("lung-reader-2026\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = app.client();
    assert_eq!(c.try_login("kim", "lung-reader-2026").await.status(), 303);

    let out = app.cli(&["study", "create", "--code", "LUNG-IO-02", "--title", "Second lung study"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app.cli(&["study", "add-site", "--study", "LUNG-IO-02", "--code", "SNUBH", "--name", "Bundang"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out =
        app.cli(&["study", "add-member", "--study", "LUNG-IO-02", "--username", "kim", "--role", "annotator"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app.cli(&["study", "list"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("LUNG-IO-02"));
    // The local operator is audited as cli:<OS user>.
    let created = audit_events(&app, "create");
    assert!(created.iter().any(|e| e.entity_id == "LUNG-IO-02" && e.actor.starts_with("cli:")));

    let out = app.cli(&["user", "deactivate", "kim"], None);
    assert!(out.status.success());
    assert_eq!(app.client().try_login("kim", "lung-reader-2026").await.status(), 401);
    let out = app.cli(&["user", "list"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deactivated"));
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_problem() {
    let app = spawn_app();
    let cases: [(&[&str], &str); 5] = [
        (&["study", "create", "--code", "x", "--title", "T"], "code"),
        (
            &[
                "study",
                "add-site",
                "--study",
                "LUNG-IO-01",
                "--code",
                "ZZ",
                "--name",
                "Z",
                "--irb-approval-date",
                "31/12/2024",
            ],
            "irb_approval_date",
        ),
        (
            &["study", "add-member", "--study", "LUNG-IO-01", "--username", "nobody", "--role", "annotator"],
            "no user 'nobody'",
        ),
        (&["study", "add-member", "--study", "LUNG-IO-01", "--username", "outsider", "--role", "boss"], "role"),
        (&["user", "reset-password", "ghost"], "no user 'ghost'"),
    ];
    for (args, needle) in cases {
        let out = app.cli(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A short password from stdin is refused and creates nobody.
    let out =
        app.cli(&["user", "add", "--username", "shorty", "--full-name", "S", "--password-stdin"], Some("short\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(evidentia::auth::users::find_by_username(&mut app.conn(), "shorty").unwrap().is_none());
}

#[test]
fn cli_acts_as_a_user_with_that_users_rights() {
    let app = spawn_app();
    let out = app.cli(&["--as", "annotator1", "study", "create", "--code", "ANN-01", "--title", "No"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("forbidden"));
    let out = app.cli(
        &["--as", "manager", "study", "add-site", "--study", "LUNG-IO-01", "--code", "AMC", "--name", "Asan"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit_events(&app, "create")[0].actor, "manager");
    let out = app
        .cli(&["--as", "manager", "study", "add-site", "--study", "OTHER-01", "--code", "AMC", "--name", "Asan"], None);
    assert_eq!(out.status.code(), Some(2), "not a member: not found");
    let out = app.cli(&["--as", "ghost", "study", "list"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn migrate_and_demo_seed_only_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    // On PostgreSQL, an empty database of its own.
    let database = crate::helpers::postgres::fresh();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"));
        cmd.arg("--data-dir").arg(dir.path()).args(args).env("RUST_LOG", "warn");
        match &database {
            Some(url) => cmd.env("EVIDENTIA_DATABASE_URL", url),
            None => cmd.env_remove("EVIDENTIA_DATABASE_URL"),
        };
        cmd.output().unwrap()
    };
    assert!(run(&["migrate"]).status.success());
    // Two demo slides here (the demo draws 24; debug builds draw slowly).
    let first = run(&["demo", "--seed-only", "--slides", "2"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("seeded study LUNG-IO-01") && out.contains("seeded 2 synthetic slides"), "{out}");
    // The first came from a Hamamatsu scanner (NDPI), the second from a PACS as a DICOM series,
    // both naming the patient.
    assert!(
        out.contains("2 synthetic slides in LUNG-IO-01 (one from a Hamamatsu NDPI file, one from a DICOM series)"),
        "{out}"
    );
    assert!(out.contains("seeded AI run 1 of evidentia-demo-til@1.0.0 on 2 slides"), "{out}");
    assert!(out.contains("an AI-assisted re-read"), "{out}");
    // The second demo study is complete, locked and signed: its dossier exports and verifies.
    assert!(out.contains("seeded LUNG-IO-02 locked and signed"), "{out}");
    let zip = dir.path().join("LUNG-IO-02.zip");
    let export = run(&["dossier", "export", "--study", "LUNG-IO-02", "--out", zip.to_str().unwrap()]);
    assert!(export.status.success(), "{}", stderr(&export));
    let verified = run(&["dossier", "verify", zip.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let second = run(&["demo", "--seed-only", "--slides", "2"]);
    assert!(second.status.success());
    assert!(!String::from_utf8_lossy(&second.stdout).contains("seeded"), "second run seeds nothing");
    let verify = run(&["audit", "verify"]);
    assert!(verify.status.success());
    // The demo slides are linked to the subjects they were drawn for, de-identified like any.
    let list = run(&["slides", "list", "--study", "LUNG-IO-01"]);
    let csv = String::from_utf8_lossy(&list.stdout);
    assert!(csv.contains("SNUBH-0001-S01") && csv.contains("SMC-0001-S01"), "{csv}");
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    for f in std::fs::read_dir(dir.path().join("slides")).unwrap().flatten().filter(|f| f.path().is_file()) {
        let bytes = std::fs::read(f.path()).unwrap();
        for s in subjects.iter().take(5) {
            assert!(!bytes.windows(s.hospital_id.len()).any(|w| w == s.hospital_id.as_bytes()), "subject id stored");
            assert!(!bytes.windows(s.mrn.len()).any(|w| w == s.mrn.as_bytes()), "hospital number stored");
        }
        assert!(!bytes.windows(8).any(|w| w == b"Filename"), "Aperio Filename key stored");
    }
    assert!(!dir.path().join("tmp/demo-slides").exists(), "the drawn originals are removed");
}

/// `migrate-data` moves the demo from SQLite into an empty PostgreSQL database: every row, every
/// audit chain verifying, LUNG-IO-02's signatures valid (its snapshot hash is the same computed
/// on either engine) and its dossier byte-identical to the one exported before the move; a
/// second copy into the now non-empty database is refused and changes nothing. On PostgreSQL
/// runs of the suite (it needs a server).
#[test]
fn migrate_data_moves_the_demo_into_postgres_and_every_signature_stays_valid() {
    let Some(target) = crate::helpers::postgres::fresh() else {
        eprintln!("migrate-data: needs EVIDENTIA_TEST_POSTGRES_URL (the suite's PostgreSQL run)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // On the suite's object-storage pass, the files move into a prefix of the test bucket too.
    let bucket = std::env::var("EVIDENTIA_TEST_STORAGE").ok().filter(|b| !b.is_empty());
    let to_storage = bucket.as_ref().map(|b| format!("{b}/migrate-{}", std::process::id()));
    // Commands on the installation before the move (None: SQLite and the data dir) or after it.
    let run = |database: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"));
        cmd.arg("--data-dir").arg(dir.path()).args(args).env("RUST_LOG", "warn");
        match database {
            Some(url) => cmd.env("EVIDENTIA_DATABASE_URL", url),
            None => cmd.env_remove("EVIDENTIA_DATABASE_URL"),
        };
        match (database, &to_storage) {
            (Some(_), Some(s)) => cmd.env("EVIDENTIA_STORAGE", s),
            _ => cmd.env_remove("EVIDENTIA_STORAGE"),
        };
        cmd.output().unwrap()
    };
    let seeded = run(None, &["demo", "--seed-only", "--slides", "2"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let before = dir.path().join("before.zip");
    assert!(run(None, &["dossier", "export", "--study", "LUNG-IO-02", "--out", before.to_str().unwrap()])
        .status
        .success());

    // Not a PostgreSQL target: refused, naming the option.
    let wrong = run(None, &["migrate-data", "--to", "sqlite:///tmp/x.db"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("--to"), "{}", stderr(&wrong));

    let mut args = vec!["migrate-data", "--to", &target];
    if let Some(s) = &to_storage {
        // A target storage that is not an object store: refused before anything is copied.
        let local = run(None, &["migrate-data", "--to", &target, "--to-storage", "file:///tmp/elsewhere"]);
        assert_eq!(local.status.code(), Some(2), "{}", stderr(&local));
        assert!(stderr(&local).contains("--to-storage"), "{}", stderr(&local));
        args.extend(["--to-storage", s.as_str()]);
    }
    let moved = run(None, &args);
    assert!(moved.status.success(), "{}", stderr(&moved));
    if let Some(s) = &to_storage {
        // Every file is in the object store, the same bytes as in the data dir.
        let there = evidentia::storage::Storage::parse(Some(s), dir.path()).unwrap();
        let here = evidentia::storage::Storage::local(dir.path());
        for folder in evidentia::storage::FOLDERS {
            let (a, b) = (here.list(folder).unwrap(), there.list(folder).unwrap());
            assert_eq!(a, b, "{folder}");
            for (key, _) in &a {
                assert_eq!(here.sha256(key).unwrap(), there.sha256(key).unwrap(), "{key}");
            }
        }
        assert!(here.list("slides").unwrap().len() >= 2, "the demo's slides");
        assert!(String::from_utf8_lossy(&moved.stdout).contains("read back with the SHA-256"));
        // The slides are read from the object store from now on: moved aside here, they still open.
        std::fs::rename(dir.path().join("slides"), dir.path().join("slides-before-the-move")).unwrap();
        for (key, _) in there.list("slides").unwrap() {
            let slide = evidentia::slides::reader::open_source(there.open(&key).unwrap()).unwrap();
            assert_eq!(slide.read_region(0, 0, 0, 64, 64).unwrap().width, 64, "{key} reads from the bucket");
        }
    }
    let said = String::from_utf8_lossy(&moved.stdout).to_string();
    assert!(
        said.contains("audit chains") && said.contains("1 current locks' snapshot hashes are the ones signed"),
        "{said}"
    );

    // Every table holds the same rows, and the lock's hash is the same computed on either engine.
    let mut sqlite = evidentia::db::DatabaseUrl::Sqlite(dir.path().join(evidentia::db::DB_FILE)).connect().unwrap();
    let mut pg = evidentia::db::DatabaseUrl::parse(Some(&target), dir.path()).unwrap().connect().unwrap();
    for table in evidentia::db::copy::TABLES {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let q = format!("SELECT count(*) AS n FROM {table}");
        let (a, b) = (
            diesel::sql_query(&q).get_result::<N>(&mut sqlite).unwrap().n,
            diesel::sql_query(&q).get_result::<N>(&mut pg).unwrap().n,
        );
        assert_eq!(a, b, "{table}");
    }
    let study = evidentia::studies::get_by_code(&mut sqlite, "LUNG-IO-02").unwrap().id;
    let on_sqlite = evidentia::studies::snapshot::compute(&mut sqlite, study).unwrap();
    let on_pg = evidentia::studies::snapshot::compute(&mut pg, study).unwrap();
    assert_eq!(on_sqlite, on_pg, "the same snapshot hash on SQLite and on PostgreSQL");

    let verify = run(Some(&target), &["audit", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let after = dir.path().join("after.zip");
    let export = run(Some(&target), &["dossier", "export", "--study", "LUNG-IO-02", "--out", after.to_str().unwrap()]);
    assert!(export.status.success(), "{}", stderr(&export));
    assert_eq!(std::fs::read(&before).unwrap(), std::fs::read(&after).unwrap(), "the dossier is byte-identical");

    if to_storage.is_some() {
        let slides = run(Some(&target), &["slides", "list", "--study", "LUNG-IO-02"]);
        assert!(slides.status.success(), "{}", stderr(&slides));
    }

    // A target that holds data: refused, nothing changed.
    let users_before = evidentia::auth::users::count(&mut pg).unwrap();
    let again = run(None, &["migrate-data", "--to", &target]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    assert_eq!(evidentia::auth::users::count(&mut pg).unwrap(), users_before);
    if let Some(s) = &to_storage {
        std::fs::rename(dir.path().join("slides-before-the-move"), dir.path().join("slides")).unwrap();
        let there = evidentia::storage::Storage::parse(Some(s), dir.path()).unwrap();
        let empty = crate::helpers::postgres::fresh().unwrap();
        // An empty database but a storage that holds a file that is not this installation's:
        // refused, naming it; the database left empty.
        there.put_bytes("exports/dossiers/someone-elses.zip", b"PK".to_vec()).unwrap();
        let into_full = run(None, &["migrate-data", "--to", &empty, "--to-storage", s]);
        assert_eq!(into_full.status.code(), Some(2), "{}", stderr(&into_full));
        let said = stderr(&into_full);
        assert!(said.contains("not empty") && said.contains("someone-elses.zip"), "{said}");
        let mut fresh = evidentia::db::DatabaseUrl::parse(Some(&empty), dir.path()).unwrap().connect().unwrap();
        assert_eq!(evidentia::auth::users::count(&mut fresh).unwrap(), 0, "nothing copied");
        // A copy cut short (a slide missing, another damaged, the database empty) resumes: the
        // files already there whole are checked and kept, the others sent again.
        there.delete("exports/dossiers/someone-elses.zip").unwrap();
        let slides = there.list("slides").unwrap();
        there.delete(&slides[0].0).unwrap();
        let damaged = vec![0u8; slides[1].1 as usize];
        there.put_bytes(&slides[1].0, damaged).unwrap();
        let resumed = run(None, &["migrate-data", "--to", &empty, "--to-storage", s]);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        let said = String::from_utf8_lossy(&resumed.stdout).to_string();
        let total: usize = evidentia::storage::FOLDERS.iter().map(|f| there.list(f).unwrap().len()).sum();
        assert!(said.contains(&format!("resuming a copy: {} files are there already", total - 1)), "{said}");
        assert!(
            said.contains("copied 2 files") && said.contains(&format!("kept {} already there", total - 2)),
            "{said}"
        );
        let here = evidentia::storage::Storage::local(dir.path());
        for (key, _) in &slides {
            assert_eq!(here.sha256(key).unwrap(), there.sha256(key).unwrap(), "{key} sent again whole");
        }
        assert!(evidentia::auth::users::count(&mut fresh).unwrap() > 0, "the database copied");
        drop(fresh);
        crate::helpers::postgres::drop_database(&empty);
    }
    crate::helpers::postgres::drop_database(&target);
}
