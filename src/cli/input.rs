//! The one way commands read their input files and write their output files: `-` is standard
//! input, and every error names the file.

use std::io::{BufRead, Read};
use std::path::Path;

use super::Failure;

/// The name a message uses for `path` ("stdin" for `-`).
pub fn name(path: &Path) -> String {
    if is_stdin(path) {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The whole of an input file, or of standard input for `-`.
pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let result = if is_stdin(path) {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map(|_| ())
    };
    result.map_err(|e| Failure::Input(format!("{}: {e}", name(path))))?;
    Ok(bytes)
}

/// Creates (or truncates) an output file.
pub fn create(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::create(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// One line of standard input without its line ending (a password given with `--password-stdin`).
pub fn password_stdin() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Input(format!("reading stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
