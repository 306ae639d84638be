//! Secrets kept in the data dir (`secrets/`), outside the database and included in backups:
//! 32 random bytes, hex, mode 0600, created on first use (written to a temporary file and renamed,
//! so a crash never leaves half a key).

use std::path::Path;

/// The 32-byte secret at `path`, created if missing.
pub fn load_or_create(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let bytes = hex::decode(text.trim())?;
        return bytes.try_into().map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut arr = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut arr);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, hex::encode(arr))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(arr)
}
