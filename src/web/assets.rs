//! Front-end files (`static/`), compiled into the binary so the server runs from any directory,
//! and served under content-hashed URLs: `url("js/app.js")` is `/static/<hash>/js/app.js`, where
//! the hash is the file's SHA-256 (12 hex digits). A file's URL changes exactly when its bytes
//! do, so browsers may cache it for good and never run old code after an upgrade.
//!
//! A directory that a script reads files from by prefix (OpenSeadragon's button images) gets the
//! hash of all its files together: `dir_url("vendor/openseadragon/images/")`.

use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One front-end file.
pub struct Asset {
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

const FILES: &[(&str, &str, &[u8])] = &[
    ("css/app.css", "text/css; charset=utf-8", include_bytes!("../../static/css/app.css")),
    ("js/app.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/app.js")),
    (
        "vendor/htmx/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx/htmx.min.js"),
    ),
    ("js/viewer.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/viewer.js")),
    ("js/heatmap.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/heatmap.js")),
    ("js/workbench.js", "text/javascript; charset=utf-8", include_bytes!("../../static/js/workbench.js")),
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

/// Each file's hash, and each directory's (over its files, in path order).
fn hashes() -> &'static HashMap<&'static str, String> {
    static HASHES: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        let short = |h: Sha256| hex::encode(h.finalize())[..12].to_string();
        let mut map: HashMap<&'static str, String> =
            FILES.iter().map(|(path, _, bytes)| (*path, short(Sha256::new_with_prefix(bytes)))).collect();
        let mut sorted: Vec<&(&str, &str, &[u8])> = FILES.iter().collect();
        sorted.sort_by_key(|(path, _, _)| *path);
        for (path, _, _) in FILES {
            if let Some((dir, _)) = path.rsplit_once('/') {
                let dir = &path[..=dir.len()];
                map.entry(dir).or_insert_with(|| {
                    let mut h = Sha256::new();
                    for (p, _, bytes) in sorted.iter().filter(|(p, _, _)| p.starts_with(dir)) {
                        h.update(p.as_bytes());
                        h.update(bytes);
                    }
                    short(h)
                });
            }
        }
        map
    })
}

pub fn get(path: &str) -> Option<Asset> {
    FILES.iter().find(|(p, _, _)| *p == path).map(|(_, mime, bytes)| Asset { mime, bytes })
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
            assert_eq!(get(path).unwrap().bytes, *bytes);
        }
        let dir = dir_url("vendor/openseadragon/images/");
        let hash = dir.trim_start_matches("/static/").split('/').next().unwrap();
        assert!(is_current("vendor/openseadragon/images/button_rest.png", hash));
        assert!(!is_current("css/app.css", hash), "a directory's hash covers only its files");
        assert!(!is_current("css/app.css", "000000000000"));
        assert!(url("no/such.js").contains("/missing/"));
    }
}
