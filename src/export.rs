//! The CSV form of each record: one header and one row shape per type, written in one place
//! for the web downloads and the CLI.

use std::io::Write;

pub trait CsvRecord {
    const HEADER: &'static [&'static str];
    fn record(&self) -> Vec<String>;
}

/// Cells starting with = + - @, a tab or a carriage return are prefixed with `'` so that a
/// spreadsheet never runs them as formulas (numbers such as -1.5 stay as they are). The
/// characters are OWASP's list ("CSV Injection"). Every CSV a person may open goes through this.
pub fn defuse_formula(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err() {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// A time as every CSV writes it (`2026-12-07 14:30:00`, UTC); empty when there is none.
pub fn time_cell(t: Option<chrono::NaiveDateTime>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// Writes the header and one row per item.
pub fn write_csv<'a, T: CsvRecord + 'a>(out: impl Write, items: impl IntoIterator<Item = &'a T>) -> anyhow::Result<()> {
    write_rows(out, T::HEADER, items.into_iter().map(CsvRecord::record))
}

/// Writes a header and rows whose shape is only known at run time (the case dataset).
pub fn write_rows<H: AsRef<[u8]>>(
    out: impl Write,
    header: impl IntoIterator<Item = H>,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header)?;
    for row in rows {
        w.write_record(row.iter().map(|c| defuse_formula(c)))?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(&'static str);
    impl CsvRecord for Row {
        const HEADER: &'static [&'static str] = &["v"];
        fn record(&self) -> Vec<String> {
            vec![self.0.to_string()]
        }
    }

    #[test]
    fn formulas_are_defused_numbers_are_not() {
        let mut buf = Vec::new();
        let rows = [Row("=1+1"), Row("-1.5"), Row("@SUM(A1)"), Row("\t=1+1"), Row("\r=1+1"), Row("plain")];
        write_csv(&mut buf, &rows).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "v\n'=1+1\n-1.5\n'@SUM(A1)\n'\t=1+1\n\"'\r=1+1\"\nplain\n");
    }
}
