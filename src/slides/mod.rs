//! Slides: whole-slide image reading, de-identified ingest, Deep Zoom tiles, synthetic slides.

mod font;
pub mod synth;
pub mod tiffwrite;
