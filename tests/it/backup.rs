//! Backup while the server runs, restore elsewhere, and find everything (audit chain included).

use crate::helpers::*;

#[tokio::test]
async fn a_backup_restores_everything() {
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
