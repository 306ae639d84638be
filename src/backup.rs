//! Backup and restore of a whole installation: an online copy of the database (safe while
//! the server runs) plus every other file of the data dir (slides, models, secrets, exports),
//! in one `.tar.gz`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
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
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    tar.append_path_with_name(&db_copy, db::DB_FILE)?;
    let mut files = Vec::new();
    walk(data_dir, &mut files)?;
    let out_abs = out.canonicalize().unwrap_or_else(|_| out.to_path_buf());
    let mut n = 1;
    for f in files {
        let rel = f.strip_prefix(data_dir)?.to_path_buf();
        if is_live_db_file(&rel) || f.canonicalize().ok().as_deref() == Some(out_abs.as_path()) {
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
    let mut conn = diesel::SqliteConnection::establish(&db_path.to_string_lossy())?;
    conn.batch_execute("PRAGMA integrity_check;").context("restored database fails its integrity check")?;
    Ok(n)
}
