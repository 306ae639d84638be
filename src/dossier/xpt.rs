//! SAS transport (XPORT) version 5 files, the format the FDA's data standards require for
//! submitted datasets (SAS Institute, TS-140 "The record layout of a data set in SAS transport
//! (XPORT) format"): 80-byte records; a library header, a member header, one 140-byte NAMESTR per
//! variable, then the observations, numbers as 8-byte IBM System/360 floating point, text padded
//! with blanks. Variable names have at most 8 characters and labels 40; a column whose values
//! are all numbers is numeric, any other is text of at most 200 bytes.

use std::collections::BTreeSet;
use std::io::Write;

/// Longest text variable: longer values are cut at a character boundary and reported.
pub const MAX_TEXT: usize = 200;

/// How a dataset column became an XPORT variable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Variable {
    pub column: String,
    pub name: String,
    pub label: String,
    pub numeric: bool,
    pub length: usize,
    /// Values longer than `MAX_TEXT` bytes, cut in the .xpt (complete in the CSV).
    pub cut_values: usize,
}

/// A deterministic 8-character name: upper-case letters, digits and `_`, starting with a letter
/// or `_`; on a clash, the first characters and a counter (2 digits, 3 from the 100th clash:
/// always 8 characters at most).
fn xpt_name(column: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base: String =
        column.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, '_');
    }
    let mut name: String = base.chars().take(8).collect();
    let mut n = 1;
    while taken.contains(&name) {
        let digits = if n < 100 { 2 } else { 3 };
        name = format!("{}{n:0digits$}", base.chars().take(8 - digits).collect::<String>());
        n += 1;
    }
    taken.insert(name.clone());
    name
}

fn ascii_fit(s: &str, width: usize) -> Vec<u8> {
    let mut b: Vec<u8> = s.bytes().take(width).collect();
    b.resize(width, b' ');
    b
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// IEEE double → IBM System/360 double (hex float, base 16, excess-64 exponent); 0 → all zero
/// bytes; a missing value is `.` (0x2E) then zeros.
pub fn ibm_double(x: Option<f64>) -> [u8; 8] {
    let Some(x) = x.filter(|v| v.is_finite()) else {
        return [0x2E, 0, 0, 0, 0, 0, 0, 0];
    };
    if x == 0.0 {
        return [0; 8];
    }
    let sign = if x < 0.0 { 0x80u8 } else { 0 };
    let mut m = x.abs();
    let mut exp: i32 = 64;
    while m >= 1.0 {
        m /= 16.0;
        exp += 1;
    }
    while m < 1.0 / 16.0 {
        m *= 16.0;
        exp -= 1;
    }
    if exp > 127 {
        return [sign | 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    }
    if exp < 0 {
        return [0; 8];
    }
    // 56-bit fraction, rounded.
    let frac = (m * 2f64.powi(56)).round() as u64;
    let frac = frac.min((1u64 << 56) - 1);
    let mut out = [0u8; 8];
    out[0] = sign | exp as u8;
    out[1..].copy_from_slice(&frac.to_be_bytes()[1..]);
    out
}

fn header(out: &mut impl Write, kind: &str, tail: &str) -> std::io::Result<()> {
    let rec = format!("HEADER RECORD*******{kind:<8}HEADER RECORD!!!!!!!{tail:<30}");
    out.write_all(&ascii_fit(&rec, 80))
}

/// What one pass over the rows learns about each column: numeric or text, longest value, values
/// over `MAX_TEXT` bytes. Rows can then be written in a second pass (`Writer`), so a dataset of
/// any size streams from its source without being held in memory.
pub struct Describer {
    columns: Vec<(String, String)>,
    numeric: Vec<bool>,
    seen: Vec<bool>,
    longest: Vec<usize>,
    cut: Vec<usize>,
}

impl Describer {
    pub fn new(columns: &[(String, String)]) -> Describer {
        let n = columns.len();
        Describer {
            columns: columns.to_vec(),
            numeric: vec![true; n],
            seen: vec![false; n],
            longest: vec![0; n],
            cut: vec![0; n],
        }
    }

    pub fn push(&mut self, row: &[String]) {
        for (j, cell) in row.iter().enumerate().take(self.columns.len()) {
            let v = cell.trim();
            if !v.is_empty() {
                self.seen[j] = true;
                if self.numeric[j] && crate::stats::frame::parse_number(v).is_none() {
                    self.numeric[j] = false;
                }
            }
            self.longest[j] = self.longest[j].max(cell.len());
            if cell.len() > MAX_TEXT {
                self.cut[j] += 1;
            }
        }
    }

    pub fn finish(self) -> Vec<Variable> {
        let mut taken = BTreeSet::new();
        self.columns
            .iter()
            .enumerate()
            .map(|(j, (col, label))| {
                let numeric = self.seen[j] && self.numeric[j];
                Variable {
                    column: col.clone(),
                    name: xpt_name(col, &mut taken),
                    label: cut(label, 40).to_string(),
                    numeric,
                    length: if numeric { 8 } else { self.longest[j].clamp(1, MAX_TEXT) },
                    cut_values: if numeric { 0 } else { self.cut[j] },
                }
            })
            .collect()
    }
}

/// Writes a dataset's header, then its rows one by one, then the padding.
pub struct Writer<'a, W: Write> {
    out: &'a mut W,
    vars: &'a [Variable],
    row_len: usize,
    written: usize,
}

impl<'a, W: Write> Writer<'a, W> {
    /// The library, member and variable headers of one dataset (`dataset`: the member name).
    pub fn start(out: &'a mut W, dataset: &str, dataset_label: &str, vars: &'a [Variable]) -> std::io::Result<Self> {
        // A fixed date keeps the file deterministic (the dossier's bytes depend only on the data).
        let date = "01JAN80:00:00:00";
        header(out, "LIBRARY", "000000000000000000000000000000")?;
        out.write_all(&ascii_fit(
            &format!("{:<8}{:<8}{:<8}{:<8}{:<8}{:24}{date}", "SAS", "SAS", "SASLIB", "9.4", "Linux", ""),
            80,
        ))?;
        out.write_all(&ascii_fit(&format!("{date}{:64}", ""), 80))?;
        header(out, "MEMBER", "000000000000000001600000000140")?;
        header(out, "DSCRPTR", "000000000000000000000000000000")?;
        let ds = cut(dataset, 8).to_ascii_uppercase();
        out.write_all(&ascii_fit(
            &format!("{:<8}{ds:<8}{:<8}{:<8}{:<8}{:24}{date}", "SAS", "SASDATA", "9.4", "Linux", ""),
            80,
        ))?;
        out.write_all(&ascii_fit(&format!("{date}{:16}{:<40}{:<8}", "", cut(dataset_label, 40), ""), 80))?;
        header(out, "NAMESTR", &format!("000000{:04}00000000000000000000", vars.len()))?;
        let mut names = Vec::new();
        let mut pos = 0usize;
        for (i, v) in vars.iter().enumerate() {
            let mut rec = Vec::with_capacity(140);
            rec.extend_from_slice(&(if v.numeric { 1u16 } else { 2u16 }).to_be_bytes());
            rec.extend_from_slice(&0u16.to_be_bytes());
            rec.extend_from_slice(&(v.length as u16).to_be_bytes());
            rec.extend_from_slice(&((i + 1) as u16).to_be_bytes());
            rec.extend_from_slice(&ascii_fit(&v.name, 8));
            rec.extend_from_slice(&ascii_fit(&v.label, 40));
            rec.extend_from_slice(&ascii_fit("", 8)); // format
            rec.extend_from_slice(&[0; 8]); // format length, decimals, justification, fill
            rec.extend_from_slice(&ascii_fit("", 8)); // informat
            rec.extend_from_slice(&[0; 4]); // informat length, decimals
            rec.extend_from_slice(&(pos as u32).to_be_bytes());
            rec.resize(140, 0);
            names.extend(rec);
            pos += v.length;
        }
        names.resize(names.len().div_ceil(80) * 80, b' ');
        out.write_all(&names)?;
        header(out, "OBS", "000000000000000000000000000000")?;
        Ok(Writer { out, vars, row_len: pos, written: 0 })
    }

    pub fn row(&mut self, row: &[String]) -> std::io::Result<()> {
        // A short row's missing cells are missing values (every observation has the full length).
        for (j, v) in self.vars.iter().enumerate() {
            let cell = row.get(j).map(String::as_str).unwrap_or("");
            if v.numeric {
                self.out.write_all(&ibm_double(crate::stats::frame::parse_number(cell)))?;
            } else {
                let text = cut(cell, MAX_TEXT);
                let mut b = text.as_bytes().to_vec();
                b.resize(v.length, b' ');
                self.out.write_all(&b)?;
            }
        }
        self.written += self.row_len;
        Ok(())
    }

    /// Pads the last record to 80 bytes.
    pub fn finish(self) -> std::io::Result<()> {
        let pad = (80 - self.written % 80) % 80;
        self.out.write_all(&vec![b' '; pad])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibm_floats_match_the_published_layout() {
        // TS-140 / well-known values: 1 = 41 10 00…, -1 = C1 10 00…, 0.5 = 40 80 00…, 100 = 42 64 00…
        assert_eq!(ibm_double(Some(1.0)), [0x41, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ibm_double(Some(-1.0)), [0xC1, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ibm_double(Some(0.5)), [0x40, 0x80, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ibm_double(Some(100.0)), [0x42, 0x64, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ibm_double(None), [0x2E, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ibm_double(Some(0.0)), [0; 8]);
    }

    #[test]
    fn names_are_eight_characters_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(xpt_name("phenotype__annotator1", &mut taken), "PHENOTYP");
        assert_eq!(xpt_name("phenotype__annotator2", &mut taken), "PHENOT01");
        assert_eq!(xpt_name("1st", &mut taken), "_1ST");
        assert_eq!(cut("héllo", 2), "h");
    }
}
