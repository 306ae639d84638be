//! Slides: whole-slide image reading, de-identified ingest, Deep Zoom tiles, synthetic slides.

pub mod synth;
pub mod tiffwrite;
