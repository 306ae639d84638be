//! Whole-slide images, in pure Rust: the engine under Evidentia's slides (re-exported as
//! `evidentia::slides::{reader, jpeg, tiffwrite, dzi, deid, synth}`).
//!
//! - `reader`: Aperio SVS and generic pyramidal TIFF (levels, regions, associated images,
//!   metadata), behind the `SlideReader` trait;
//! - `dicom`, `dicomwrite`: DICOM whole-slide images (Supplement 145), read natively; exported;
//! - `vendor`: Hamamatsu NDPI, Philips TIFF and Ventana BIF read natively; `ndpiwrite` writes NDPI;
//! - `openslide`: the other vendors' formats (Leica SCN, MIRAX, DICOM in JPEG 2000, NDPI
//!   beyond what `vendor` reads) through OpenSlide 4, loaded at run time when it is installed;
//! - `jpeg`: JPEG tiles decoded with the colour transform the file declares;
//! - `tiffwrite`: tiled pyramidal TIFF (BigTIFF when needed) written tile by tile;
//! - `dzi`: Deep Zoom tiles and thumbnails from any `SlideReader`;
//! - `deid`: de-identified copies (labels, macros and identifying tags removed; tiles copied
//!   byte for byte);
//! - `synth`: synthetic H&E slides with fake PHI and a ground truth of the phenotype.
//!
//! An engine: no database, no web server; it reads and writes files it is given.

pub mod deid;
pub mod dicom;
pub mod dicomwrite;
pub mod dzi;
mod font;
pub mod jpeg;
pub mod native;
pub mod ndpiwrite;
pub mod openslide;
pub mod reader;
pub mod source;
pub mod synth;
pub mod tiffwrite;
mod vendor;
