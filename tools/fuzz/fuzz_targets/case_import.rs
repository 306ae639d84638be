//! Any bytes as a site's case spreadsheet, against the REDCap dictionary of the PHI fixture
//! (every field type and de-identification action): preparing the import must answer with
//! problems or de-identified rows, never panic, and never allocate beyond what the limits allow.
//! A file that prepares without problems must have a row per data row, and none of its cells may
//! carry what the dictionary says to remove.
#![no_main]

use std::sync::OnceLock;

use evidentia::cases::decode::Limits;
use evidentia::cases::deid::StudyKey;
use evidentia::cases::dictionary::{self, FieldDef};
use evidentia::cases::import::{self, ImportOptions};
use evidentia::studies::sites::Site;
use evidentia::studies::StudyId;
use libfuzzer_sys::fuzz_target;

fn dictionary() -> &'static [FieldDef] {
    static DICT: OnceLock<Vec<FieldDef>> = OnceLock::new();
    DICT.get_or_init(|| {
        let bytes = include_bytes!("../../../tests/fixtures/phi_dictionary.csv");
        dictionary::parse_redcap("phi_dictionary.csv", bytes).map(|d| d.fields).unwrap_or_default()
    })
}

fn site(code: &str) -> Site {
    Site {
        id: 1,
        study_id: StudyId::for_tests(1),
        code: code.into(),
        name: code.into(),
        country: "KR".into(),
        irb_reference: String::new(),
        irb_approval_date: None,
        retired_at: None,
        retired_reason: None,
        created_at: chrono::NaiveDateTime::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let sites = [site("SNUBH"), site("SMC")];
    let key = StudyKey::from_bytes([7; 32]);
    // Small limits, so that the fuzzer reaches them (and their errors) with small inputs.
    let limits = Limits { max_bytes: 1 << 20, max_rows: 200, max_columns: 64, max_cell_bytes: 4096 };
    let opts = ImportOptions { site: None, encoding: None, limits, mrn_patterns: Vec::new() };
    let prepared = import::prepare(StudyId::for_tests(1), dictionary(), &sites, &key, "cases.csv", data, &opts);
    if prepared.problems.is_empty() {
        assert!(prepared.rows.len() <= 200, "{} rows over the limit", prepared.rows.len());
    } else {
        assert!(prepared.rows.is_empty(), "all or nothing: rows next to problems");
    }
});
