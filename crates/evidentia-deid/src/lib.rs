//! Text de-identification under HIPAA Safe Harbor (45 CFR §164.514(b)(2)), without a database
//! or files: what the case import, the case page and the slide ingest apply at the door.
//!
//! - [`scrub`]: finds identifiers in free text and replaces each with `[REDACTED:KIND]`.
//! - [`key`]: a study's secret key and what it derives: subjects' linkage keys, stable
//!   pseudonyms, and each subject's date shift.
//! - [`safe_harbor`]: the generalisations the rule names: ZIP codes to three digits (`000` where
//!   the area is small), ages over 89 to `90+`, birth years that reveal such an age to one group.
//!
//! Where the key is kept (the data dir's `secrets/`) and which field gets which action (the
//! study's data dictionary) is the application's business (`evidentia::cases::deid`).

pub mod key;
pub mod safe_harbor;
pub mod scrub;
