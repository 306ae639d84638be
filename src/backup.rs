//! Backup and restore of a whole installation: an online copy of the database (safe while
//! the server runs) plus every other file of the data dir (slides, models, secrets, exports;
//! not `tmp/`, which holds uploads not yet de-identified), in one `.tar.gz` only its owner can
//! read.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use diesel::Connection;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::db::{self, DbPool};

/// Files that are the live database: replaced by the consistent copy in the archive.
fn is_live_db_file(rel: &Path) -> bool {
    let name = rel.to_string_lossy();
    name == db::DB_FILE || name == format!("{}-wal", db::DB_FILE) || name == format!("{}-shm", db::DB_FILE)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Writes `out` (a `.tar.gz`). Returns the number of files archived.
pub fn create(pool: &DbPool, data_dir: &Path, out: &Path) -> anyhow::Result<usize> {
    let tmp = tempfile::tempdir()?;
    let db_copy = tmp.path().join(db::DB_FILE);
    db::online_backup(&mut *pool.get()?, &db_copy).context("online database backup")?;
    // The archive holds the database and the study keys: readable by its owner only.
    let file = crate::tmp::create_private_output(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    tar.append_path_with_name(&db_copy, db::DB_FILE)?;
    let mut files = Vec::new();
    walk(data_dir, &mut files)?;
    let out_abs = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    let mut n = 1;
    for f in files {
        let rel = f.strip_prefix(data_dir)?.to_path_buf();
        // tmp/ holds work in progress (uploads not yet de-identified): never backed up.
        let in_progress = rel.starts_with("tmp");
        if in_progress || is_live_db_file(&rel) || f.canonicalize().ok().as_deref() == Some(out_abs.as_path()) {
            continue;
        }
        tar.append_path_with_name(&f, &rel)?;
        n += 1;
    }
    tar.into_inner()?.finish()?;
    Ok(n)
}

/// Unpacks a backup into `data_dir`, which must not exist or be empty, and checks the database.
pub fn restore(archive: &Path, data_dir: &Path) -> anyhow::Result<usize> {
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!("{} is not empty: restore into a new or empty directory", data_dir.display());
    }
    std::fs::create_dir_all(data_dir)?;
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut n = 0;
    for entry in tar.entries().with_context(|| format!("{} is not a backup archive", archive.display()))? {
        let mut entry = entry?;
        // Only files and folders: a link could point anywhere outside the data dir, a device
        // or a pipe is never something a backup wrote.
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            bail!(
                "{}: archive entry {:?} is not a file or a folder ({kind:?}): not a backup this program wrote",
                archive.display(),
                entry.path()?
            );
        }
        // `unpack_in` refuses paths that would escape the target directory.
        if !entry.unpack_in(data_dir)? {
            bail!("{}: archive entry {:?} points outside the data dir", archive.display(), entry.path()?);
        }
        n += 1;
    }
    let db_path = data_dir.join(db::DB_FILE);
    if !db_path.is_file() {
        bail!("{} holds no {}", archive.display(), db::DB_FILE);
    }
    integrity_check(&db_path).with_context(|| format!("{}: the restored database is damaged", archive.display()))?;
    Ok(n)
}

/// `PRAGMA integrity_check` answers rows naming each problem, or one row `ok`.
fn integrity_check(db_path: &Path) -> anyhow::Result<()> {
    let mut conn = diesel::SqliteConnection::establish(&db_path.to_string_lossy())?;
    crate::db::check_integrity(&mut conn, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    /// A `.tar.gz` holding a database made by `sql` plus whatever `extra` appends.
    fn archive_with(dir: &Path, sql: &str, extra: impl FnOnce(&mut tar::Builder<GzEncoder<File>>)) -> PathBuf {
        let db_file = dir.join("source.db");
        let mut conn = diesel::SqliteConnection::establish(&db_file.to_string_lossy()).unwrap();
        conn.batch_execute(sql).unwrap();
        drop(conn);
        let out = dir.join("backup.tar.gz");
        let mut tar = tar::Builder::new(GzEncoder::new(File::create(&out).unwrap(), Compression::default()));
        tar.append_path_with_name(&db_file, db::DB_FILE).unwrap();
        extra(&mut tar);
        tar.into_inner().unwrap().finish().unwrap();
        out
    }

    #[test]
    fn restore_refuses_links_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        let archive = archive_with(dir.path(), "CREATE TABLE t (x);", |tar| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, "secrets/study-X.key", "/etc/passwd").unwrap();
        });
        let target = dir.path().join("restored");
        let e = restore(&archive, &target).unwrap_err().to_string();
        assert!(e.contains("secrets/study-X.key") && e.contains("not a file or a folder"), "{e}");
        assert!(!target.join("secrets").join("study-X.key").exists());
    }

    #[test]
    fn restore_reports_what_the_integrity_check_finds() {
        let dir = tempfile::tempdir().unwrap();
        // An index dropped from the schema behind SQLite's back leaves its pages unused: the
        // database opens and answers queries, and only the integrity check says it is damaged.
        let archive = archive_with(
            dir.path(),
            "CREATE TABLE t (x); CREATE INDEX t_x ON t (x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT hex(randomblob(16)) FROM n;
             PRAGMA writable_schema = ON; DELETE FROM sqlite_master WHERE name = 't_x';",
            |_| (),
        );
        let e = format!("{:#}", restore(&archive, &dir.path().join("restored")).unwrap_err());
        assert!(e.contains("damaged") && e.contains("never used"), "{e}");
    }
}
