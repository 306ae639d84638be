//! The data dir's `tmp/`: work in progress. Uploads are received here before they are
//! de-identified (a slide upload still holds its label image, a GeoJSON file or a model card
//! what its sender typed), so everything here is private to the server's account (folders
//! 0700, files 0600), never backed up (`crate::backup`), and never outlives its request: a
//! [`PrivateDir`] removes itself when the request ends, however it ends (an error, a client
//! that went away), unless the work it holds was handed to a job. What a crash leaves behind
//! is swept at start and hourly ([`sweep`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The names of what requests leave here, and of scratch files (`tempfile`'s `.tmp…`).
const SWEPT_PREFIXES: [&str; 5] = ["slide-upload-", "geojson-", "model-upload-", "dicom-export-", ".tmp"];
const SCRATCH_MIN_AGE: Duration = Duration::from_secs(3600);

/// Makes `dir` (and its parents) and restricts it to the owner.
pub fn ensure_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Creates a file only its owner can read or write (mode 0600 from the start, whatever the
/// umask), failing if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates or truncates a file that only its owner can read or write (an existing file is
/// made 0600 too).
pub fn create_private_output(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    restrict(path, 0o600)?;
    Ok(file)
}

/// A folder under `tmp/` for one request's upload, removed when dropped unless [`keep`]
/// handed it on.
///
/// [`keep`]: PrivateDir::keep
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    kept: bool,
}

impl PrivateDir {
    /// `tmp_dir/<kind>-<random>`, mode 0700; `kind` must be one of the swept names' stems.
    pub fn create(tmp_dir: &Path, kind: &str) -> std::io::Result<Self> {
        debug_assert!(SWEPT_PREFIXES.iter().any(|p| p.strip_suffix('-') == Some(kind)), "{kind} is swept");
        ensure_private(tmp_dir)?;
        let path = tmp_dir.join(format!("{kind}-{}", crate::auth::random_token()));
        std::fs::create_dir(&path)?;
        restrict(&path, 0o700)?;
        Ok(PrivateDir { path, kept: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands the folder on (to a job that removes it when it ends).
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        self.path.clone()
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes what interrupted requests left in `tmp_dir` (uploads, scratch files) that is at
/// least `min_age` old and not in `in_use` (the uploads of slide ingests still to run), and
/// makes the folder private again. Returns how many entries went. At start nothing is in
/// flight, so the age is zero; the hourly sweep leaves a day for uploads still arriving.
pub fn sweep(tmp_dir: &Path, min_age: Duration, in_use: &[PathBuf]) -> usize {
    if !tmp_dir.exists() {
        return 0;
    }
    if let Err(e) = ensure_private(tmp_dir) {
        tracing::warn!(error = %e, "cannot make the data dir's tmp/ private");
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(tmp_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !SWEPT_PREFIXES.iter().any(|p| name.starts_with(p)) || in_use.iter().any(|p| p == &entry.path()) {
            continue;
        }
        // Scratch files may belong to a job of a separate worker process: an hour at least.
        let min_age = if name.starts_with(".tmp") { min_age.max(SCRATCH_MIN_AGE) } else { min_age };
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a < min_age) {
            continue;
        }
        let gone = if entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(entry = name, error = %e, "cannot sweep a leftover in tmp/"),
        }
    }
    if removed > 0 {
        tracing::info!(removed, "swept leftovers of interrupted uploads from tmp/");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_private_dir_is_owner_only_and_goes_unless_kept() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        let dropped = PrivateDir::create(&tmp, "geojson").unwrap();
        let path = dropped.path().to_path_buf();
        let f = path.join("0000.upload");
        create_private_file(&f).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode(&tmp), 0o700);
            assert_eq!(mode(&path), 0o700);
            assert_eq!(mode(&f), 0o600);
        }
        drop(dropped);
        assert!(!path.exists(), "removed when the request ends");
        let kept = PrivateDir::create(&tmp, "slide-upload").unwrap().keep();
        assert!(kept.exists(), "handed on to a job");
    }

    #[test]
    fn the_sweep_removes_leftovers_but_not_work_in_use_or_other_files() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        let leftover = PrivateDir::create(&tmp, "model-upload").unwrap().keep();
        let in_use = PrivateDir::create(&tmp, "slide-upload").unwrap().keep();
        std::fs::write(tmp.join(".tmpAbC123"), b"scratch").unwrap();
        std::fs::write(tmp.join("slide-ingest-7.json"), b"{}").unwrap();
        std::fs::write(tmp.join("preview-abc.json"), b"{}").unwrap();
        // Too young for the hourly sweep.
        assert_eq!(sweep(&tmp, Duration::from_secs(3600), &[]), 0);
        assert_eq!(sweep(&tmp, Duration::ZERO, std::slice::from_ref(&in_use)), 1);
        assert!(!leftover.exists());
        assert!(tmp.join(".tmpAbC123").exists(), "a scratch file may be a worker's: an hour at least");
        assert!(in_use.exists(), "an ingest still to run keeps its upload");
        assert!(tmp.join("slide-ingest-7.json").exists() && tmp.join("preview-abc.json").exists());
    }
}
