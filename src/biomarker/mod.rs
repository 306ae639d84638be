//! The AI biomarker: model registry (ONNX + model card), the inference engine over ONNX Runtime
//! or tract, the phenotype rule, the per-slide pipeline, study runs (as jobs) and the comparison
//! of two runs.

pub mod card;
pub mod compare;
pub mod engine;
/// The phenotype rule, shared with the synthetic slides' truth (crates/evidentia-phenotype).
pub use evidentia_phenotype as phenotype;
pub mod pipeline;
pub mod registry;
pub mod runs;
