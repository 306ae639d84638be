//! Scrubbing PHI out of free text.
