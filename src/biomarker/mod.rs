//! The AI biomarker: model registry (ONNX + model card), the inference engine over ONNX Runtime
//! or tract. (The per-slide pipeline and runs build on these.)

pub mod card;
pub mod engine;
pub mod phenotype;
pub mod registry;
