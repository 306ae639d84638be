//! Front-end files (`static/`), compiled into the binary so the server runs from any directory,
//! and served under content-hashed URLs: `url("js/app.js")` is `/static/<hash>/js/app.js`, where
//! the hash is the file's SHA-256 (12 hex digits). A file's URL changes exactly when its bytes
//! do, so browsers may cache it for good and never run old code after an upgrade.
//!
//! A directory that a script reads files from by prefix (OpenSeadragon's button images) gets the
//! hash of all its files together: `dir_url("vendor/openseadragon/images/")`.
//!
//! Our scripts under `js/` are ES modules. A module's relative imports (`from "./slideview.js"`)
//! are served rewritten to the imported file's hashed URL, and the module's hash is that of the
//! rewritten bytes: a change to an imported module changes the URL of every module that imports
//! it, so no browser combines a new module with a cached old one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One front-end file, as served.
pub struct Asset {
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

const FILES: &[(&str, &str, &[u8])] = &[
    ("css/app.css", "text/css; charset=utf-8", include_bytes!("../../static/css/app.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../static/favicon.svg")),
    ("js/app.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/app.js")),
    (
        "vendor/htmx/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx/htmx.min.js"),
    ),
    ("js/viewer.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/viewer.js")),
    ("js/heatmap.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/heatmap.js")),
    ("js/workbench.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/workbench.js")),
    ("js/slideview.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/slideview.js")),
    ("js/regions.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/regions.js")),
    ("css/workbench.css", "text/css; charset=utf-8", include_bytes!("../../static/css/workbench.css")),
    (
        "vendor/openseadragon/openseadragon.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/openseadragon/openseadragon.min.js"),
    ),
    (
        "vendor/openseadragon/images/button_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/button_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/button_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/button_hover.png"),
    ),
    (
        "vendor/openseadragon/images/button_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/button_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/button_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/button_rest.png"),
    ),
    (
        "vendor/openseadragon/images/flip_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/flip_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/flip_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/flip_hover.png"),
    ),
    (
        "vendor/openseadragon/images/flip_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/flip_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/flip_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/flip_rest.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/fullpage_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/fullpage_hover.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/fullpage_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/fullpage_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/fullpage_rest.png"),
    ),
    (
        "vendor/openseadragon/images/home_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/home_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/home_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/home_hover.png"),
    ),
    (
        "vendor/openseadragon/images/home_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/home_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/home_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/home_rest.png"),
    ),
    (
        "vendor/openseadragon/images/next_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/next_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/next_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/next_hover.png"),
    ),
    (
        "vendor/openseadragon/images/next_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/next_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/next_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/next_rest.png"),
    ),
    (
        "vendor/openseadragon/images/previous_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/previous_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/previous_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/previous_hover.png"),
    ),
    (
        "vendor/openseadragon/images/previous_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/previous_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/previous_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/previous_rest.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateleft_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateleft_hover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateleft_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/rotateleft_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateleft_rest.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateright_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateright_hover.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateright_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/rotateright_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/rotateright_rest.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomin_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomin_hover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomin_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/zoomin_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomin_rest.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_grouphover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomout_grouphover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_hover.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomout_hover.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_pressed.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomout_pressed.png"),
    ),
    (
        "vendor/openseadragon/images/zoomout_rest.png",
        "image/png",
        include_bytes!("../../static/vendor/openseadragon/images/zoomout_rest.png"),
    ),
];

/// The imports of a module under `js/` that name a sibling file (`"./x.js"`), as (the quoted
/// specifier's byte range, the imported file's path).
fn relative_imports(path: &str, bytes: &[u8]) -> Vec<(std::ops::Range<usize>, String)> {
    let Ok(text) = std::str::from_utf8(bytes) else { return Vec::new() };
    if !path.starts_with("js/") {
        return Vec::new();
    }
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let mut found = Vec::new();
    for keyword in ["from \"./", "import \"./"] {
        for (at, _) in text.match_indices(keyword) {
            let start = at + keyword.len() - 3; // the opening quote
            if let Some(len) = text[start + 1..].find('"') {
                let name = &text[start + 3..start + 1 + len];
                found.push((start..start + len + 2, format!("{dir}{name}")));
            }
        }
    }
    found.sort_by_key(|(range, _)| range.start);
    found
}

/// Each file's bytes as served, and each file's and directory's hash.
type Served = (HashMap<&'static str, Cow<'static, [u8]>>, HashMap<&'static str, String>);

/// Every file as served: modules with their relative imports rewritten (see the module
/// documentation), every other file as it is; with each file's hash and each directory's (over
/// its files, in path order).
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let short = |h: Sha256| hex::encode(h.finalize())[..12].to_string();
        let mut bytes: HashMap<&'static str, Cow<'static, [u8]>> = HashMap::new();
        let mut hashes: HashMap<&'static str, String> = HashMap::new();
        // Imported modules first: a module's bytes need its imports' hashes. Modules import only
        // modules listed in FILES, without cycles; a pass that settles nothing stops the loop.
        let mut pending: Vec<&(&str, &str, &[u8])> = FILES.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&&(path, _, raw)| {
                let imports = relative_imports(path, raw);
                if imports.iter().any(|(_, p)| !hashes.contains_key(p.as_str()) && FILES.iter().any(|f| f.0 == p)) {
                    return true;
                }
                let mut out = raw.to_vec();
                for (range, imported) in imports.iter().rev() {
                    let url = format!(
                        "\"/static/{}/{imported}\"",
                        hashes.get(imported.as_str()).map_or("missing", String::as_str)
                    );
                    out.splice(range.clone(), url.into_bytes());
                }
                hashes.insert(path, short(Sha256::new_with_prefix(&out)));
                bytes.insert(path, if imports.is_empty() { Cow::Borrowed(raw) } else { Cow::Owned(out) });
                false
            });
            if pending.len() == before {
                for &&(path, _, raw) in &pending {
                    hashes.insert(path, short(Sha256::new_with_prefix(raw)));
                    bytes.insert(path, Cow::Borrowed(raw));
                }
                break;
            }
        }
        let mut sorted: Vec<&str> = FILES.iter().map(|(p, _, _)| *p).collect();
        sorted.sort();
        for (path, _, _) in FILES {
            if let Some((dir, _)) = path.rsplit_once('/') {
                let dir = &path[..=dir.len()];
                if !hashes.contains_key(dir) {
                    let mut h = Sha256::new();
                    for p in sorted.iter().filter(|p| p.starts_with(dir)) {
                        h.update(p.as_bytes());
                        h.update(&bytes[p]);
                    }
                    hashes.insert(dir, short(h));
                }
            }
        }
        (bytes, hashes)
    })
}

fn hashes() -> &'static HashMap<&'static str, String> {
    &served().1
}

pub fn get(path: &str) -> Option<Asset> {
    let (bytes, _) = served();
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .and_then(|(p, mime, _)| Some(Asset { mime, bytes: bytes.get(p)?.as_ref() }))
}

/// Whether `hash` is the current hash of `path` or of a directory holding it.
pub fn is_current(path: &str, hash: &str) -> bool {
    let h = hashes();
    h.get(path).is_some_and(|x| x == hash)
        || path.match_indices('/').any(|(i, _)| h.get(&path[..=i]).is_some_and(|x| x == hash))
}

/// The URL of a front-end file (a path under `static/`, e.g. `css/app.css`).
pub fn url(path: &str) -> String {
    format!("/static/{}/{path}", hashes().get(path).map(String::as_str).unwrap_or("missing"))
}

/// The URL prefix of a directory under `static/` (ending in `/`), for scripts that load files
/// from it by name.
pub fn dir_url(dir: &str) -> String {
    format!("/static/{}/{dir}", hashes().get(dir).map(String::as_str).unwrap_or("missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_and_directory_has_a_url_that_serves_it() {
        for (path, _, bytes) in FILES {
            let url = url(path);
            let (hash, rest) = url.trim_start_matches("/static/").split_once('/').unwrap();
            assert_eq!(rest, *path);
            assert_eq!(hash.len(), 12);
            assert!(is_current(path, hash), "{url}");
            if relative_imports(path, bytes).is_empty() {
                assert_eq!(get(path).unwrap().bytes, *bytes);
            }
        }
        let dir = dir_url("vendor/openseadragon/images/");
        let hash = dir.trim_start_matches("/static/").split('/').next().unwrap();
        assert!(is_current("vendor/openseadragon/images/button_rest.png", hash));
        assert!(!is_current("css/app.css", hash), "a directory's hash covers only its files");
        assert!(!is_current("css/app.css", "000000000000"));
        assert!(url("no/such.js").contains("/missing/"));
    }

    #[test]
    fn modules_import_their_siblings_by_hashed_url() {
        let served = std::str::from_utf8(get("js/workbench.js").unwrap().bytes).unwrap();
        for sibling in ["js/slideview.js", "js/regions.js"] {
            assert!(served.contains(&format!("\"{}\"", url(sibling))), "{sibling} in {}", &served[..400]);
        }
        assert!(!served.contains("\"./"), "no relative import is left");
        let viewer = std::str::from_utf8(get("js/viewer.js").unwrap().bytes).unwrap();
        assert!(viewer.contains(&url("js/slideview.js")));
        // The hash is that of the bytes served.
        let hash = url("js/workbench.js").split('/').nth(2).unwrap().to_string();
        assert_eq!(hash, hex::encode(Sha256::digest(served.as_bytes()))[..12]);
        let imports =
            relative_imports("js/x.js", b"import { a } from \"./a.js\";\nimport \"./b.js\";\nvar s = \"./c.js\";");
        let paths: Vec<&str> = imports.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(paths, ["js/a.js", "js/b.js"]);
        assert!(relative_imports("vendor/x.js", b"import \"./a.js\";").is_empty(), "only our own modules");
    }
}
