//! Decoding uploaded spreadsheets: encodings, delimiters, CSV parsing with limits.
