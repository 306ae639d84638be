//! Biomarker inference, without a database or a web server: what an AI run does to one slide.
//!
//! - [`card`]: the model card that travels with an ONNX model (input tile size and MPP,
//!   normalisation, outputs, the phenotype thresholds), checked on its own and against the model.
//! - [`engine`]: one process-wide inference backend behind ort's API, ONNX Runtime (loaded at run
//!   time, never downloaded) or tract (pure Rust) when it is absent, and a loaded [`engine::Model`].
//! - [`onnx_file`]: refuses ONNX files whose weights live in other files (not covered by the
//!   model's hash).
//! - [`pipeline`]: tiles over tissue at the card's MPP, batched through the model, cells scored and
//!   the slide classified by the phenotype rule (`evidentia-phenotype`).
//!
//! The model registry, study runs (as jobs) and the comparison of two runs are the application's
//! (`evidentia::biomarker`).

pub mod card;
pub mod engine;
pub mod onnx_file;
pub mod pipeline;
