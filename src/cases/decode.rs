//! Decoding of uploaded hospital spreadsheets (CSV): encoding detection (UTF-8, CP949, Latin-1),
//! delimiter sniffing and strict parsing under size limits, with errors that can be shown as is.

use std::borrow::Cow;
use std::collections::HashSet;

use encoding_rs::DecoderResult;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// How much of the start of the file the control-character test looks at.
const BINARY_SAMPLE: usize = 8 * 1024;

crate::db::text_enum! {
    /// The text encodings hospital exports come in.
    #[derive(Default)]
    pub enum Encoding {
        #[default]
        Utf8 = "utf-8",
        /// CP949 (windows-949), a superset of EUC-KR.
        Cp949 = "cp949",
        /// Latin-1, decoded as windows-1252 (its superset, as browsers and Excel do).
        Latin1 = "latin-1",
    }
}

impl Encoding {
    /// Parses a user-given name: utf-8/utf8, cp949/euc-kr/euckr/ks_c_5601-1987,
    /// latin-1/latin1/iso-8859-1/windows-1252 (case-insensitive). Unknown -> None.
    pub fn parse_name(name: &str) -> Option<Encoding> {
        match name.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "cp949" | "euc-kr" | "euckr" | "ks_c_5601-1987" => Some(Encoding::Cp949),
            "latin-1" | "latin1" | "iso-8859-1" | "windows-1252" => Some(Encoding::Latin1),
            _ => None,
        }
    }
}

/// Size limits for one uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_cell_bytes: usize,
    pub max_rows: usize,
    /// Header columns: a REDCap project's widest exports have a few thousand.
    pub max_columns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 200 * 1024 * 1024, max_cell_bytes: 1024 * 1024, max_rows: 2_000_000, max_columns: 5_000 }
    }
}

/// A parsed table: header names (trimmed, trailing empty header columns removed) and data rows
/// (each exactly as wide as the header), plus what was detected.
#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Rows,
    pub encoding: Encoding,
    pub delimiter: u8,
}

/// Data rows of equal width, every cell's text in one buffer: a 100,000 × 30 export is its text
/// plus 4 bytes a cell, where a `String` per cell cost three times the file (issue 20).
#[derive(Clone)]
pub struct Rows {
    width: usize,
    text: String,
    /// Where each cell ends in `text`, row after row.
    ends: Vec<u32>,
}

impl Rows {
    /// Rows `width` cells wide whose text will take at most `text` bytes.
    fn with_capacity(width: usize, text: usize) -> Self {
        Rows { width: width.max(1), text: String::with_capacity(text), ends: Vec::new() }
    }

    /// Appends a row of `width` cells; `None` once the text outgrows the offsets (4 GiB).
    fn push(&mut self, cells: &[&str]) -> Option<()> {
        for cell in cells {
            self.text.push_str(cell);
            self.ends.push(u32::try_from(self.text.len()).ok()?);
        }
        Some(())
    }

    pub fn len(&self) -> usize {
        self.ends.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Row `i` (0-based); panics past the end, as indexing a slice does.
    pub fn get(&self, i: usize) -> Row<'_> {
        let ends = &self.ends[i * self.width..(i + 1) * self.width];
        let start = if i == 0 { 0 } else { self.ends[i * self.width - 1] };
        Row { text: &self.text, start, ends }
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|r| r.iter().collect::<Vec<_>>())).finish()
    }
}

/// Rows compare with the cells as strings (the tests' expectations).
#[cfg(test)]
impl PartialEq<Vec<Vec<String>>> for Rows {
    fn eq(&self, other: &Vec<Vec<String>>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(r, o)| r.iter().eq(o.iter().map(String::as_str)))
    }
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub struct Row<'a> {
    text: &'a str,
    start: u32,
    ends: &'a [u32],
}

impl<'a> Row<'a> {
    /// Cell `i`; panics past the row's width, as indexing a slice does.
    pub fn cell(&self, i: usize) -> &'a str {
        let start = if i == 0 { self.start } else { self.ends[i - 1] };
        &self.text[start as usize..self.ends[i] as usize]
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        (i < self.ends.len()).then(|| self.cell(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let row = *self;
        (0..row.ends.len()).map(move |i| row.cell(i))
    }
}

/// Every failure names the file and, where it applies, the 1-based data row (not counting the
/// header) and the column name, so the message can be shown to the user as is.
///
/// Row numbers count the rows kept in [`Table::rows`] (blank rows are skipped and not counted; a
/// quoted multi-line row counts once), so `row N` is `rows[N - 1]` for code reporting on the table
/// later. Row 0 is the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{file}: the file is empty")]
    Empty { file: String },
    #[error("{file}: the file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { file: String, size: usize, limit: usize },
    #[error("{file}: this is not a text (CSV) file: it contains binary data near byte {offset}")]
    Binary { file: String, offset: usize },
    #[error("{file}: the text is not valid {encoding} (near byte {offset}); give the right --encoding")]
    BadEncoding { file: String, encoding: String, offset: usize },
    #[error("{file}: row {row}: has {found} columns but the header has {expected}")]
    Ragged { file: String, row: usize, found: usize, expected: usize },
    #[error("{file}: row {row}, column {column}: the cell is {size} bytes, over the limit of {limit}")]
    CellTooLarge { file: String, row: usize, column: String, size: usize, limit: usize },
    #[error("{file}: row {row}: broken quoting ({detail})")]
    BadQuoting { file: String, row: usize, detail: String },
    #[error("{file}: more than {limit} rows")]
    TooManyRows { file: String, limit: usize },
    #[error("{file}: the header has {found} columns, over the limit of {limit}")]
    TooManyColumns { file: String, found: usize, limit: usize },
    #[error("{file}: the header row has an empty column name (column {index})")]
    EmptyHeader { file: String, index: usize },
    #[error("{file}: column {name} appears twice in the header")]
    DuplicateHeader { file: String, name: String },
}

/// Decodes bytes to text: strip a UTF-8 BOM; with `forced` use that encoding (BadEncoding for
/// invalid bytes in UTF-8/CP949); otherwise detect: valid UTF-8 -> Utf8; else valid CP949 containing
/// at least one Hangul syllable -> Cp949; else Latin1 (windows-1252 decoding never fails). A UTF-8
/// BOM without `forced` declares UTF-8: invalid bytes after it are BadEncoding, not a silent Latin-1.
///
/// Before decoding, rejects binary data: a NUL byte anywhere, or (in the first 8 KiB) more than 10%
/// of bytes being control characters other than \t \n \r. Also checks `limits.max_bytes` and
/// emptiness (0 bytes, or only whitespace/BOM). Offsets in errors are into `bytes`, BOM included.
pub fn decode<'b>(
    file: &str,
    bytes: &'b [u8],
    forced: Option<Encoding>,
    limits: &Limits,
) -> Result<(Cow<'b, str>, Encoding), DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge { file: file.to_owned(), size: bytes.len(), limit: limits.max_bytes });
    }
    let (body, base) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, UTF8_BOM.len()),
        None => (bytes, 0),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty { file: file.to_owned() });
    }
    if let Some(offset) = binary_offset(body) {
        return Err(DecodeError::Binary { file: file.to_owned(), offset: base + offset });
    }

    let declared = forced.or(if base > 0 { Some(Encoding::Utf8) } else { None });
    if let Some(encoding) = declared {
        return match decode_as(body, encoding) {
            Ok(text) => Ok((text, encoding)),
            Err(offset) => Err(DecodeError::BadEncoding {
                file: file.to_owned(),
                encoding: encoding.as_str().to_owned(),
                offset: base + offset,
            }),
        };
    }

    // UTF-8 is read in place: a copy of a large file would double its memory.
    if let Ok(text) = std::str::from_utf8(body) {
        return Ok((Cow::Borrowed(text), Encoding::Utf8));
    }
    // Latin-1 text often decodes as CP949 by accident (any high byte pair is a plausible
    // character), so CP949 also needs real Hangul to be believed.
    if let Ok(text) = decode_strict(encoding_rs::EUC_KR, body) {
        if text.chars().any(is_hangul_syllable) {
            return Ok((Cow::Owned(text), Encoding::Cp949));
        }
    }
    Ok((Cow::Owned(decode_latin1(body)), Encoding::Latin1))
}

/// Picks the delimiter among ',', ';', '\t' from the header line (the first line outside quotes
/// with any content): the one occurring most often outside quotes; ties prefer ',' then ';' then
/// '\t'. Returns ',' when none occurs.
pub fn sniff_delimiter(text: &str) -> u8 {
    const CANDIDATES: [u8; 3] = [b',', b';', b'\t'];
    let mut counts = [0usize; 3];
    let mut in_quotes = false;
    // Leading lines of only whitespace/delimiters are skipped, as read_table skips such rows.
    let mut content = false;
    for b in text.bytes() {
        match b {
            // A doubled quote toggles twice, so escaped quotes need no special case.
            b'"' => {
                in_quotes = !in_quotes;
                content = true;
            }
            _ if in_quotes => {}
            b'\n' | b'\r' => {
                if content {
                    break;
                }
                counts = [0; 3];
            }
            b',' => counts[0] += 1,
            b';' => counts[1] += 1,
            b'\t' => counts[2] += 1,
            b' ' => {}
            _ => content = true,
        }
    }
    let mut best = 0;
    for i in 1..CANDIDATES.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    CANDIDATES[best]
}

/// The whole path: limits, decoding, delimiter sniffing and parsing into a [`Table`].
///
/// Rules: trailing empty header columns are dropped, and the cells under them must be empty;
/// entirely blank rows are skipped (also before the header); every other row must be exactly as
/// wide as the header (Ragged); header names are trimmed and must be non-empty and unique; cells
/// are trimmed and limited to `max_cell_bytes`; quoting must be well-formed (the `csv` crate
/// silently accepts an unterminated quote or text after a closing quote, so each record's raw text
/// is re-scanned); at most `max_rows` data rows.
pub fn read_table(file: &str, bytes: &[u8], forced: Option<Encoding>, limits: &Limits) -> Result<Table, DecodeError> {
    let (text, encoding) = decode(file, bytes, forced, limits)?;
    let delimiter = sniff_delimiter(&text);
    let mut records = Records::new(file, &text, delimiter);

    // The header: the first record that is not blank.
    let (header, raw_width) = loop {
        if !records.next(0, None)? {
            // Only blank rows (e.g. ",,,"): nothing to import.
            return Err(DecodeError::Empty { file: file.to_owned() });
        }
        let cells = records.cells();
        if !is_blank(&cells) {
            let raw_width = cells.len();
            // Checked before any data row is read: each row would be as wide.
            if raw_width > limits.max_columns {
                return Err(DecodeError::TooManyColumns {
                    file: file.to_owned(),
                    found: raw_width,
                    limit: limits.max_columns,
                });
            }
            break (header_names(file, cells.iter().map(|c| c.to_string()).collect())?, raw_width);
        }
    };

    // Cells are trimmed pieces of the text: it bounds their total size.
    let mut rows = Rows::with_capacity(header.len(), text.len());
    loop {
        // The number this row gets if it is kept.
        let row = rows.len() + 1;
        if !records.next(row, Some(&header))? {
            break;
        }
        let cells = records.cells();
        if is_blank(&cells) {
            continue;
        }
        if rows.len() == limits.max_rows {
            return Err(DecodeError::TooManyRows { file: file.to_owned(), limit: limits.max_rows });
        }
        let cells = fit_row(&cells, header.len(), raw_width).map_err(|found| DecodeError::Ragged {
            file: file.to_owned(),
            row,
            found,
            expected: header.len(),
        })?;
        if let Some((i, cell)) = cells.iter().enumerate().find(|(_, c)| c.len() > limits.max_cell_bytes) {
            return Err(DecodeError::CellTooLarge {
                file: file.to_owned(),
                row,
                column: header[i].clone(),
                size: cell.len(),
                limit: limits.max_cell_bytes,
            });
        }
        rows.push(cells).ok_or_else(|| DecodeError::TooLarge {
            file: file.to_owned(),
            size: bytes.len(),
            limit: u32::MAX as usize,
        })?;
    }
    Ok(Table { header, rows, encoding, delimiter })
}

/// Offset of the first byte that makes `body` look binary, if it does.
fn binary_offset(body: &[u8]) -> Option<usize> {
    if let Some(i) = body.iter().position(|&b| b == 0) {
        return Some(i);
    }
    let sample = &body[..body.len().min(BINARY_SAMPLE)];
    let controls = sample.iter().filter(|&&b| is_binary_control(b)).count();
    if controls * 10 > sample.len() {
        return sample.iter().position(|&b| is_binary_control(b));
    }
    None
}

/// ASCII control characters that do not occur in text files. C1 bytes (0x80..=0x9F) are not
/// counted: they are ordinary lead/trail bytes in UTF-8 and CP949.
fn is_binary_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F
}

fn is_hangul_syllable(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// Decodes `bytes` (BOM already stripped) as `encoding`; on invalid input, the offset of the
/// first malformed byte.
fn decode_as(bytes: &[u8], encoding: Encoding) -> Result<Cow<'_, str>, usize> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| e.valid_up_to()),
        Encoding::Cp949 => decode_strict(encoding_rs::EUC_KR, bytes).map(Cow::Owned),
        Encoding::Latin1 => Ok(Cow::Owned(decode_latin1(bytes))),
    }
}

fn decode_latin1(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned()
}

/// Decodes without replacement characters. Uses a `Decoder` rather than
/// `decode_without_bom_handling_and_without_replacement` because only the decoder tells where the
/// first malformed sequence is, which the error message reports.
fn decode_strict(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, usize> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(decoder_capacity(&decoder, bytes.len()));
    let mut read = 0;
    loop {
        let (result, n) = decoder.decode_to_string_without_replacement(&bytes[read..], &mut out, true);
        read += n;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => out.reserve(decoder_capacity(&decoder, bytes.len() - read)),
            // `read` includes the malformed sequence and the bytes consumed after it.
            DecoderResult::Malformed(bad, after) => return Err(read - usize::from(bad) - usize::from(after)),
        }
    }
}

fn decoder_capacity(decoder: &encoding_rs::Decoder, n: usize) -> usize {
    // Overflow only for absurd lengths; the output-full branch then grows the buffer step by step.
    decoder.max_utf8_buffer_length_without_replacement(n).unwrap_or(n).max(16)
}

fn is_blank(cells: &[&str]) -> bool {
    cells.iter().all(|c| c.is_empty())
}

/// Trims the header, drops trailing empty names and checks the rest are non-empty and unique.
fn header_names(file: &str, cells: Vec<String>) -> Result<Vec<String>, DecodeError> {
    let mut names = cells;
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(DecodeError::EmptyHeader { file: file.to_owned(), index: i + 1 });
    }
    let mut seen = HashSet::new();
    for name in &names {
        if !seen.insert(name.as_str()) {
            return Err(DecodeError::DuplicateHeader { file: file.to_owned(), name: name.clone() });
        }
    }
    Ok(names)
}

/// Fits a data row to the header: cells under dropped (empty, trailing) header columns must be
/// empty and are removed; the rest must match the header width. On failure, the number of columns
/// the row was found to have.
fn fit_row<'c, 'a>(cells: &'c [&'a str], width: usize, raw_width: usize) -> Result<&'c [&'a str], usize> {
    if cells.len() > raw_width {
        return Err(cells.len());
    }
    if let Some(last) = cells.iter().rposition(|c| !c.is_empty()) {
        if last >= width {
            return Err(last + 1);
        }
    }
    if cells.len() < width {
        return Err(cells.len());
    }
    Ok(&cells[..width])
}

/// The `csv` reader plus what is needed to check each record's raw text.
struct Records<'a> {
    file: &'a str,
    text: &'a [u8],
    delimiter: u8,
    reader: csv::Reader<&'a [u8]>,
    record: csv::StringRecord,
}

impl<'a> Records<'a> {
    fn new(file: &'a str, text: &'a str, delimiter: u8) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            // Flexible so that ragged rows reach fit_row, which reports them with the row number.
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        Records { file, text: text.as_bytes(), delimiter, reader, record: csv::StringRecord::new() }
    }

    /// Reads the next record (false at the end), after checking its quoting. `row` and `header`
    /// are only used in error messages.
    fn next(&mut self, row: usize, header: Option<&[String]>) -> Result<bool, DecodeError> {
        let bad_quoting = |detail: String| DecodeError::BadQuoting { file: self.file.to_owned(), row, detail };
        let start = position(&self.reader);
        match self.reader.read_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(bad_quoting(e.to_string())),
        }
        let end = position(&self.reader);
        let raw = self.text.get(start..end).unwrap_or_default();
        if let Err((field, problem)) = check_quoting(raw, self.delimiter) {
            let column = match header.and_then(|h| h.get(field)) {
                Some(name) => name.clone(),
                None => (field + 1).to_string(),
            };
            return Err(bad_quoting(format!("{problem} in column {column}")));
        }
        Ok(true)
    }

    /// The last record's cells, trimmed.
    fn cells(&self) -> Vec<&str> {
        self.record.iter().map(str::trim).collect()
    }
}

fn position(reader: &csv::Reader<&[u8]>) -> usize {
    // The text is in memory, so its length (and any offset into it) fits in usize.
    usize::try_from(reader.position().byte()).unwrap_or(usize::MAX)
}

/// Where [`scan_quoting`] is within a record.
#[derive(Clone, Copy, PartialEq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the first of a doubled quote or the closing one.
    QuoteInQuoted,
    AfterClosingQuote,
}

/// Checks the quoting of one record's raw text (RFC 4180, plus spaces allowed after a closing
/// quote). A quote inside an unquoted field (`5" tall`) is accepted as a literal, as `csv` does.
/// On failure, the 0-based field index and what is wrong.
fn check_quoting(raw: &[u8], delimiter: u8) -> Result<(), (usize, &'static str)> {
    // Up to the first quote every byte is unquoted text or a separator: the scan starts there,
    // with the state and field index those bytes leave (most records have few quotes or none).
    let Some(first_quote) = raw.iter().position(|&b| b == b'"') else { return Ok(()) };
    let before = &raw[..first_quote];
    let line = before.iter().rposition(|&b| b == b'\n' || b == b'\r').map_or(0, |i| i + 1);
    let field = before[line..].iter().filter(|&&b| b == delimiter).count();
    let state = match before.last() {
        Some(&b) if b != delimiter && b != b'\n' && b != b'\r' => QuoteState::Unquoted,
        _ => QuoteState::FieldStart,
    };
    scan_quoting(&raw[first_quote..], delimiter, field, state)
}

/// The quoting check's state machine over `bytes`, starting in `state` at 0-based `field`.
fn scan_quoting(
    bytes: &[u8],
    delimiter: u8,
    mut field: usize,
    mut state: QuoteState,
) -> Result<(), (usize, &'static str)> {
    use QuoteState as State;
    for &b in bytes {
        let end_of_field = b == delimiter || b == b'\n' || b == b'\r';
        state = match state {
            State::Quoted => match b {
                b'"' => State::QuoteInQuoted,
                _ => State::Quoted,
            },
            State::QuoteInQuoted if b == b'"' => State::Quoted,
            _ if end_of_field => {
                if b == delimiter {
                    field += 1;
                } else {
                    field = 0;
                }
                State::FieldStart
            }
            State::FieldStart if b == b'"' => State::Quoted,
            State::FieldStart | State::Unquoted => State::Unquoted,
            State::QuoteInQuoted | State::AfterClosingQuote if b == b' ' || b == b'\t' => State::AfterClosingQuote,
            State::QuoteInQuoted | State::AfterClosingQuote => {
                return Err((field, "unexpected text after a closing quote"));
            }
        };
    }
    if state == State::Quoted {
        return Err((field, "a quoted field is never closed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quoting_check_skipping_to_the_first_quote_agrees_with_a_scan_from_the_start() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(5);
        let alphabet = b"a ,;\"\n\r\t";
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let raw: Vec<u8> = (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            for delimiter in [b',', b';', b'\t'] {
                assert_eq!(
                    check_quoting(&raw, delimiter),
                    scan_quoting(&raw, delimiter, 0, QuoteState::FieldStart),
                    "{:?} with {:?}",
                    String::from_utf8_lossy(&raw),
                    delimiter as char
                );
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Table, DecodeError> {
        read_table("visits.csv", bytes, None, &Limits::default())
    }

    fn table(bytes: &[u8]) -> Table {
        match read(bytes) {
            Ok(t) => t,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(bytes: &[u8]) -> DecodeError {
        match read(bytes) {
            Ok(t) => panic!("expected an error, got {t:?}"),
            Err(e) => e,
        }
    }

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    fn cp949(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(text);
        assert!(!unmappable);
        bytes.into_owned()
    }

    #[test]
    fn utf8_without_bom() {
        let t = table("id,name\n1,José\n2,김민지\n".as_bytes());
        assert_eq!(t.encoding, Encoding::Utf8);
        assert_eq!(t.delimiter, b',');
        assert_eq!(t.header, strings(&["id", "name"]));
        assert_eq!(t.rows, vec![strings(&["1", "José"]), strings(&["2", "김민지"])]);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let t = table(b"\xEF\xBB\xBFid,name\n1,Ann\n");
        assert_eq!(t.encoding, Encoding::Utf8);
        assert_eq!(t.header, strings(&["id", "name"]));
        assert_eq!(t.rows, vec![strings(&["1", "Ann"])]);
    }

    #[test]
    fn bom_declares_utf8() {
        // Invalid UTF-8 after a BOM is an error, not a silent fallback to Latin-1.
        let e = err(b"\xEF\xBB\xBFname\nJos\xe9\n");
        assert_eq!(e, DecodeError::BadEncoding { file: "visits.csv".into(), encoding: "utf-8".into(), offset: 3 + 8 });
    }

    #[test]
    fn cp949_is_detected() {
        let bytes = cp949("환자번호,이름\n1,김민지\n");
        let t = table(&bytes);
        assert_eq!(t.encoding, Encoding::Cp949);
        assert_eq!(t.header, strings(&["환자번호", "이름"]));
        assert_eq!(t.rows, vec![strings(&["1", "김민지"])]);
    }

    #[test]
    fn latin1_is_detected() {
        let t = table(b"name\nJos\xe9\n");
        assert_eq!(t.encoding, Encoding::Latin1);
        assert_eq!(t.rows, vec![strings(&["José"])]);
    }

    #[test]
    fn forced_encoding_is_used() {
        let limits = Limits::default();
        // UTF-8 bytes read as Latin-1, because the user said so.
        let (text, enc) = decode("a.csv", "Jos\u{e9}".as_bytes(), Some(Encoding::Latin1), &limits).unwrap();
        assert_eq!((text.as_ref(), enc), ("Jos\u{c3}\u{a9}", Encoding::Latin1));
        // CP949 without any Hangul (here Hanja) is not detected, but can be forced.
        let bytes = cp949("id,單位\n");
        assert_eq!(read_table("a.csv", &bytes, None, &limits).unwrap().encoding, Encoding::Latin1);
        let t = read_table("a.csv", &bytes, Some(Encoding::Cp949), &limits).unwrap();
        assert_eq!(t.encoding, Encoding::Cp949);
        assert_eq!(t.header, strings(&["id", "單位"]));
    }

    #[test]
    fn forced_utf8_on_cp949_is_bad_encoding() {
        // "환" is C8 AF, which happens to be a valid 2-byte UTF-8 sequence; "자" (C0 DA) is not.
        let bytes = cp949("id,환자\n");
        let e = read_table("a.csv", &bytes, Some(Encoding::Utf8), &Limits::default()).unwrap_err();
        assert_eq!(e, DecodeError::BadEncoding { file: "a.csv".into(), encoding: "utf-8".into(), offset: 5 });
        assert_eq!(e.to_string(), "a.csv: the text is not valid utf-8 (near byte 5); give the right --encoding");
    }

    #[test]
    fn forced_cp949_on_invalid_bytes_reports_offset() {
        // 0xE9 followed by a newline is not a valid CP949 sequence.
        let e = read_table("a.csv", b"name\nJos\xe9\n", Some(Encoding::Cp949), &Limits::default()).unwrap_err();
        assert_eq!(e, DecodeError::BadEncoding { file: "a.csv".into(), encoding: "cp949".into(), offset: 8 });
    }

    #[test]
    fn semicolon_and_tab_delimiters() {
        let t = table(b"id;weight;note\n1;3,5;a, b\n");
        assert_eq!(t.delimiter, b';');
        assert_eq!(t.rows, vec![strings(&["1", "3,5", "a, b"])]);
        let t = table(b"id\tname\n1\tSmith, J\n");
        assert_eq!(t.delimiter, b'\t');
        assert_eq!(t.rows, vec![strings(&["1", "Smith, J"])]);
    }

    #[test]
    fn sniff_counts_outside_quotes_and_breaks_ties() {
        assert_eq!(sniff_delimiter("\"a;b;c\",d,e\n1,2,3"), b',');
        assert_eq!(sniff_delimiter("a,b;c\n"), b',');
        assert_eq!(sniff_delimiter("a;b\tc\n"), b';');
        assert_eq!(sniff_delimiter("single\n1\n"), b',');
        // The first line with content is the header.
        assert_eq!(sniff_delimiter("\n  \na;b;c\n1,2"), b';');
    }

    #[test]
    fn crlf_line_endings() {
        let t = table(b"id,name\r\n1,Ann\r\n2,Bob\r\n");
        assert_eq!(t.header, strings(&["id", "name"]));
        assert_eq!(t.rows, vec![strings(&["1", "Ann"]), strings(&["2", "Bob"])]);
    }

    #[test]
    fn quoted_newline_and_doubled_quote() {
        let t = table(b"id,note\r\n1,\"line one\r\nsaid \"\"hi\"\"\"\r\n2,\"a,b\"\r\n");
        assert_eq!(t.rows, vec![strings(&["1", "line one\r\nsaid \"hi\""]), strings(&["2", "a,b"])]);
    }

    #[test]
    fn cells_are_trimmed_and_literal_quotes_kept() {
        let t = table(b" id , height \n 1 , 5\" 2\n");
        assert_eq!(t.header, strings(&["id", "height"]));
        assert_eq!(t.rows, vec![strings(&["1", "5\" 2"])]);
    }

    #[test]
    fn trailing_empty_columns_are_dropped() {
        let t = table(b"a,b,c,,\n1,2,3,,\n4,5,6\n7,8,9,\n");
        assert_eq!(t.header, strings(&["a", "b", "c"]));
        assert_eq!(t.rows, vec![strings(&["1", "2", "3"]), strings(&["4", "5", "6"]), strings(&["7", "8", "9"])]);
    }

    #[test]
    fn value_under_dropped_header_is_ragged() {
        let e = err(b"a,b,,\n1,2,,\n3,4,,x\n");
        assert_eq!(e, DecodeError::Ragged { file: "visits.csv".into(), row: 2, found: 4, expected: 2 });
    }

    #[test]
    fn blank_rows_are_skipped() {
        let t = table(b"\n,,\na,b\n1,2\n\n , \n3,4\n,\n\n   \n");
        assert_eq!(t.header, strings(&["a", "b"]));
        assert_eq!(t.rows, vec![strings(&["1", "2"]), strings(&["3", "4"])]);
    }

    #[test]
    fn ragged_row_number_counts_multiline_rows_once() {
        let e = err(b"id,note\n1,\"two\nlines\"\n2,ok\n3\n");
        assert_eq!(e, DecodeError::Ragged { file: "visits.csv".into(), row: 3, found: 1, expected: 2 });
        assert_eq!(e.to_string(), "visits.csv: row 3: has 1 columns but the header has 2");
        let e = err(b"id,note\n1,a\n2,b,c\n");
        assert_eq!(e, DecodeError::Ragged { file: "visits.csv".into(), row: 2, found: 3, expected: 2 });
    }

    #[test]
    fn unterminated_quote_is_bad_quoting() {
        let e = err(b"a,b\n\"x,y\n");
        assert!(matches!(&e, DecodeError::BadQuoting { row: 1, detail, .. } if detail.contains("never closed")), "{e}");
        let e = err(b"a,b\n1,2\n3,\"x\n4,5\n");
        assert!(matches!(&e, DecodeError::BadQuoting { row: 2, detail, .. } if detail.contains("column b")), "{e}");
    }

    #[test]
    fn text_after_closing_quote_is_bad_quoting() {
        let e = err(b"a,b\n1,\"He said \"hi\" to me\"\n");
        assert!(matches!(&e, DecodeError::BadQuoting { row: 1, .. }), "{e}");
        // Spaces after a closing quote are tolerated.
        let t = table(b"a,b\n\"1\" ,\"2\"  \n");
        assert_eq!(t.rows, vec![strings(&["1", "2"])]);
    }

    #[test]
    fn binary_data_is_rejected() {
        let e = err(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        assert_eq!(e, DecodeError::Binary { file: "visits.csv".into(), offset: 8 });
        // Many control characters but no NUL.
        let e = err(b"ab\x01\x02\x03\x04cd\nef\n");
        assert_eq!(e, DecodeError::Binary { file: "visits.csv".into(), offset: 2 });
        // A stray control character in a text file is fine.
        let t = table(b"a,b\n1,x\x0by\n2,z\n3,w\n");
        assert_eq!(t.rows.len(), 3);
    }

    #[test]
    fn empty_files() {
        for bytes in [&b""[..], b"  \r\n\n", b"\xEF\xBB\xBF", b"\xEF\xBB\xBF\n", b",,\n,\n"] {
            assert_eq!(err(bytes), DecodeError::Empty { file: "visits.csv".into() }, "{bytes:?}");
        }
        // A header without data rows is a valid (empty) table.
        let t = table(b"a,b\n");
        assert!(t.rows.is_empty());
    }

    #[test]
    fn cell_too_large_names_the_column() {
        let mut bytes = b"id,report\n1,short\n2,".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
        bytes.push(b'\n');
        let limits = Limits { max_cell_bytes: 1024 * 1024, ..Limits::default() };
        let e = read_table("visits.csv", &bytes, None, &limits).unwrap_err();
        assert_eq!(
            e,
            DecodeError::CellTooLarge {
                file: "visits.csv".into(),
                row: 2,
                column: "report".into(),
                size: 2 * 1024 * 1024,
                limit: 1024 * 1024
            }
        );
    }

    #[test]
    fn file_too_large_is_checked_first() {
        let limits = Limits { max_bytes: 10, ..Limits::default() };
        // Binary and over the limit: the size is reported.
        let e = read_table("big.csv", b"\0\0\0\0\0\0\0\0\0\0\0", None, &limits).unwrap_err();
        assert_eq!(e, DecodeError::TooLarge { file: "big.csv".into(), size: 11, limit: 10 });
        assert_eq!(e.to_string(), "big.csv: the file is 11 bytes, over the limit of 10 bytes");
    }

    #[test]
    fn too_many_rows() {
        let limits = Limits { max_rows: 2, ..Limits::default() };
        assert_eq!(read_table("a.csv", b"a\n1\n2\n\n", None, &limits).unwrap().rows.len(), 2);
        let e = read_table("a.csv", b"a\n1\n2\n3\n", None, &limits).unwrap_err();
        assert_eq!(e, DecodeError::TooManyRows { file: "a.csv".into(), limit: 2 });
    }

    #[test]
    fn too_many_columns_are_refused_before_the_rows_are_read() {
        let limits = Limits { max_columns: 3, ..Limits::default() };
        assert_eq!(read_table("a.csv", b"a,b,c\n1,2,3\n", None, &limits).unwrap().header.len(), 3);
        let e = read_table("a.csv", b"a,b,c,d\n1,2,3,4\n", None, &limits).unwrap_err();
        assert_eq!(e.to_string(), "a.csv: the header has 4 columns, over the limit of 3");
    }

    #[test]
    fn header_names_must_be_unique_and_non_empty() {
        let e = err(b"id, name ,name\n1,a,b\n");
        assert_eq!(e, DecodeError::DuplicateHeader { file: "visits.csv".into(), name: "name".into() });
        let e = err(b"id,,name\n1,a,b\n");
        assert_eq!(e, DecodeError::EmptyHeader { file: "visits.csv".into(), index: 2 });
    }

    #[test]
    fn error_messages_name_the_file() {
        let limits = Limits { max_bytes: 4, ..Limits::default() };
        let errors = [
            read_table("site-3.csv", b"", None, &Limits::default()),
            read_table("site-3.csv", b"a,b\n1,2\n", None, &limits),
            read_table("site-3.csv", b"\0", None, &Limits::default()),
            read_table("site-3.csv", b"a,b\n1\n", None, &Limits::default()),
            read_table("site-3.csv", b"a,b\n\"1,2\n", None, &Limits::default()),
            read_table("site-3.csv", b"a,a\n", None, &Limits::default()),
            read_table("site-3.csv", b",a\n", None, &Limits::default()),
        ];
        for e in errors {
            let message = e.unwrap_err().to_string();
            assert!(message.starts_with("site-3.csv: "), "{message}");
        }
    }

    #[test]
    fn encoding_names() {
        for (name, enc) in [
            ("UTF-8", Encoding::Utf8),
            ("utf8", Encoding::Utf8),
            ("cp949", Encoding::Cp949),
            ("EUC-KR", Encoding::Cp949),
            ("euckr", Encoding::Cp949),
            ("ks_c_5601-1987", Encoding::Cp949),
            ("Latin-1", Encoding::Latin1),
            ("latin1", Encoding::Latin1),
            ("ISO-8859-1", Encoding::Latin1),
            ("windows-1252", Encoding::Latin1),
        ] {
            assert_eq!(Encoding::parse_name(name), Some(enc), "{name}");
            assert_eq!(Encoding::parse_name(enc.as_str()), Some(enc));
        }
        assert_eq!(Encoding::parse_name("utf-16"), None);
        assert_eq!(Encoding::Latin1.as_str(), "latin-1");
    }

    #[test]
    fn large_cp949_input_decodes() {
        // Exercises the decoder's buffer sizing on more than one chunk of work.
        let text = "환자번호,이름\n".to_string() + &"1,김민지\n".repeat(50_000);
        let t = table(&cp949(&text));
        assert_eq!(t.encoding, Encoding::Cp949);
        assert_eq!(t.rows.len(), 50_000);
    }
}
