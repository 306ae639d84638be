//! The data of an analysis: a polars data frame of text columns (a CSV file read as written, or
//! columns the app builds from the database), the rows complete in the columns an analysis uses,
//! and typed values from them with errors that name the column and the 1-based data row.

use std::path::Path;

use polars::prelude::*;

/// Bad input to an analysis: a missing column, a value of the wrong kind, too few categories, no
/// data. The message is one line, names the column and row where there is one, and is meant for
/// the user (the CLI prints it and exits 2; the app shows it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct StatsError(pub String);

pub type StatsResult<T> = Result<T, StatsError>;

pub fn bad(message: impl Into<String>) -> StatsError {
    StatsError(message.into())
}

/// Reads a CSV file (header row, comma-separated) with every column as text, so that each value
/// is checked by the analysis that uses it, as the contract asks (docs/statistics.md).
pub fn read_csv(path: &Path) -> StatsResult<DataFrame> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("{name}: {e}")))?;
    if meta.len() == 0 {
        return Err(bad(format!("{name}: the file is empty (no header, no data rows)")));
    }
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| bad(format!("{name}: not a readable CSV file: {}", first_line(&e.to_string()))))?;
    if df.height() == 0 {
        return Err(bad(format!("{name}: the file has a header but no data rows")));
    }
    Ok(df)
}

/// Reads CSV bytes (as `read_csv`) — the app's datasets, which are exported as these bytes.
pub fn read_csv_bytes(bytes: Vec<u8>) -> StatsResult<DataFrame> {
    let cursor = std::io::Cursor::new(bytes);
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(cursor)
        .finish()
        .map_err(|e| bad(format!("the dataset is not readable as CSV: {}", first_line(&e.to_string()))))?;
    Ok(df)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// A data frame of text columns from (name, values) pairs; `None` or an empty string is a
/// missing value. This is how the app hands database rows to the same functions as the CLI.
pub fn text_frame(columns: Vec<(&str, Vec<Option<String>>)>) -> StatsResult<DataFrame> {
    let cols = columns.into_iter().map(|(name, values)| Column::new(name.into(), values)).collect::<Vec<_>>();
    DataFrame::new_infer_height(cols).map_err(|e| bad(format!("building the data: {e}")))
}

/// The rows of a frame that have a value in every column an analysis uses. Rows with an empty
/// (or whitespace-only) cell in any of them are dropped and counted as missing.
pub struct Rows<'a> {
    /// Each used column's trimmed values, present or not, for every row of the frame (read in
    /// one sequential pass: indexing a multi-chunk polars column row by row costs a chunk lookup
    /// per cell).
    columns: Vec<(&'a str, Vec<Option<&'a str>>)>,
    /// 0-based indices of the complete rows, in file order.
    pub index: Vec<usize>,
    pub n_missing: usize,
}

/// The string column `name`, or an error listing the columns there are.
pub(super) fn text_column<'a>(df: &'a DataFrame, name: &str) -> StatsResult<&'a StringChunked> {
    let col = df.column(name).map_err(|_| {
        let have: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
        bad(format!("column \"{name}\" not found (the columns are: {})", have.join(", ")))
    })?;
    col.str().map_err(|_| bad(format!("column \"{name}\" is not text")))
}

fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

impl<'a> Rows<'a> {
    /// The complete rows of `df` in `used` (each must exist).
    pub fn complete(df: &'a DataFrame, used: &[&'a str]) -> StatsResult<Rows<'a>> {
        let mut columns = Vec::with_capacity(used.len());
        for name in used {
            columns.push((*name, text_column(df, name)?.iter().map(present).collect::<Vec<_>>()));
        }
        let height = df.height();
        let mut keep = vec![true; height];
        for (_, col) in &columns {
            for (k, v) in keep.iter_mut().zip(col) {
                *k &= v.is_some();
            }
        }
        let index: Vec<usize> = (0..height).filter(|&i| keep[i]).collect();
        let n_missing = height - index.len();
        Ok(Rows { columns, index, n_missing })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn column(&self, name: &str) -> &[Option<&'a str>] {
        self.columns.iter().find(|(n, _)| *n == name).map(|(_, c)| c.as_slice()).unwrap_or_else(|| {
            // Every caller names a column it passed to `complete`; this is a programming error.
            unreachable!("column {name} was not selected")
        })
    }

    /// The trimmed text values of a selected column in the complete rows.
    pub fn text(&self, name: &str) -> Vec<&'a str> {
        let col = self.column(name);
        self.index.iter().map(|&i| col[i].unwrap_or("")).collect()
    }

    /// The numbers of a selected column in the complete rows; a value that is not a finite
    /// number is an error naming the column and its 1-based data row.
    pub fn numbers(&self, name: &str) -> StatsResult<Vec<f64>> {
        let col = self.column(name);
        self.index
            .iter()
            .map(|&i| {
                let v = col[i].unwrap_or("");
                parse_number(v).ok_or_else(|| bad(format!("column \"{name}\", row {}: \"{v}\" is not a number", i + 1)))
            })
            .collect()
    }

    /// Event indicators: 1/0/true/false, case-insensitive (1 = event).
    pub fn events(&self, name: &str) -> StatsResult<Vec<bool>> {
        let col = self.column(name);
        self.index
            .iter()
            .map(|&i| {
                let v = col[i].unwrap_or("");
                parse_event(v).ok_or_else(|| {
                    bad(format!("column \"{name}\", row {}: \"{v}\" is not an event value (1/0/true/false)", i + 1))
                })
            })
            .collect()
    }

    /// The 1-based data row of the `k`-th complete row (for messages).
    pub fn row_number(&self, k: usize) -> usize {
        self.index[k] + 1
    }
}

pub fn parse_number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_event(v: &str) -> Option<bool> {
    let v = v.trim();
    if v == "1" || v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The value of a confidence level: a proportion strictly between 0 and 1.
pub fn check_level(level: f64) -> StatsResult<f64> {
    if level > 0.0 && level < 1.0 {
        Ok(level)
    } else {
        Err(bad(format!("--level {level}: a confidence level is a proportion in (0, 1), e.g. 0.95")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        let col = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        text_frame(vec![("a", col(&["1", " 2 ", "", "x"])), ("b", col(&["0", "1", "1", "true"]))]).unwrap()
    }

    #[test]
    fn incomplete_rows_are_dropped_and_counted() {
        let df = frame();
        let rows = Rows::complete(&df, &["a", "b"]).unwrap();
        assert_eq!(rows.index, vec![0, 1, 3]);
        assert_eq!(rows.n_missing, 1);
        assert_eq!(rows.text("a"), vec!["1", "2", "x"]);
        assert_eq!(rows.events("b").unwrap(), vec![false, true, true]);
    }

    #[test]
    fn errors_name_the_column_and_the_row() {
        let df = frame();
        let rows = Rows::complete(&df, &["a"]).unwrap();
        assert_eq!(rows.numbers("a").unwrap_err().0, "column \"a\", row 4: \"x\" is not a number");
        let e = Rows::complete(&df, &["c"]).err().unwrap();
        assert!(e.0.contains("column \"c\" not found") && e.0.contains("a, b"), "{e}");
        assert!(check_level(1.0).is_err() && check_level(0.9).is_ok());
    }

    #[test]
    fn csv_files_read_as_text_and_empty_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "x,y\n01,a\n,b\n").unwrap();
        let df = read_csv(&p).unwrap();
        let rows = Rows::complete(&df, &["x", "y"]).unwrap();
        assert_eq!((rows.text("x"), rows.n_missing), (vec!["01"], 1));
        std::fs::write(&p, "").unwrap();
        assert!(read_csv(&p).unwrap_err().0.contains("empty"));
        std::fs::write(&p, "x,y\n").unwrap();
        assert!(read_csv(&p).unwrap_err().0.contains("no data rows"));
    }
}
