//! Cases: the per-study data dictionary (REDCap format), de-identified import of site
//! spreadsheets, case records and their exports. PHI is removed here, before anything is stored.

pub mod decode;
pub mod scrub;
