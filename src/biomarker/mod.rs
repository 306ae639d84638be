//! The AI biomarker: the model registry (ONNX + model card), study runs (as jobs) and the
//! comparison of two runs. The card, the inference engine over ONNX Runtime or tract and the
//! per-slide pipeline are the `evidentia-inference` crate, re-exported here; the phenotype rule is
//! `evidentia-phenotype`, shared with the synthetic slides' truth.

pub use evidentia_inference::{card, engine, pipeline};
pub use evidentia_phenotype as phenotype;

pub mod compare;
pub mod registry;
pub mod runs;

use crate::error::{Error, FieldErrors};

crate::db::text_enum! {
    /// The inference backend a model was checked on and a run ran on, as stored
    /// (`engine::BackendKind`).
    pub enum Backend {
        OnnxRuntime = "onnxruntime",
        Tract = "tract",
    }
}

impl From<engine::BackendKind> for Backend {
    fn from(kind: engine::BackendKind) -> Backend {
        match kind {
            engine::BackendKind::OnnxRuntime => Backend::OnnxRuntime,
            engine::BackendKind::Tract => Backend::Tract,
        }
    }
}

impl From<card::Problems> for Error {
    fn from(p: card::Problems) -> Error {
        let mut e = FieldErrors::default();
        for (field, message) in p.0 {
            e.add(&field, message);
        }
        Error::Invalid(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_is_stored_under_its_own_name() {
        for kind in engine::BackendKind::ALL {
            assert_eq!(Backend::from(kind).as_str(), kind.as_str());
        }
        assert_eq!(Backend::ALL.len(), engine::BackendKind::ALL.len());
    }
}
