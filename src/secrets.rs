//! Secrets kept in the data dir (`secrets/`), outside the database and included in backups:
//! 32 random bytes, hex, created on first use. A key file is private from its first byte (mode
//! 0600 at creation, whatever the umask) and appears whole or not at all: it is written under a
//! temporary name and then linked to its name, which fails if another process made it first (we
//! then use theirs). Any other failure to read an existing key is an error naming the file, never
//! a new key: a new pseudonymisation key would give every re-imported subject a second
//! pseudonym, and a new signing key would orphan every dossier signed before.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::schema::key_fingerprints;
use crate::db::Conn;

/// Where the installation's keys are: `EVIDENTIA_SECRETS_DIR` when set — a folder every host of
/// an installation on several machines mounts (the same keys everywhere: one pseudonym per
/// subject, one signing key), provisioned and protected apart from any node's disk — else the
/// data dir's `secrets/`.
pub fn dir(data_dir: &Path) -> PathBuf {
    std::env::var_os("EVIDENTIA_SECRETS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("secrets"))
}

/// The key `name` (`study-CODE`, `dossier-signing`) of the keys' folder ([`dir`]), created on
/// first use and checked against the fingerprint the database recorded when it was first used.
/// A node whose folder holds another key — or none, while the database knows one (a host that
/// does not mount the installation's shared keys, a data dir restored without them) — gets an
/// error saying so, and no key is created: a second key would give every subject it touches a
/// second pseudonym, or sign dossiers nobody can check against the published key.
pub fn load_checked(conn: &mut Conn, data_dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let path = dir(data_dir).join(format!("{name}.key"));
    let recorded: Option<String> =
        key_fingerprints::table.find(name).select(key_fingerprints::fingerprint).first(conn).optional()?;
    let key = match &recorded {
        None => load_or_create(&path)?,
        Some(known) => read(&path)?.with_context(|| {
            format!(
                "the key {} is missing on this host, but the database was written with one (fingerprint {}): \
                 point EVIDENTIA_SECRETS_DIR at the installation's keys folder, or restore the key from a backup",
                path.display(),
                short(known)
            )
        })?,
    };
    let mine = fingerprint(&key);
    let known = match recorded {
        Some(known) => known,
        None => {
            // The first process to use the key records it; one racing with another keeps theirs.
            let row = (
                key_fingerprints::name.eq(name),
                key_fingerprints::fingerprint.eq(&mine),
                key_fingerprints::recorded_at.eq(crate::db::now()),
            );
            crate::db::on_engine!(&mut *conn, |c| {
                diesel::insert_into(key_fingerprints::table).values(row).on_conflict_do_nothing().execute(c)
            })?;
            key_fingerprints::table.find(name).select(key_fingerprints::fingerprint).first(conn)?
        }
    };
    if known != mine {
        bail!(
            "the key {} (fingerprint {}) is not the one the database was written with (fingerprint {}): \
             point EVIDENTIA_SECRETS_DIR at the installation's keys folder",
            path.display(),
            short(&mine),
            short(&known)
        );
    }
    Ok(key)
}

/// Checks every key the database has a fingerprint of against this host's keys folder (a
/// server or worker starting): the first one missing or different is an error. Returns how many
/// were checked.
pub fn check_recorded(conn: &mut Conn, data_dir: &Path) -> anyhow::Result<usize> {
    let names: Vec<String> =
        key_fingerprints::table.select(key_fingerprints::name).order(key_fingerprints::name).load(conn)?;
    for name in &names {
        load_checked(conn, data_dir, name)?;
    }
    Ok(names.len())
}

/// What the database records of a key: SHA-256 over a label and the key, hex. The key cannot be
/// recovered from it (32 random bytes cannot be guessed); it only tells two keys apart.
fn fingerprint(key: &[u8; 32]) -> String {
    hex::encode(Sha256::new().chain_update(b"evidentia key fingerprint v1\0").chain_update(key).finalize())
}

/// A fingerprint as messages show it: its first 16 hex digits.
fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

/// The 32-byte secret at `path`, created if (and only if) it does not exist.
fn load_or_create(path: &Path) -> anyhow::Result<[u8; 32]> {
    match read(path)? {
        Some(key) => Ok(key),
        None => create(path),
    }
}

fn read(path: &Path) -> anyhow::Result<Option<[u8; 32]>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the key {}", path.display())),
    };
    let damaged = || format!("the key {} is damaged (not 64 hex digits): restore it from a backup", path.display());
    let text = std::str::from_utf8(&bytes).with_context(damaged)?;
    let key = hex::decode(text.trim()).with_context(damaged)?;
    let key: [u8; 32] = key.try_into().map_err(|_| anyhow::anyhow!(damaged()))?;
    Ok(Some(key))
}

fn create(path: &Path) -> anyhow::Result<[u8; 32]> {
    let dir = path.parent().context("a key path has a folder")?;
    crate::tmp::ensure_private(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let tmp = dir.join(format!(".{}.{}", crate::auth::random_token(), "new"));
    let written = (|| {
        let mut f = crate::tmp::create_private_file(&tmp)?;
        f.write_all(hex::encode(key).as_bytes())?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read(path)? {
            Some(theirs) => Ok(theirs),
            None => bail!("the key {} vanished while it was being created", path.display()),
        },
        Err(e) => Err(e).with_context(|| format!("cannot write the key {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets").join("k.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            let folder = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode();
            assert_eq!(folder & 0o777, 0o700);
        }
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_damaged_key_is_an_error_never_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = load_or_create(&path).unwrap();
        // One byte flipped to something that is not text.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("k.key") && e.contains("damaged"), "{e}");
        // One hex digit short.
        std::fs::write(&path, &hex::encode(key)[1..]).unwrap();
        assert!(load_or_create(&path).unwrap_err().to_string().contains("damaged"));
        assert_ne!(std::fs::read(&path).unwrap(), hex::encode(key).into_bytes(), "the file is left as it was");
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_key_is_an_error_never_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the key should be: reading fails with something other than "not found".
        let path = dir.path().join("k.key");
        std::fs::create_dir(&path).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read the key"), "{e:#}");
    }
}
