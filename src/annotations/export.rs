//! Exports of a study's reads: CSV (one row per read with every slide-level field, the table a
//! statistician takes to R or Excel) and QuPath GeoJSON (one file per slide per reader).

use std::path::{Path, PathBuf};

use super::reads::{self, Read};
use super::schema::Definition;
use super::{geojson, schema};
use crate::db::Conn;
use crate::error::{Error, Result};

/// Columns before the schema's fields.
pub const FIXED_COLUMNS: [&str; 10] = [
    "campaign",
    "slide",
    "reader",
    "assistance",
    "position",
    "status",
    "schema_version",
    "region_count",
    "started_at",
    "first_submitted_at",
];

use crate::export::time_cell as time;

/// The CSV header and rows of these reads under the schema.
pub fn csv_rows(def: &Definition, reads: &[Read]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = FIXED_COLUMNS.iter().map(|c| c.to_string()).chain(def.fields.iter().map(|f| f.name.clone())).collect();
    let rows = reads
        .iter()
        .map(|r| {
            let mut row = vec![
                r.campaign.clone(),
                r.slide.clone(),
                r.reader.clone(),
                r.assistance.to_string(),
                r.position.to_string(),
                r.status.to_string(),
                r.schema_version.map(|v| v.to_string()).unwrap_or_default(),
                r.region_count.to_string(),
                time(r.started_at),
                time(r.submitted_at),
            ];
            row.extend(def.fields.iter().map(|f| r.value(&f.name)));
            row
        })
        .collect();
    (header, rows)
}

/// Writes the study's reads to `out_dir`: `reads.csv`, or `<campaign>/<slide>/<reader>.geojson`
/// for every read with regions. Returns the files written.
pub fn export(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    format: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let def = schema::current(conn, study_id)?.map(|s| s.definition()).unwrap_or_default();
    let all = reads::of_study(conn, study_id)?;
    let io = |e: std::io::Error, p: &Path| Error::Internal(anyhow::anyhow!("writing {}: {e}", p.display()));
    std::fs::create_dir_all(out_dir).map_err(|e| io(e, out_dir))?;
    match format {
        "csv" => {
            let path = out_dir.join("reads.csv");
            let file = std::fs::File::create(&path).map_err(|e| io(e, &path))?;
            let (header, rows) = csv_rows(&def, &all);
            crate::export::write_rows(file, header, rows).map_err(Error::Internal)?;
            Ok(vec![path])
        }
        "geojson" => {
            let mut written = Vec::new();
            for r in all.iter().filter(|r| r.region_count > 0) {
                let dir = out_dir.join(safe(&r.campaign)).join(safe(&r.slide));
                std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
                let path = dir.join(format!("{}.geojson", safe(&r.reader)));
                let file = std::fs::File::create(&path).map_err(|e| io(e, &path))?;
                geojson::write(&reads::regions(conn, r.id)?, file).map_err(|e| io(e, &path))?;
                written.push(path);
            }
            Ok(written)
        }
        other => Err(Error::invalid("format", format!("{other:?} is not csv or geojson"))),
    }
}

/// A campaign, slide or user name as a file name: anything but letters, digits, `-`, `_` and
/// `.` becomes `_` (campaign names are free text).
fn safe(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_become_safe_file_names() {
        assert_eq!(super::safe("First read / 2026"), "First_read___2026");
        assert_eq!(super::safe("../x"), "_.._x");
    }
}
