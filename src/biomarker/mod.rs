//! The AI biomarker: model registry (ONNX + model card), the inference engine over ONNX Runtime
//! or tract, the phenotype rule, the per-slide pipeline, study runs (as jobs) and the comparison
//! of two runs.

pub mod card;
pub mod compare;
pub mod engine;
pub mod phenotype;
pub mod pipeline;
pub mod registry;
pub mod runs;
