//! Importing a site's case spreadsheet: read and decode it, map its columns to the dictionary,
//! validate every cell, de-identify (identifier actions, free-text scrubbing) — all before
//! anything is stored — then commit every row in one transaction, audited per case.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::decode::{self, Encoding, Limits};
use super::deid::{self, StudyKey};
use super::dictionary::{DeidAction, FieldDef, Validator};
use super::events::{Design, RecordKey};
use super::records::FormStatus;
use super::scrub::Scrubber;
use super::CaseStatus;
use crate::audit::{self, canonical, Action, Change, Entity};
use crate::auth::permissions::SiteScope;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{case_imports, cases};
use crate::db::{self, now, write_tx, Conn};
use crate::error::{Error, Result};
use crate::studies::sites::Site;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The site of every row, for a file without a `site` column.
    pub site: Option<String>,
    pub encoding: Option<Encoding>,
    pub limits: Limits,
    /// Medical-record / accession number patterns for free-text scrubbing (defaults if empty).
    pub mrn_patterns: Vec<String>,
    /// The sites the importer may import to (site staff: their own); a row of another is refused.
    pub scope: SiteScope,
}

/// One problem, by data row (1-based, header not counted; shown with the spreadsheet's row number
/// too, where the header is row 1) and column. Never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub row: Option<usize>,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Data rows count from 1 after the header; a spreadsheet shows the header as row 1.
        match (&self.row, &self.column) {
            (Some(r), Some(c)) => write!(f, "row {r}, column {c}: {} (spreadsheet row {})", self.message, r + 1),
            (Some(r), None) => write!(f, "row {r}: {} (spreadsheet row {})", self.message, r + 1),
            (None, Some(c)) => write!(f, "column {c}: {}", self.message),
            (None, None) => write!(f, "{}", self.message),
        }
    }
}

/// A de-identified row, ready to store: its values written once, as stored and as audited.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedCase {
    pub row: usize,
    pub site_code: String,
    pub subject_key: String,
    /// The subject's record the row holds (the base record in a classic study).
    #[serde(default)]
    pub record: RecordKey,
    /// The row's form statuses (`<form>_complete`), by form.
    #[serde(default)]
    pub form_status: BTreeMap<String, u8>,
    pub status: CaseStatus,
    /// The values as `cases.data` holds them: a JSON object, keys sorted.
    pub data: String,
    /// The values and the status in canonical form (RFC 8785): the audit record of a new case.
    /// Not saved with a preview: re-made from `data` when it is taken back, so the two agree.
    #[serde(skip)]
    pub created: String,
}

/// What de-identification did: counts only, never the values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeidReport {
    pub rows_read: usize,
    /// Per field, per rule (`pseudonymise`, `shift-date`, `drop`, `scrub:EMAIL`, …): how many values.
    pub fields: BTreeMap<String, BTreeMap<String, usize>>,
    /// Columns read past (form statuses of forms the dictionary does not have).
    pub ignored_columns: Vec<String>,
    pub encoding: Encoding,
    pub delimiter: String,
}

impl DeidReport {
    fn count(&mut self, field: &str, rule: &str, n: usize) {
        // Looked up before inserting: called for most cells, it allocates only for a new pair.
        if !self.fields.contains_key(field) {
            self.fields.insert(field.to_string(), BTreeMap::new());
        }
        let Some(rules) = self.fields.get_mut(field) else { return };
        match rules.get_mut(rule) {
            Some(c) => *c += n,
            None => {
                rules.insert(rule.to_string(), n);
            }
        }
    }
    pub fn total(&self) -> usize {
        self.fields.values().flat_map(|m| m.values()).sum()
    }
    /// Adds another block of rows' counts.
    fn merge(&mut self, other: DeidReport) {
        for (field, rules) in other.fields {
            for (rule, n) in rules {
                self.count(&field, &rule, n);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedImport {
    pub study_id: crate::studies::StudyId,
    pub file_sha256: String,
    pub file_size: usize,
    pub rows: Vec<PreparedCase>,
    pub report: DeidReport,
    pub problems: Vec<Problem>,
    /// The design the rows were read with (its SHA-256): the commit refuses them if it changed.
    #[serde(default)]
    pub design_sha256: String,
    /// How many rows are records of a later event or a repeating form (not a subject's first).
    #[serde(default)]
    pub later_rows: usize,
}

impl PreparedImport {
    /// "1 problem", "3 problems".
    pub fn problem_count(&self) -> String {
        match self.problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// What the rows are: "12 cases", or "48 records of 12 subjects" in a study with events or
    /// repeating forms.
    pub fn what(&self) -> String {
        let subjects: HashSet<&str> = self.rows.iter().map(|r| r.subject_key.as_str()).collect();
        if self.later_rows == 0 && subjects.len() == self.rows.len() {
            format!("{} cases", self.rows.len())
        } else {
            format!("{} records of {} subjects", self.rows.len(), subjects.len())
        }
    }

    /// The problems listed to the user (the first [`SHOWN_PROBLEMS`]) and how many more there
    /// are: a file refused on every row must not become a page of megabytes.
    pub fn shown_problems(&self) -> (&[Problem], usize) {
        let n = self.problems.len().min(SHOWN_PROBLEMS);
        (&self.problems[..n], self.problems.len() - n)
    }
}

/// How many problems a refused import lists; the count says how many there are in all.
pub const SHOWN_PROBLEMS: usize = 200;

enum Column {
    Site,
    Status,
    Field(usize),
    Checkbox(usize, String),
    /// REDCap's `redcap_event_name`, `redcap_repeat_instrument`, `redcap_repeat_instance`.
    Event,
    RepeatInstrument,
    RepeatInstance,
    /// REDCap's `redcap_data_access_group`: the site, where the file has no `site` column.
    Dag,
    /// A form's status, `<form>_complete`.
    FormStatus(String),
    Ignored,
}

fn problem(row: Option<usize>, column: Option<&str>, message: impl Into<String>) -> Problem {
    Problem { row, column: column.map(str::to_string), message: message.into() }
}

/// Reads, validates and de-identifies a file. Pure: nothing is written anywhere.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    study_id: crate::studies::StudyId,
    dictionary: &[FieldDef],
    design: &Design,
    sites: &[Site],
    key: &StudyKey,
    file: &str,
    bytes: &[u8],
    opts: &ImportOptions,
) -> PreparedImport {
    let mut out = PreparedImport {
        study_id,
        file_sha256: hex::encode(Sha256::digest(bytes)),
        file_size: bytes.len(),
        rows: Vec::new(),
        report: DeidReport::default(),
        problems: Vec::new(),
        design_sha256: design.sha256(),
        later_rows: 0,
    };
    let fields: Vec<&FieldDef> = dictionary.iter().filter(|f| f.holds_data()).collect();
    let Some(subject_field) = fields.first() else {
        out.problems.push(problem(None, None, "the study has no data dictionary yet: import one first"));
        return out;
    };
    let table = match decode::read_table(file, bytes, opts.encoding, &opts.limits) {
        Ok(t) => t,
        Err(e) => {
            out.problems.push(problem(None, None, e.to_string()));
            return out;
        }
    };
    out.report.encoding = table.encoding;
    out.report.delimiter = match table.delimiter {
        b'\t' => "tab".into(),
        d => (d as char).to_string(),
    };
    let forms: HashSet<&str> = dictionary.iter().map(|f| f.form_name.as_str()).collect();

    // Map every column, refusing the ones the dictionary does not define. Their cells are never
    // read; the rest of the file is still checked, so that one dry run lists every problem.
    let mut columns = Vec::with_capacity(table.header.len());
    for h in &table.header {
        let name = h.trim();
        let col = if name.eq_ignore_ascii_case("site") {
            Column::Site
        } else if name.eq_ignore_ascii_case("status") {
            Column::Status
        } else if let Some(i) =
            fields.iter().position(|f| f.name == name && f.field_type != crate::cases::dictionary::FieldType::Checkbox)
        {
            Column::Field(i)
        } else if let Some((base, code)) = name.split_once("___") {
            match fields
                .iter()
                .position(|f| f.name == base && f.field_type == crate::cases::dictionary::FieldType::Checkbox)
            {
                Some(i) if fields[i].choices().iter().any(|c| c.code == code) => Column::Checkbox(i, code.to_string()),
                Some(_) => {
                    out.problems.push(problem(
                        None,
                        Some(name),
                        format!("'{code}' is not a choice of checkbox field {base}"),
                    ));
                    Column::Ignored
                }
                None => {
                    out.problems.push(problem(
                        None,
                        Some(name),
                        "not in the data dictionary: the file is refused (this column is never stored)",
                    ));
                    Column::Ignored
                }
            }
        } else if name == "redcap_event_name" && !design.is_longitudinal() {
            // A classic study reads past the events of a file with one event (REDCap's classic
            // projects export none; a file with several is refused as duplicate subjects).
            out.report.ignored_columns.push(name.to_string());
            Column::Ignored
        } else if name == "redcap_event_name" {
            Column::Event
        } else if name == "redcap_repeat_instrument" {
            Column::RepeatInstrument
        } else if name == "redcap_repeat_instance" {
            Column::RepeatInstance
        } else if name == "redcap_data_access_group" {
            Column::Dag
        } else if let Some(form) = name.strip_suffix("_complete").filter(|f| forms.contains(f)) {
            Column::FormStatus(form.to_string())
        } else if name.ends_with("_complete") {
            out.report.ignored_columns.push(name.to_string());
            Column::Ignored
        } else {
            out.problems.push(problem(
                None,
                Some(name),
                "not in the data dictionary: the file is refused (this column is never stored)",
            ));
            Column::Ignored
        };
        columns.push(col);
    }
    let column_problems = out.problems.len();
    let subject_col = columns.iter().position(|c| matches!(c, Column::Field(0)));
    let Some(subject_col) = subject_col else {
        out.problems.push(problem(
            None,
            Some(&subject_field.name),
            format!(
                "the file has no column '{}' (the site's subject identifier, the dictionary's first field)",
                subject_field.name
            ),
        ));
        return out;
    };
    // REDCap's data access group is the site where the file has no site column of its own.
    let site_col = columns
        .iter()
        .position(|c| matches!(c, Column::Site))
        .or_else(|| columns.iter().position(|c| matches!(c, Column::Dag)));
    let key_cols = [Column::Event, Column::RepeatInstrument, Column::RepeatInstance]
        .map(|k| columns.iter().position(|c| std::mem::discriminant(c) == std::mem::discriminant(&k)));
    let default_site = match (&opts.site, site_col) {
        (Some(code), _) => {
            let code = code.trim().to_uppercase();
            if !sites.iter().any(|s| s.code == code && s.retired_at.is_none()) {
                out.problems.push(problem(None, Some("site"), format!("{code} is not an active site of this study")));
            }
            Some(code)
        }
        (None, Some(_)) => None,
        (None, None) => {
            out.problems.push(problem(
                None,
                Some("site"),
                "the file has no 'site' (or 'redcap_data_access_group') column: choose the site of its cases",
            ));
            None
        }
    };
    if out.problems.len() > column_problems {
        return out;
    }

    // Names in identifier columns anywhere in the file are scrubbed from every free text.
    let mut names: Vec<&str> = Vec::new();
    for (ci, col) in columns.iter().enumerate() {
        if let Column::Field(i) = col {
            let f = fields[*i];
            // Names, addresses, record numbers: unvalidated identifier text (e-mail addresses and
            // phone numbers have detectors of their own).
            if (f.identifier || *i == 0)
                && f.field_type == crate::cases::dictionary::FieldType::Text
                && f.validation.is_empty()
            {
                names.extend(table.rows.iter().map(|r| r.cell(ci)).filter(|v| v.chars().count() >= 2));
            }
        }
    }
    let patterns =
        if opts.mrn_patterns.is_empty() { Scrubber::default_mrn_patterns() } else { opts.mrn_patterns.clone() };
    let scrubber = match Scrubber::new(&names, &patterns) {
        Ok(s) => s,
        Err(e) => {
            out.problems.push(problem(None, None, format!("scrubbing patterns: {e}")));
            return out;
        }
    };

    let validators: Vec<Validator> = fields.iter().map(|f| Validator::new(f)).collect();
    let cx = RowContext {
        fields: &fields,
        columns: &columns,
        header: &table.header,
        validators: &validators,
        design,
        // Which fields' text is scrubbed, decided once rather than per cell.
        scrubbed: fields.iter().map(|f| f.action == DeidAction::Keep && f.is_free_text()).collect(),
        scrubber: &scrubber,
        writer: RowWriter::new(&fields),
        key,
        refused: AtomicBool::new(false),
    };
    out.report.rows_read = table.rows.len();

    // Each row's site and subject key (blocks of rows on every core), then the duplicates in
    // file order, then every admitted row's cells (on every core again). Problems come out in
    // row order, as one pass would give them.
    let mut admissions: Vec<Admission> = in_blocks(table.rows.len(), |range| {
        range
            .map(|ri| {
                let row = table.rows.get(ri);
                let subject_raw = row.cell(subject_col).trim();
                if subject_raw.is_empty() {
                    return Admission::Refused("missing subject identifier".into(), subject_field.name.clone());
                }
                let site_code = match site_col.map(|c| row.cell(c).trim()) {
                    // A record no data access group was given: the site chosen for the file.
                    Some("") if default_site.is_some() => default_site.clone().unwrap_or_default(),
                    Some(cell) => cell.to_uppercase(),
                    None => default_site.clone().unwrap_or_default(),
                };
                if let (Some(chosen), Some(_)) = (&opts.site, site_col) {
                    if !site_code.eq_ignore_ascii_case(chosen.trim()) {
                        return Admission::Refused(
                            format!(
                                "the row's site is not {}, the site chosen for the file",
                                chosen.trim().to_uppercase()
                            ),
                            "site".into(),
                        );
                    }
                }
                match sites.iter().find(|s| s.code == site_code && s.retired_at.is_none()) {
                    None => {
                        let msg = if site_code.is_empty() {
                            "missing site".to_string()
                        } else {
                            format!("{site_code} is not an active site of this study")
                        };
                        return Admission::Refused(msg, "site".into());
                    }
                    Some(s) if !opts.scope.includes(s.id) => {
                        return Admission::Refused(out_of_scope(&site_code), "site".into());
                    }
                    Some(_) => {}
                }
                let cell = |c: Option<usize>| c.map_or("", |c| row.cell(c));
                // A file without events (a site's baseline spreadsheet) holds first-event records.
                let event = key_cols[0].map_or(design.base_event(1), |c| row.cell(c));
                let record = match design.record_key(event, cell(key_cols[1]), cell(key_cols[2])) {
                    Ok(k) => k,
                    Err((column, msg)) => return Admission::Refused(msg, column.into()),
                };
                let subject_key = key.subject_key(&site_code, subject_raw);
                Admission::Admitted(site_code, subject_key, record)
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let mut seen: HashMap<(&str, &RecordKey), usize> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut problems = Vec::new();
    for (ri, a) in admissions.iter().enumerate() {
        let r = ri + 1;
        match a {
            Admission::Refused(msg, column) => problems.push(problem(Some(r), Some(column), msg.as_str())),
            Admission::Admitted(_, subject_key, record) => {
                if let Some(first) = seen.insert((subject_key, record), r) {
                    let what = if design.is_base(record) && !design.is_longitudinal() {
                        let hint = if out.report.ignored_columns.iter().any(|c| c == "redcap_event_name") {
                            ": the file has several events per subject, define the study's events first"
                        } else {
                            ""
                        };
                        format!("duplicate subject (same as row {first}){hint}")
                    } else {
                        format!("duplicate record: {} of this subject is also row {first}", record.describe(design))
                    };
                    problems.push(problem(Some(r), Some(&subject_field.name), what));
                    duplicates.push(ri);
                }
            }
            Admission::Duplicate => {}
        }
    }
    drop(seen);
    for ri in duplicates {
        admissions[ri] = Admission::Duplicate;
    }
    if !problems.is_empty() {
        cx.refused.store(true, Ordering::Relaxed);
    }
    let blocks = in_blocks(table.rows.len(), |range| cx.rows(&table.rows, &admissions, range));
    for block in blocks {
        problems.extend(block.problems);
        out.rows.extend(block.rows);
        out.report.merge(block.report);
    }
    // Stable: a row's admission problem (and then no others) or its cells' problems, in order.
    problems.sort_by_key(|p| p.row);
    out.problems.extend(problems);
    if !out.problems.is_empty() {
        // A refused file is never stored.
        out.rows.clear();
    }
    out.later_rows = out.rows.iter().filter(|r| !design.is_base(&r.record)).count();
    out
}

/// A row's site and subject key, or why it is refused (message, column), or that it repeats an
/// earlier row's subject.
enum Admission {
    Admitted(String, String, RecordKey),
    Refused(String, String),
    Duplicate,
}

/// Runs `work` over blocks of `0..n` on every core (at least 1,000 rows a block), the results
/// in block order.
fn in_blocks<T: Send>(n: usize, work: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n / 1000).max(1);
    let size = n.div_ceil(threads);
    if threads == 1 {
        return vec![work(0..n)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                s.spawn(move || work(t * size..((t + 1) * size).min(n)))
            })
            .collect();
        // A block that panicked is a bug; its panic goes on in this thread.
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// What the cell pass shares between the rows.
struct RowContext<'a> {
    fields: &'a [&'a FieldDef],
    columns: &'a [Column],
    header: &'a [String],
    validators: &'a [Validator<'a>],
    design: &'a Design,
    scrubbed: Vec<bool>,
    scrubber: &'a Scrubber,
    writer: RowWriter<'a>,
    key: &'a StudyKey,
    /// Set once any row has a problem: the file is refused, later rows are only checked.
    refused: AtomicBool,
}

/// A block of rows' cases, problems and de-identification counts.
#[derive(Default)]
struct Block {
    rows: Vec<PreparedCase>,
    problems: Vec<Problem>,
    report: DeidReport,
}

impl RowContext<'_> {
    /// Validates and de-identifies the cells of the admitted rows in `range`.
    fn rows(&self, rows: &decode::Rows, admissions: &[Admission], range: std::ops::Range<usize>) -> Block {
        let fields = self.fields;
        let mut out = Block::default();
        let mut cells: Vec<Option<Value>> = vec![None; fields.len()];
        for ri in range {
            let Admission::Admitted(site_code, subject_key, record) = &admissions[ri] else { continue };
            // Whether the row's record holds field `i`'s form (every form, in a classic study).
            let holds = |i: usize| i == 0 || self.design.record_has_form(record, &fields[i].form_name);
            let mut form_status: BTreeMap<String, u8> = BTreeMap::new();
            let (r, row) = (ri + 1, rows.get(ri));
            let subject = deid::Subject::new(subject_key);
            let mut status = CaseStatus::Enrolled;
            let problems_before = out.problems.len();
            cells.fill(None);
            let mut checked: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            let mut missing: Vec<usize> = Vec::new();
            for (ci, col) in self.columns.iter().enumerate() {
                let cell = row.cell(ci).trim();
                match col {
                    Column::Status if !cell.is_empty() => match CaseStatus::parse_input(cell) {
                        Some(s) => status = s,
                        None => out.problems.push(problem(
                            Some(r),
                            Some("status"),
                            "must be screened, enrolled, excluded or withdrawn",
                        )),
                    },
                    Column::Checkbox(i, code) => match cell {
                        "1" if !holds(*i) => out.problems.push(self.not_on_record(r, &self.header[ci], *i, record)),
                        "1" => checked.entry(*i).or_default().push(code.clone()),
                        "0" | "" if !holds(*i) => {}
                        "0" | "" => {
                            checked.entry(*i).or_default();
                        }
                        _ => out.problems.push(problem(
                            Some(r),
                            Some(&self.header[ci]),
                            "a checkbox column holds 1 or 0",
                        )),
                    },
                    Column::FormStatus(form) => match FormStatus::parse_cell(cell) {
                        Err(msg) => out.problems.push(problem(Some(r), Some(&self.header[ci]), msg)),
                        Ok(None) => {}
                        Ok(Some(_)) if !self.design.record_has_form(record, form) => out.problems.push(problem(
                            Some(r),
                            Some(&self.header[ci]),
                            format!("{} does not have form {form}", record.describe(self.design)),
                        )),
                        Ok(Some(s)) => {
                            form_status.insert(form.clone(), s.code());
                        }
                    },
                    Column::Field(i) if *i > 0 && !holds(*i) && !cell.is_empty() => {
                        out.problems.push(self.not_on_record(r, &fields[*i].name, *i, record))
                    }
                    Column::Field(i) if *i > 0 && !holds(*i) => {}
                    Column::Field(i) if *i > 0 => {
                        let f = fields[*i];
                        match self.validators[*i].parse(cell) {
                            Err(msg) => out.problems.push(problem(Some(r), Some(&f.name), msg)),
                            Ok(None) => {
                                if f.required {
                                    missing.push(*i);
                                }
                            }
                            Ok(Some(v)) => {
                                let scrubber = self.scrubbed[*i].then_some(self.scrubber);
                                cells[*i] = deidentify(f, v, self.key, &subject, scrubber, &mut out.report)
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (i, codes) in checked {
                if fields[i].required && codes.is_empty() {
                    missing.push(i);
                }
                cells[i] = Some(json!(codes));
            }
            // A required field is required where its branching logic shows it (REDCap's rule),
            // read on the row's values as they will be stored.
            if !missing.is_empty() {
                let values: serde_json::Map<String, Value> =
                    fields.iter().zip(cells.iter()).filter_map(|(f, v)| Some((f.name.clone(), v.clone()?))).collect();
                let data = super::logic::CaseValues::new(&values, crate::db::now());
                missing.sort_unstable();
                // A later event's row holds its own forms only: branching logic naming another
                // form's field cannot be judged on it, and does not make the field required.
                let judged = |i: usize| {
                    let text = fields[i].branching_logic.trim();
                    self.design.is_base(record)
                        || text.is_empty()
                        || super::logic::Logic::parse(text).map_or(true, |l| {
                            l.references().iter().all(|r| {
                                r.event.is_none() && fields.iter().position(|f| f.name == r.field).is_some_and(holds)
                            })
                        })
                };
                for i in missing.drain(..) {
                    if judged(i) && super::logic::shown(fields[i], &data) {
                        out.problems.push(problem(Some(r), Some(&fields[i].name), "missing required value"));
                    }
                }
            }
            out.report.count(&fields[0].name, fields[0].action.as_str(), 1);
            if out.problems.len() > problems_before {
                self.refused.store(true, Ordering::Relaxed);
            }
            if self.refused.load(Ordering::Relaxed) {
                // A refused file is never stored: only its problems are still collected.
                continue;
            }
            match self.writer.write(&cells, status.as_str()) {
                Ok((data, created)) => out.rows.push(PreparedCase {
                    row: r,
                    site_code: site_code.clone(),
                    subject_key: subject_key.clone(),
                    record: record.clone(),
                    form_status,
                    status,
                    data,
                    created,
                }),
                Err(e) => {
                    out.problems.push(problem(Some(r), None, format!("cannot be written: {e}")));
                    self.refused.store(true, Ordering::Relaxed);
                }
            }
        }
        out
    }
}

impl RowContext<'_> {
    /// A value given for a field whose form the row's record does not have.
    fn not_on_record(&self, r: usize, column: &str, i: usize, record: &RecordKey) -> Problem {
        let form = &self.fields[i].form_name;
        let name = &self.fields[i].name;
        let message = if !self.design.has_form(&record.event, form) {
            format!("{name} is on form {form}, which {} does not have", record.describe(self.design))
        } else if self.design.repeats(&record.event, form) == super::events::Repeats::Instrument {
            format!(
                "{name} is on form {form}, which repeats: give it on a row whose redcap_repeat_instrument is {form}"
            )
        } else {
            format!("{name} is on form {form}, not {}: give it on a row of its own", record.instrument)
        };
        problem(Some(r), Some(column), message)
    }
}

/// Applies the field's action; free text kept as is (`scrubber` given) is first scrubbed.
fn deidentify(
    f: &FieldDef,
    v: Value,
    key: &StudyKey,
    subject: &deid::Subject,
    scrubber: Option<&Scrubber>,
    report: &mut DeidReport,
) -> Option<Value> {
    let v = if let Some(scrubber) = scrubber {
        let text = super::dictionary::value_text(&v);
        let (clean, counts) = scrubber.scrub(&text);
        for (kind, n) in counts {
            report.count(&f.name, kind.rule(), n);
        }
        json!(clean)
    } else {
        v
    };
    if f.action != DeidAction::Keep {
        report.count(&f.name, f.action.as_str(), 1);
    }
    deid::apply(f, v, key, subject)
}

/// Writes a row's values twice from one pass over the dictionary's order: as `cases.data` holds
/// them (serde_json's text, keys in byte order, as a `serde_json::Map` writes them) and, with the
/// status, in canonical form for the audit trail (RFC 8785 §3.2.3: keys by UTF-16 code units).
struct RowWriter<'a> {
    fields: &'a [&'a FieldDef],
    /// Field indices in byte order of their names.
    stored: Vec<usize>,
    /// Field indices in UTF-16 order, `None` where the status goes.
    audited: Vec<Option<usize>>,
}

impl<'a> RowWriter<'a> {
    fn new(fields: &'a [&'a FieldDef]) -> Self {
        let mut stored: Vec<usize> = (0..fields.len()).collect();
        stored.sort_by(|&a, &b| fields[a].name.cmp(&fields[b].name));
        let key = |i: &Option<usize>| -> Vec<u16> {
            i.map_or("status", |i| fields[i].name.as_str()).encode_utf16().collect()
        };
        let mut audited: Vec<Option<usize>> =
            (0..fields.len()).map(Some).filter(|i| i.is_none_or(|i| fields[i].name != "status")).collect();
        audited.push(None);
        audited.sort_by_key(key);
        RowWriter { fields, stored, audited }
    }

    fn write(&self, cells: &[Option<Value>], status: &str) -> serde_json::Result<(String, String)> {
        let mut data = Vec::with_capacity(512);
        data.push(b'{');
        for &i in &self.stored {
            if let Some(v) = &cells[i] {
                if data.len() > 1 {
                    data.push(b',');
                }
                serde_json::to_writer(&mut data, &self.fields[i].name)?;
                data.push(b':');
                serde_json::to_writer(&mut data, v)?;
            }
        }
        data.push(b'}');
        let data = String::from_utf8(data).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?;

        let mut created = String::with_capacity(data.len() + 32);
        created.push('{');
        for slot in &self.audited {
            let (name, value) = match slot {
                Some(i) => match &cells[*i] {
                    Some(v) => (self.fields[*i].name.as_str(), Some(v)),
                    None => continue,
                },
                None => ("status", None),
            };
            if created.len() > 1 {
                created.push(',');
            }
            canonical::write_str(&mut created, name);
            created.push(':');
            match value {
                Some(v) => canonical::write(&mut created, v),
                None => canonical::write_str(&mut created, status),
            }
        }
        created.push('}');
        Ok((data, created))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub import_id: i32,
    pub rows_read: usize,
    /// Rows (records: a subject's, or one of its events') created, updated, unchanged.
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// New subjects (cases).
    pub subjects: usize,
    /// Whether the study has events or repeating forms (rows are records, not subjects).
    pub longitudinal: bool,
    /// The data quality rules run on the study as imported.
    pub quality: crate::quality::RunSummary,
}

#[derive(Insertable)]
#[diesel(table_name = cases)]
struct NewCase<'a> {
    study_id: crate::studies::StudyId,
    site_id: i32,
    subject_key: &'a str,
    display_id: &'a str,
    status: &'a str,
    data: &'a str,
    form_status: Option<&'a str>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl ImportSummary {
    /// "200 rows read, 200 cases created, 0 updated, 0 unchanged", or for a study with events
    /// "959 rows read: 200 new subjects; records 959 created, 0 updated, 0 unchanged".
    pub fn sentence(&self) -> String {
        if self.longitudinal {
            format!(
                "{} rows read: {} new subject{}; records {} created, {} updated, {} unchanged",
                self.rows_read,
                self.subjects,
                if self.subjects == 1 { "" } else { "s" },
                self.created,
                self.updated,
                self.unchanged
            )
        } else {
            format!(
                "{} rows read, {} cases created, {} updated, {} unchanged",
                self.rows_read, self.created, self.updated, self.unchanged
            )
        }
    }
}

/// Why site staff may not import a row of `site`.
fn out_of_scope(site: &str) -> String {
    format!("{site} is not one of your sites: you import your own sites' subjects only")
}

/// Stores a prepared import in one transaction: new subjects get the next display id of their
/// site, known ones (same pseudonym) are updated; one audit event per created or changed case,
/// one for the import. Refuses an import that has problems. Returns once the transaction is in
/// the WAL: the caller then runs `db::checkpoint` (the server does so in the background).
pub fn commit(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    prepared: &PreparedImport,
) -> Result<ImportSummary> {
    access.require(Permission::EnterData)?;
    if prepared.study_id != access.study.id {
        return Err(Error::NotFound);
    }
    if !prepared.ok() {
        return Err(Error::Conflict(format!("the file has {}: nothing was imported", prepared.problem_count())));
    }
    // About 1.6 KB per case (row, audit event, indexes): the whole import stays in the cache.
    // Measured against the usual 64 MB at 100,000 cases: the commit takes 2.1–2.3 s instead of
    // 2.6–2.8 s, and the import's peak memory is the same (its preparation sets it).
    let cache_kib = u32::try_from(prepared.rows.len().saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(db::CACHE_KIB, db::MAX_CACHE_KIB);
    db::bulk_write(conn, cache_kib, |conn| commit_rows(conn, actor, access, prepared))
}

/// Site staff import their own sites' subjects only (a subject is its site's: the same
/// identifier at another site is another subject): a row of another site refuses the whole
/// import, naming the row — checked again here, for a preview someone else prepared.
fn check_scope(access: &StudyAccess, prepared: &PreparedImport, site_ids: &HashMap<&str, i32>) -> Result<()> {
    let Some(mine) = access.sites.ids() else {
        return Ok(());
    };
    for c in &prepared.rows {
        if site_ids.get(c.site_code.as_str()).is_none_or(|id| !mine.contains(id)) {
            let problem =
                Problem { row: Some(c.row), column: Some("site".into()), message: out_of_scope(&c.site_code) };
            return Err(Error::Conflict(format!("{problem}: nothing was imported")));
        }
    }
    Ok(())
}

fn commit_rows(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    prepared: &PreparedImport,
) -> Result<ImportSummary> {
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let sites = crate::studies::sites::list(conn, study.id, false)?;
        let site_ids: HashMap<&str, i32> = sites.iter().map(|s| (s.code.as_str(), s.id)).collect();
        let existing: Vec<(i32, String, String, String)> = cases::table
            .filter(cases::study_id.eq(study.id))
            .select((cases::id, cases::subject_key, cases::display_id, cases::data))
            .load(conn)?;
        check_scope(access, prepared, &site_ids)?;
        let mut next_seq: HashMap<String, u32> = HashMap::new();
        for (_, _, display, _) in &existing {
            if let Some((site, n)) = display.rsplit_once('-') {
                let n: u32 = n.parse().unwrap_or(0);
                let e = next_seq.entry(site.to_string()).or_insert(0);
                *e = (*e).max(n);
            }
        }
        let t = now();
        // The import's row first, for its id in every case event's reason; its counts are set
        // once known. Each case and its event are written as they are made: an import of
        // 100,000 cases never holds them all.
        diesel::insert_into(case_imports::table)
            .values((
                case_imports::study_id.eq(study.id),
                case_imports::actor.eq(&actor.name),
                case_imports::file_sha256.eq(&prepared.file_sha256),
                case_imports::file_size.eq(prepared.file_size as i64),
                case_imports::encoding.eq(prepared.report.encoding),
                case_imports::rows_read.eq(prepared.report.rows_read as i32),
                case_imports::rows_created.eq(0),
                case_imports::rows_updated.eq(0),
                case_imports::rows_unchanged.eq(0),
                case_imports::report
                    .eq(serde_json::to_string(&prepared.report).map_err(|e| Error::Internal(e.into()))?),
                case_imports::created_at.eq(t),
            ))
            .execute(conn)?;
        let import_id: i32 = case_imports::table
            .filter(case_imports::study_id.eq(study.id))
            .order(case_imports::id.desc())
            .select(case_imports::id)
            .first(conn)?;
        let reason = format!("import {import_id}");
        let design = super::events::load(conn, study.id)?;
        // The design may have changed since the file was read (a preview waits up to an hour).
        let read_with_this =
            prepared.design_sha256 == design.sha256() || (prepared.design_sha256.is_empty() && design.is_empty());
        if !read_with_this {
            return Err(Error::Conflict(
                "the study's events changed since the file was read: nothing was imported, upload it again".into(),
            ));
        }
        let mut trail = audit::Appender::start(conn, study.chain())?;
        // Cases as the import leaves them, by subject key: id (unknown for one it created until a
        // later row of the subject needs it), display id, values as stored.
        let mut current: HashMap<String, (Option<i32>, String, String)> =
            existing.into_iter().map(|(id, key, display, data)| (key, (Some(id), display, data))).collect();
        let mut records: HashMap<(i32, RecordKey), (i32, String, String)> = HashMap::new();
        if !design.is_empty() {
            for r in super::records::of_study(conn, study.id)?.into_values().flatten() {
                let status = serde_json::to_string(&r.form_status).map_err(|e| Error::Internal(e.into()))?;
                records.insert((r.case_id, r.key), (r.id, Value::Object(r.data).to_string(), status));
            }
        }
        // Updated records and the fields that changed: their forms' verifications are cleared.
        let mut changed: Vec<(i32, String, String, Vec<String>)> = Vec::new();
        let (mut created, mut updated, mut unchanged, mut subjects) = (0usize, 0usize, 0usize, 0usize);
        // Each subject's base record first, so that a subject whose file lists a later event
        // before its first is created from its first event (values, status) all the same.
        let ordered = prepared
            .rows
            .iter()
            .filter(|c| design.is_base(&c.record))
            .chain(prepared.rows.iter().filter(|c| !design.is_base(&c.record)));
        for c in ordered {
            let site_id = *site_ids
                .get(c.site_code.as_str())
                .ok_or_else(|| Error::Conflict(format!("site {} was retired meanwhile", c.site_code)))?;
            let base = design.is_base(&c.record);
            if !current.contains_key(c.subject_key.as_str()) {
                // The first event's form statuses come with the case (a later event's, with its record).
                let statuses = (base && !c.form_status.is_empty())
                    .then(|| serde_json::to_string(&c.form_status).map_err(|e| Error::Internal(e.into())))
                    .transpose()?;
                let n = next_seq.entry(c.site_code.clone()).or_insert(0);
                *n += 1;
                let display = format!("{}-{:04}", c.site_code, n);
                // A subject whose first row is a later event's: the case starts without values.
                let status_only = if base { String::new() } else { canonical::to_string(&json!({"status": c.status})) };
                let (data, audited) =
                    if base { (c.data.as_str(), c.created.as_str()) } else { ("{}", status_only.as_str()) };
                // One cached single-row statement (see `audit::Appender::append`).
                diesel::insert_into(cases::table)
                    .values(NewCase {
                        study_id: study.id,
                        site_id,
                        subject_key: &c.subject_key,
                        display_id: &display,
                        status: c.status.as_str(),
                        data,
                        form_status: statuses.as_deref(),
                        created_at: t,
                        updated_at: t,
                    })
                    .execute(conn)?;
                trail.append(
                    conn,
                    Change::new(study.chain(), &actor.name, Action::Create, Entity::Case, &display)
                        .after_canonical(audited)
                        .because(&reason),
                )?;
                subjects += 1;
                current.insert(c.subject_key.clone(), (None, display, data.to_string()));
                if base {
                    created += 1;
                    continue;
                }
                // A later event's row: its record is written below.
            }
            let Some((id, display, data)) = current.get_mut(c.subject_key.as_str()) else {
                return Err(Error::Internal(anyhow::anyhow!("the subject of row {} was not kept", c.row)));
            };
            let case_id = match *id {
                Some(id) => id,
                None => {
                    let found = case_id_of(conn, study.id, &c.subject_key)?;
                    *id = Some(found);
                    found
                }
            };
            if !base {
                let display = display.clone();
                match write_record(
                    conn,
                    &mut trail,
                    &RecordWrite {
                        study: &study,
                        actor,
                        reason: &reason,
                        t,
                        design: &design,
                        case_id,
                        display: &display,
                        row: c,
                    },
                    &mut records,
                    &mut changed,
                )? {
                    Written::Created => created += 1,
                    Written::Updated => updated += 1,
                    Written::Unchanged => unchanged += 1,
                }
                continue;
            }
            let old: Map<String, Value> = serde_json::from_str(data).unwrap_or_default();
            let values: Map<String, Value> = serde_json::from_str(&c.data).map_err(|e| Error::Internal(e.into()))?;
            // A re-import updates the fields it carries and keeps the others.
            let mut merged = old.clone();
            merged.extend(values);
            let old_status =
                if c.form_status.is_empty() { None } else { Some(super::records::base_statuses(conn, case_id)?) };
            let new_status = old_status.as_ref().map(|o| {
                let mut m = o.clone();
                m.extend(c.form_status.iter().map(|(k, v)| (k.clone(), *v)));
                m
            });
            if merged == old && new_status == old_status {
                unchanged += 1;
                continue;
            }
            let mut old_audit = old.clone();
            let mut new_audit = merged.clone();
            if let (Some(o), Some(n)) = (&old_status, &new_status) {
                for (form, code) in o {
                    old_audit.insert(format!("{form}_complete"), json!(code));
                }
                for (form, code) in n {
                    new_audit.insert(format!("{form}_complete"), json!(code));
                }
            }
            let (before, after) = audit::diff(&Value::Object(old_audit), &Value::Object(new_audit));
            let fields: Vec<String> = after
                .as_object()
                .map(|a| a.keys().filter(|k| merged.contains_key(*k)).cloned().collect())
                .unwrap_or_default();
            changed.push((case_id, display.clone(), String::new(), fields));
            let text = Value::Object(merged).to_string();
            diesel::update(cases::table.find(case_id))
                .set((cases::data.eq(&text), cases::updated_at.eq(t)))
                .execute(conn)?;
            if let Some(n) = &new_status {
                let s = serde_json::to_string(n).map_err(|e| Error::Internal(e.into()))?;
                diesel::update(cases::table.find(case_id)).set(cases::form_status.eq(Some(s))).execute(conn)?;
            }
            *data = text;
            trail.append(
                conn,
                Change::new(study.chain(), &actor.name, Action::Update, Entity::Case, display.as_str())
                    .before(before)
                    .after(after)
                    .because(&reason),
            )?;
            updated += 1;
        }
        diesel::update(case_imports::table.find(import_id))
            .set((
                case_imports::rows_created.eq(created as i32),
                case_imports::rows_updated.eq(updated as i32),
                case_imports::rows_unchanged.eq(unchanged as i32),
            ))
            .execute(conn)?;
        let summary = json!({
            "rows_read": prepared.report.rows_read, "created": created, "updated": updated,
            "unchanged": unchanged, "file_sha256": prepared.file_sha256, "deidentified_values": prepared.report.total(),
        });
        trail.append(
            conn,
            Change::new(study.chain(), &actor.name, Action::Import, Entity::CaseImport, import_id).after(summary),
        )?;
        trail.finish(conn)?;
        let dictionary = super::dictionary::load(conn, study.id)?;
        crate::quality::sdv::clear_changed(conn, &study, &actor.name, &dictionary, &changed)?;
        let quality = crate::quality::run_in(conn, &study, &actor.name, crate::quality::Trigger::Import)?;
        let longitudinal = !design.is_empty();
        Ok(ImportSummary {
            import_id,
            rows_read: prepared.report.rows_read,
            created,
            updated,
            unchanged,
            subjects,
            longitudinal,
            quality,
        })
    })
}

/// The id of a case this import created.
fn case_id_of(conn: &mut Conn, study_id: crate::studies::StudyId, subject_key: &str) -> Result<i32> {
    Ok(cases::table
        .filter(cases::study_id.eq(study_id))
        .filter(cases::subject_key.eq(subject_key))
        .select(cases::id)
        .first(conn)?)
}

/// What writing a record of a subject needs to know.
struct RecordWrite<'a> {
    study: &'a crate::studies::Study,
    actor: &'a Actor,
    reason: &'a str,
    t: chrono::NaiveDateTime,
    design: &'a Design,
    case_id: i32,
    display: &'a str,
    row: &'a PreparedCase,
}

enum Written {
    Created,
    Updated,
    Unchanged,
}

/// Creates a subject's record other than the base one, or updates it with the fields the row
/// carries (keeping the others), audited as `case_record` `<display id>/<slot>`.
fn write_record(
    conn: &mut Conn,
    trail: &mut audit::Appender,
    w: &RecordWrite,
    records: &mut HashMap<(i32, RecordKey), (i32, String, String)>,
    changed: &mut Vec<(i32, String, String, Vec<String>)>,
) -> Result<Written> {
    use crate::db::schema::case_records;
    let c = w.row;
    let slot = w.design.slot(&c.record);
    let entity = format!("{}/{slot}", w.display);
    let values: Map<String, Value> = serde_json::from_str(&c.data).map_err(|e| Error::Internal(e.into()))?;
    let with_status = super::records::audited;
    match records.get_mut(&(w.case_id, c.record.clone())) {
        None => {
            let status = serde_json::to_string(&c.form_status).map_err(|e| Error::Internal(e.into()))?;
            diesel::insert_into(case_records::table)
                .values((
                    case_records::study_id.eq(w.study.id),
                    case_records::case_id.eq(w.case_id),
                    case_records::event.eq(&c.record.event),
                    case_records::instrument.eq(&c.record.instrument),
                    case_records::instance.eq(c.record.instance),
                    case_records::data.eq(&c.data),
                    case_records::form_status.eq(&status),
                    case_records::created_at.eq(w.t),
                    case_records::updated_at.eq(w.t),
                ))
                .execute(conn)?;
            trail.append(
                conn,
                Change::new(w.study.chain(), &w.actor.name, Action::Create, Entity::CaseRecord, &entity)
                    .after(with_status(&values, &c.form_status))
                    .because(w.reason),
            )?;
            let id: i32 = case_records::table
                .filter(case_records::case_id.eq(w.case_id))
                .filter(case_records::event.eq(&c.record.event))
                .filter(case_records::instrument.eq(&c.record.instrument))
                .filter(case_records::instance.eq(c.record.instance))
                .select(case_records::id)
                .first(conn)?;
            records.insert((w.case_id, c.record.clone()), (id, c.data.clone(), status));
            Ok(Written::Created)
        }
        Some((id, data, status)) => {
            let old: Map<String, Value> = serde_json::from_str(data).map_err(|e| Error::Internal(e.into()))?;
            let old_status: BTreeMap<String, u8> = serde_json::from_str(status).unwrap_or_default();
            let mut merged = old.clone();
            merged.extend(values);
            let mut merged_status = old_status.clone();
            merged_status.extend(c.form_status.iter().map(|(k, v)| (k.clone(), *v)));
            if merged == old && merged_status == old_status {
                return Ok(Written::Unchanged);
            }
            let (before, after) = audit::diff(&with_status(&old, &old_status), &with_status(&merged, &merged_status));
            let fields: Vec<String> = after
                .as_object()
                .map(|a| a.keys().filter(|k| merged.contains_key(*k)).cloned().collect())
                .unwrap_or_default();
            changed.push((w.case_id, w.display.to_string(), slot, fields));
            let new_data = Value::Object(merged).to_string();
            let new_status = serde_json::to_string(&merged_status).map_err(|e| Error::Internal(e.into()))?;
            diesel::update(case_records::table.find(*id))
                .set((
                    case_records::data.eq(&new_data),
                    case_records::form_status.eq(&new_status),
                    case_records::updated_at.eq(w.t),
                ))
                .execute(conn)?;
            trail.append(
                conn,
                Change::new(w.study.chain(), &w.actor.name, Action::Update, Entity::CaseRecord, &entity)
                    .before(before)
                    .after(after)
                    .because(w.reason),
            )?;
            *data = new_data;
            *status = new_status;
            Ok(Written::Updated)
        }
    }
}

/// Previews wait at most this long for confirmation.
pub const PREVIEW_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn preview_path(tmp_dir: &std::path::Path, token: &str) -> Option<std::path::PathBuf> {
    (token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| tmp_dir.join(format!("preview-{token}.json")))
}

/// Keeps a de-identified preview (never the upload) until the user confirms; returns its token.
/// Expired previews are removed on the way.
pub fn save_preview(tmp_dir: &std::path::Path, prepared: &PreparedImport) -> anyhow::Result<String> {
    std::fs::create_dir_all(tmp_dir)?;
    sweep_previews(tmp_dir);
    let token = crate::auth::random_token();
    let path = preview_path(tmp_dir, &token).ok_or_else(|| anyhow::anyhow!("bad token"))?;
    std::fs::write(&path, serde_json::to_vec(prepared)?)?;
    Ok(token)
}

/// Takes (and removes) a preview; `None` when unknown or expired.
pub fn take_preview(tmp_dir: &std::path::Path, token: &str) -> Option<PreparedImport> {
    let path = preview_path(tmp_dir, token)?;
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()?.elapsed().ok()? < PREVIEW_TTL;
    let bytes = std::fs::read(&path).ok();
    let _ = std::fs::remove_file(&path);
    if !fresh {
        return None;
    }
    let mut prepared: PreparedImport = serde_json::from_slice(&bytes?).ok()?;
    for c in &mut prepared.rows {
        let mut values: Map<String, Value> = serde_json::from_str(&c.data).ok()?;
        values.insert("status".into(), json!(c.status));
        c.created = canonical::to_string(&Value::Object(values));
    }
    Some(prepared)
}

pub fn sweep_previews(tmp_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else { return };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > PREVIEW_TTL);
        if old && e.file_name().to_string_lossy().starts_with("preview-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row writer's two texts equal what `serde_json` writes for the values' map and what
    /// the canonical writer makes of the map plus the status (the forms they replace).
    #[test]
    fn row_writer_matches_serde_json_and_canonical_forms() {
        let names = ["lab_b", "a_x", "Zeta", "z9", "é", "\u{ff61}x", "\u{1f600}", "status", "notes"];
        let defs: Vec<FieldDef> = names.iter().map(|n| FieldDef::for_tests(n, "text", "", DeidAction::Keep)).collect();
        let fields: Vec<&FieldDef> = defs.iter().collect();
        let writer = RowWriter::new(&fields);
        let rows: Vec<Vec<Option<Value>>> = vec![
            vec![
                Some(json!(3.0)),
                None,
                Some(json!("x\"y\\\n\u{1}")),
                Some(json!(1e21)),
                Some(json!(-0.5)),
                Some(json!("ｱ")),
                Some(json!(["1", "3"])),
                Some(json!("kept?")),
                Some(json!(12)),
            ],
            vec![None; 9],
            vec![Some(json!(0.1)), Some(json!(1e-7)), None, None, None, None, None, None, Some(json!("김민지"))],
        ];
        for cells in rows {
            let (data, created) = writer.write(&cells, "withdrawn").unwrap();
            let mut map = Map::new();
            for (f, v) in fields.iter().zip(&cells) {
                if let Some(v) = v {
                    map.insert(f.name.clone(), v.clone());
                }
            }
            assert_eq!(data, serde_json::to_string(&map).unwrap());
            map.insert("status".into(), json!("withdrawn"));
            assert_eq!(created, canonical::to_string(&Value::Object(map)));
        }
    }

    /// A preview keeps the stored text only; the audit record is re-made from it when the
    /// preview is taken back, equal to the one written while preparing.
    #[test]
    fn a_preview_comes_back_with_the_same_audit_records() {
        let defs: Vec<FieldDef> = ["subject_id", "age", "notes", "zeta"]
            .iter()
            .map(|n| FieldDef::for_tests(n, "text", "", DeidAction::Keep))
            .collect();
        let fields: Vec<&FieldDef> = defs.iter().collect();
        let writer = RowWriter::new(&fields);
        let cells = vec![None, Some(json!(64.25)), Some(json!("line\nbreak \"quoted\"")), Some(json!(["1", "2"]))];
        let (data, created) = writer.write(&cells, "screened").unwrap();
        let row = PreparedCase {
            row: 1,
            site_code: "SNUBH".into(),
            subject_key: "k".repeat(64),
            record: RecordKey::default(),
            form_status: BTreeMap::new(),
            status: CaseStatus::Screened,
            data,
            created: created.clone(),
        };
        let prepared = PreparedImport {
            study_id: crate::studies::StudyId::for_tests(1),
            file_sha256: String::new(),
            file_size: 0,
            rows: vec![row],
            report: DeidReport::default(),
            problems: Vec::new(),
            design_sha256: String::new(),
            later_rows: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        let token = save_preview(dir.path(), &prepared).unwrap();
        let saved = std::fs::read_to_string(dir.path().join(format!("preview-{token}.json"))).unwrap();
        assert!(!saved.contains("\"created\""), "{saved}");
        let back = take_preview(dir.path(), &token).unwrap();
        assert_eq!(back.rows[0].created, created);
        assert!(take_preview(dir.path(), &token).is_none(), "a preview is taken once");
    }

    /// A file long enough to be prepared in several blocks: its problems come out in row order
    /// (a duplicate whose first row is in another block, bad cells on both sides) and, without
    /// problems, its cases in file order with every value de-identified as one pass would.
    #[test]
    fn blocks_of_rows_give_what_one_pass_gives() {
        let defs = vec![
            FieldDef::for_tests("subject_id", "text", "", DeidAction::Pseudonymise),
            FieldDef::for_tests("age", "text", "integer", DeidAction::Keep),
        ];
        let now = chrono::Utc::now().naive_utc();
        let site = Site {
            id: 1,
            study_id: crate::studies::StudyId::for_tests(1),
            code: "SNUBH".into(),
            name: "Seoul".into(),
            country: "KR".into(),
            irb_reference: String::new(),
            irb_approval_date: None,
            retired_at: None,
            retired_reason: None,
            created_at: now,
        };
        let key = StudyKey::from_bytes([7; 32]);
        let n = 5_000;
        let file = |bad: bool| {
            let mut csv = String::from("subject_id,site,age\n");
            for i in 1..=n {
                let subject = if bad && i == 4_500 { "P00010".to_string() } else { format!("P{i:05}") };
                let age = if bad && (i == 20 || i == 4_900) { "old".to_string() } else { (20 + i % 60).to_string() };
                csv.push_str(&format!("{subject},SNUBH,{age}\n"));
            }
            csv
        };
        let prepare = |csv: &str| {
            let id = crate::studies::StudyId::for_tests(1);
            super::prepare(
                id,
                &defs,
                &Default::default(),
                std::slice::from_ref(&site),
                &key,
                "f.csv",
                csv.as_bytes(),
                &Default::default(),
            )
        };
        let refused = prepare(&file(true));
        let rows: Vec<Option<usize>> = refused.problems.iter().map(|p| p.row).collect();
        assert_eq!(rows, [Some(20), Some(4_500), Some(4_900)], "{:?}", refused.problems);
        assert!(refused.problems[1].message.contains("same as row 10"), "{:?}", refused.problems[1]);
        assert!(refused.rows.is_empty());
        let ok = prepare(&file(false));
        assert!(ok.ok(), "{:?}", &ok.problems);
        assert_eq!(ok.rows.len(), n);
        assert!(ok.rows.iter().enumerate().all(|(i, c)| c.row == i + 1));
        assert_eq!(ok.rows[4_999].subject_key, key.subject_key("SNUBH", "P05000"));
        assert_eq!(ok.report.fields["subject_id"]["pseudonymise"], n);
    }
}
