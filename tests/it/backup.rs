//! Backup while the server runs, restore elsewhere, and find everything (audit chain included).

use crate::helpers::*;

#[tokio::test]
async fn a_backup_restores_everything() {
    if crate::helpers::postgres::skip_sqlite_only("backup archive with the SQLite file") {
        return;
    }
    let app = spawn_app();
    let m = app.login("manager").await;
    m.post("/studies/LUNG-IO-01/sites", &[("code", "AMC"), ("name", "Asan")]).await;
    std::fs::write(app.data_dir.join("exports").join("note.txt"), "kept").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("backup.tar.gz");
    let out = app.cli(&["backup", "--out", archive.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let restored = tmp.path().join("restored");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["restore", archive.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(restored.join("exports").join("note.txt")).unwrap(), "kept");

    let cfg = test_config(&restored);
    let pool = evidentia::startup::open_database(&cfg).unwrap();
    let mut conn = pool.get().unwrap();
    let sid = evidentia::studies::get_by_code(&mut conn, "LUNG-IO-01").unwrap().id;
    let sites = evidentia::studies::sites::list(&mut conn, sid, true).unwrap();
    assert!(sites.iter().any(|s| s.code == "AMC"));
    let original = evidentia::audit::verify::verify_all(&mut app.conn()).unwrap();
    let copy = evidentia::audit::verify::verify_all(&mut conn).unwrap();
    assert_eq!(original.len(), copy.len());
    for (a, b) in original.iter().zip(&copy) {
        assert_eq!((a.chain.as_str(), a.events), (b.chain.as_str(), b.events));
        assert!(b.broken.is_none());
    }
    // `audit verify` on the restored copy passes too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["--data-dir", restored.to_str().unwrap(), "audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success());

    // Restoring over a non-empty directory is refused and changes nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["restore", archive.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

#[tokio::test]
async fn uploads_a_crash_left_behind_are_swept_at_start_and_never_backed_up() {
    if crate::helpers::postgres::skip_sqlite_only("backup archive with the SQLite file") {
        return;
    }
    let app = spawn_app_with(|cfg| {
        // What a crash mid-request leaves: raw uploads, not yet de-identified.
        let tmp = cfg.data_dir.join("tmp");
        for dir in ["slide-upload-abc", "geojson-def", "model-upload-ghi"] {
            std::fs::create_dir_all(tmp.join(dir)).unwrap();
            std::fs::write(tmp.join(dir).join("0000.upload"), b"label: KIM Minji 1961-03-02").unwrap();
        }
        // A de-identified import preview waiting for its confirmation stays.
        std::fs::write(tmp.join("preview-0123456789abcdef.json"), b"{}").unwrap();
    });
    let tmp = app.data_dir.join("tmp");
    let left: Vec<String> =
        std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["preview-0123456789abcdef.json"], "swept at start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777, 0o700, "tmp/ is private");
    }

    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("backup.tar.gz");
    let out = app.cli(&["backup", "--out", archive.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the archive holds the database and the keys: owner only");
    }
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap()));
    let names: Vec<String> =
        tar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.starts_with("secrets")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("tmp")), "work in progress is not backed up: {names:?}");
}

/// An encrypted backup: written to an age recipient (`backup-key` makes the pair), it holds no
/// readable byte, restores only with the matching identity, and a missing or wrong identity
/// restores nothing and says what to give.
#[tokio::test]
async fn an_encrypted_backup_restores_only_with_its_identity() {
    use std::os::unix::fs::PermissionsExt;
    if crate::helpers::postgres::skip_sqlite_only("backup archive with the SQLite file") {
        return;
    }
    let app = spawn_app();
    let m = app.login("manager").await;
    m.post("/studies/LUNG-IO-01/sites", &[("code", "AMC"), ("name", "Asan")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let out = app.cli(&["backup-key", "--out", &path("backup.key")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let mode = std::fs::metadata(path("backup.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the identity is readable by its owner only");
    let again = app.cli(&["backup-key", "--out", &path("backup.key")], None);
    assert_eq!(again.status.code(), Some(2), "an existing key is never replaced");

    let bad = app.cli(&["backup", "--out", &path("x.age"), "--encrypt-to", "age1notakey"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--encrypt-to age1notakey"));
    assert!(!tmp.path().join("x.age").exists(), "nothing written for a bad recipient");

    let out = app.cli(&["backup", "--out", &path("backup.tar.gz.age"), "--encrypt-to", &recipient], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(path("backup.tar.gz.age")).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> X25519 "), "an age file to one X25519 recipient");
    // The clear archive's gzip header (10 bytes, as this build writes it) appears nowhere: three
    // bytes alone (1f 8b 08) turn up by chance in a few MB of ciphertext about one run in four.
    let clear = app.cli(&["backup", "--out", &path("clear.tar.gz")], None);
    assert!(clear.status.success(), "{}", String::from_utf8_lossy(&clear.stderr));
    let header = std::fs::read(path("clear.tar.gz")).unwrap()[..10].to_vec();
    assert_eq!(&header[..3], &[0x1f, 0x8b, 0x08], "a gzip stream");
    assert!(!bytes.windows(header.len()).any(|w| w == header.as_slice()), "no gzip stream in the clear");

    let restore = |identity: Option<&str>, into: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"));
        cmd.args(["restore", &path("backup.tar.gz.age"), "--data-dir", &path(into)]);
        if let Some(key) = identity {
            cmd.args(["--identity", key]);
        }
        cmd.output().unwrap()
    };
    let out = restore(None, "r1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is encrypted: give --identity FILE"));
    assert!(!tmp.path().join("r1").exists(), "nothing restored");
    assert!(app.cli(&["backup-key", "--out", &path("other.key")], None).status.success());
    let out = restore(Some(&path("other.key")), "r2");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot decrypt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("r2").exists(), "nothing restored");

    let out = restore(Some(&path("backup.key")), "r3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pool = evidentia::startup::open_database(&test_config(&tmp.path().join("r3"))).unwrap();
    let mut conn = pool.get().unwrap();
    let sid = evidentia::studies::get_by_code(&mut conn, "LUNG-IO-01").unwrap().id;
    assert!(evidentia::studies::sites::list(&mut conn, sid, true).unwrap().iter().any(|s| s.code == "AMC"));
    assert!(evidentia::audit::verify::verify_all(&mut conn).unwrap().iter().all(|c| c.broken.is_none()));
}
