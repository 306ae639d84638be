//! Native libraries that pip installs (ONNX Runtime's `onnxruntime/capi`, OpenSlide's
//! `openslide_bin`), found in the Python environments a machine has, so an operator who ran
//! `pip install` needs to set nothing.

use std::path::{Path, PathBuf};

/// The newest file whose name starts with `prefix` in `<site-packages>/<package_dir>/` of the
/// active venv (`VIRTUAL_ENV`), the user's `~/.local`, `/usr/local` or `/usr` (any python3.*,
/// site- or dist-packages); the last by name when there are several.
pub fn python_package_file(package_dir: &str, prefix: &str) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(venv).join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".local/lib"));
    }
    roots.extend(["/usr/local/lib", "/usr/lib"].map(PathBuf::from));
    let mut found: Vec<PathBuf> = roots
        .iter()
        .flat_map(|root| {
            dir_entries(root).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python3")))
        })
        .flat_map(|py| ["site-packages", "dist-packages"].map(|d| py.join(d).join(package_dir)))
        .flat_map(|dir| dir_entries(&dir))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .collect();
    found.sort();
    found.pop()
}

fn dir_entries(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path())
}
