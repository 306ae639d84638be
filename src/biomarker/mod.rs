//! The AI biomarker: model registry (ONNX + model card), the inference engine over ONNX Runtime
//! or tract, the phenotype rule and the per-slide pipeline. (Study runs build on these.)

pub mod card;
pub mod compare;
pub mod engine;
pub mod phenotype;
pub mod pipeline;
pub mod registry;
pub mod runs;
