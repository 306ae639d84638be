//! Backup and restore of a whole installation: an online copy of the database (safe while
//! the server runs) plus every other file of the data dir (slides, models, secrets, exports;
//! not `tmp/`, which holds uploads not yet de-identified), in one `.tar.gz` only its owner can
//! read, optionally encrypted to one or more age X25519 recipients (`.tar.gz.age`, readable by
//! `age -d` / `rage -d` as well), so that a copy on a backup server holds nothing readable.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
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

/// The start of every age file (age-encryption.org/v1).
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// Parses recipients as given on the command line (`age1…`), naming the one that is not.
pub fn parse_recipients(given: &[String]) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    given
        .iter()
        .map(|r| {
            r.trim()
                .parse::<age::x25519::Recipient>()
                .map_err(|e| anyhow::anyhow!("--encrypt-to {r}: not an age X25519 recipient (age1…): {e}"))
        })
        .collect()
}

/// Reads the identities (`AGE-SECRET-KEY-1…` lines; `#` comments) of an age identity file, as
/// `age-keygen` and `evidentia backup-key` write them.
pub fn read_identities(path: &Path) -> anyhow::Result<Vec<age::x25519::Identity>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            l.parse::<age::x25519::Identity>()
                .map_err(|e| anyhow::anyhow!("{}: key {} is not an age X25519 identity: {e}", path.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    if keys.is_empty() {
        bail!("{}: no age identity (AGE-SECRET-KEY-1…) in the file", path.display());
    }
    Ok(keys)
}

/// Writes `out`: a `.tar.gz`, encrypted to `recipients` when there are any. Returns the number
/// of files archived.
pub fn create(
    pool: &DbPool,
    data_dir: &Path,
    out: &Path,
    recipients: &[age::x25519::Recipient],
) -> anyhow::Result<usize> {
    // The archive holds the database and the study keys: readable by its owner only.
    let file = crate::tmp::create_private_output(out).with_context(|| format!("cannot create {}", out.display()))?;
    if recipients.is_empty() {
        return write_archive(pool, data_dir, out, file).map(|(_, n)| n);
    }
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| anyhow::anyhow!("age: {e}"))?;
    let sealed = encryptor.wrap_output(file)?;
    let (sealed, n) = write_archive(pool, data_dir, out, sealed)?;
    sealed.finish()?;
    Ok(n)
}

/// The archive into `w`; gives `w` back once the gzip stream is finished.
fn write_archive<W: Write>(pool: &DbPool, data_dir: &Path, out: &Path, w: W) -> anyhow::Result<(W, usize)> {
    let tmp = tempfile::tempdir()?;
    let db_copy = tmp.path().join(db::DB_FILE);
    db::online_backup(&mut *pool.get()?, &db_copy).context("online database backup")?;
    let mut tar = tar::Builder::new(GzEncoder::new(w, Compression::default()));
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
    Ok((tar.into_inner()?.finish()?, n))
}

/// Unpacks a backup into `data_dir`, which must not exist or be empty, and checks the database.
/// An encrypted backup needs the identity of one of its recipients.
pub fn restore(archive: &Path, data_dir: &Path, identities: &[age::x25519::Identity]) -> anyhow::Result<usize> {
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!("{} is not empty: restore into a new or empty directory", data_dir.display());
    }
    let mut file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    // The first bytes say whether it is encrypted; they are read again with the rest.
    let mut start = Vec::with_capacity(AGE_MAGIC.len());
    (&mut file).take(AGE_MAGIC.len() as u64).read_to_end(&mut start)?;
    let encrypted = start == AGE_MAGIC;
    let file = std::io::Cursor::new(start).chain(file);
    let reader: Box<dyn Read> = if encrypted {
        if identities.is_empty() {
            bail!(
                "{} is encrypted: give --identity FILE (the age identity its backup was encrypted to); nothing was restored",
                archive.display()
            );
        }
        let decryptor = age::Decryptor::new(file).map_err(|e| anyhow::anyhow!("{}: {e}", archive.display()))?;
        let plain = decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)).map_err(|e| {
            anyhow::anyhow!("{}: cannot decrypt ({e}): the identity is not one it was encrypted to", archive.display())
        })?;
        Box::new(plain)
    } else {
        Box::new(file)
    };
    std::fs::create_dir_all(data_dir)?;
    let mut tar = tar::Archive::new(GzDecoder::new(reader));
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
    let mut conn = crate::db::DatabaseUrl::Sqlite(db_path.to_path_buf()).connect()?;
    crate::db::check_integrity(&mut conn, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    /// A `.tar.gz` holding a database made by `sql` plus whatever `extra` appends.
    fn archive_with(dir: &Path, sql: &str, extra: impl FnOnce(&mut tar::Builder<GzEncoder<File>>)) -> PathBuf {
        let db_file = dir.join("source.db");
        let mut conn = db::DatabaseUrl::Sqlite(db_file.clone()).connect().unwrap();
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
        let e = restore(&archive, &target, &[]).unwrap_err().to_string();
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
        let e = format!("{:#}", restore(&archive, &dir.path().join("restored"), &[]).unwrap_err());
        assert!(e.contains("damaged") && e.contains("never used"), "{e}");
    }
}
