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

/// The 32-byte secret at `path`, created if (and only if) it does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<[u8; 32]> {
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
