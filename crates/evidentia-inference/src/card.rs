//! The model card: what a registered ONNX model is, expects and outputs, and the biomarker
//! thresholds it is used with. JSON, documented in docs/models.md; checked on its own and against
//! the model's declared inputs and outputs before a model is registered.

use serde::{Deserialize, Serialize};

use crate::engine::TensorInfo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    /// `[batch, channels, height, width]` for NCHW (`[batch, height, width, channels]` for NHWC);
    /// -1 for the dynamic batch dimension.
    pub shape: Vec<i64>,
    pub layout: String,
    pub dtype: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Pixel (0–255) × scale, then (x − mean[c]) / std[c] per RGB channel.
    pub scale: f64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub meaning: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Intratumoural TILs per mm² of cancer epithelium at or above which a cell is inflamed.
    pub itil_per_mm2: f64,
    /// Stromal TILs per mm² of cancer stroma at or above which a cell is immune-excluded.
    pub stil_per_mm2: f64,
    /// Cells with less tumour area (mm²) are not scored.
    pub min_tumour_mm2: f64,
    /// Lymphocyte-map value counted as a lymphocyte centre.
    pub lymphocyte_probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub version: String,
    pub intended_use: String,
    pub input: InputSpec,
    /// Tile edge in pixels at `mpp`.
    pub tile_size: u32,
    /// Microns per pixel the model expects.
    pub mpp: f64,
    pub normalisation: Normalisation,
    pub outputs: Vec<OutputSpec>,
    pub thresholds: Thresholds,
    pub training_data: String,
    /// Validation metrics as reported by whoever trained the model (free-form JSON object).
    #[serde(default)]
    pub validation: serde_json::Map<String, serde_json::Value>,
}

impl ModelCard {
    /// Parses a card; a missing or mistyped field is named with its line.
    pub fn parse(bytes: &[u8]) -> Result<ModelCard, Problems> {
        let card: ModelCard = serde_json::from_slice(bytes).map_err(|e| Problems::single("card", e.to_string()))?;
        card.check()?;
        Ok(card)
    }

    /// `name@version`, how runs and the CLI name a model.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Spatial size and channels from the input shape, by layout.
    fn input_dims(&self) -> Option<(i64, i64, i64)> {
        let s = &self.input.shape;
        match self.input.layout.as_str() {
            "NCHW" if s.len() == 4 => Some((s[1], s[2], s[3])),
            "NHWC" if s.len() == 4 => Some((s[3], s[1], s[2])),
            _ => None,
        }
    }

    /// The card on its own: every field present and sensible.
    fn check(&self) -> Result<(), Problems> {
        let mut e = Problems::default();
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !name_ok(&self.name) {
            e.add("name", "1–64 of letters, digits, '-', '_' or '.'");
        }
        if !name_ok(&self.version) {
            e.add("version", "1–64 of letters, digits, '-', '_' or '.'");
        }
        if self.intended_use.trim().is_empty() {
            e.add("intended_use", "say what the model is for (and not for)");
        }
        if !matches!(self.input.layout.as_str(), "NCHW" | "NHWC") {
            e.add("input.layout", "NCHW or NHWC");
        }
        if self.input.dtype != "float32" {
            e.add("input.dtype", "float32 (the only input type the pipeline feeds)");
        }
        match self.input_dims() {
            Some((3, h, w)) if h == i64::from(self.tile_size) && w == i64::from(self.tile_size) => {}
            Some((c, h, w)) => e.add(
                "input.shape",
                format!("{c} channels of {h}×{w} px: the pipeline feeds 3 (RGB) channels of tile_size × tile_size ({0}×{0})", self.tile_size),
            ),
            None => e.add("input.shape", "4 dimensions (batch first, -1 for a dynamic batch)"),
        }
        if !(self.tile_size >= 16 && self.tile_size <= 4096) {
            e.add("tile_size", "16 to 4096 px");
        }
        if !(self.mpp.is_finite() && self.mpp > 0.05 && self.mpp < 50.0) {
            e.add("mpp", "microns per pixel, between 0.05 and 50");
        }
        let n = &self.normalisation;
        if !(n.scale.is_finite() && n.scale > 0.0)
            || n.mean.len() != 3
            || n.std.len() != 3
            || n.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            e.add("normalisation", "scale > 0, three means and three standard deviations > 0 (RGB)");
        }
        if self.outputs.is_empty() {
            e.add("outputs", "name the model's outputs and what they mean");
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if o.name.is_empty() || self.outputs[..i].iter().any(|p| p.name == o.name) {
                e.add("outputs", format!("output {} needs a unique name", i + 1));
            }
            if o.meaning.trim().is_empty() {
                e.add("outputs", format!("say what output {} means", o.name));
            }
        }
        let t = &self.thresholds;
        for (field, v) in [
            ("thresholds.itil_per_mm2", t.itil_per_mm2),
            ("thresholds.stil_per_mm2", t.stil_per_mm2),
            ("thresholds.min_tumour_mm2", t.min_tumour_mm2),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                e.add(field, "a number ≥ 0");
            }
        }
        if !(t.lymphocyte_probability > 0.0 && t.lymphocyte_probability < 1.0) {
            e.add("thresholds.lymphocyte_probability", "between 0 and 1");
        }
        e.into_result()
    }

    /// The card against what the model declares: the input by name with a matching shape, and
    /// every output the card names (a model's dynamic dimensions match anything).
    pub fn check_against(&self, inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Result<(), Problems> {
        let mut e = Problems::default();
        let fits = |card: &[i64], model: &[i64]| {
            card.len() == model.len() && card.iter().zip(model).all(|(c, m)| *c == *m || *c == -1 || *m < 0)
        };
        let names =
            |ts: &[TensorInfo]| ts.iter().map(|t| format!("{} {:?}", t.name, t.shape)).collect::<Vec<_>>().join(", ");
        match inputs.iter().find(|i| i.name == self.input.name) {
            None => {
                e.add("input.name", format!("the model has no input {:?}; it has {}", self.input.name, names(inputs)))
            }
            Some(i) if !i.float32 => e.add("input.dtype", format!("the model's input {} is not float32", i.name)),
            Some(i) if !fits(&self.input.shape, &i.shape) => e.add(
                "input.shape",
                format!("the card says {:?}, the model's {} is {:?}", self.input.shape, i.name, i.shape),
            ),
            Some(_) => {}
        }
        if inputs.len() != 1 {
            e.add("input", format!("the pipeline feeds one input; the model has {}", names(inputs)));
        }
        for o in &self.outputs {
            match outputs.iter().find(|m| m.name == o.name) {
                None => e.add("outputs", format!("the model has no output {:?}; it has {}", o.name, names(outputs))),
                Some(m) if !fits(&o.shape, &m.shape) => {
                    e.add("outputs", format!("the card says {} is {:?}, the model's is {:?}", o.name, o.shape, m.shape))
                }
                Some(_) => {}
            }
        }
        e.into_result()
    }
}

/// What is wrong with a card, field by field (`input.shape`, `thresholds.itil_per_mm2`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems(pub Vec<(String, String)>);

impl Problems {
    fn single(field: &str, message: String) -> Problems {
        Problems(vec![(field.into(), message)])
    }
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }
    fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(field, message)| format!("{field}: {message}")).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model fixture (the crate's folder read when the test runs: see evidentia-wsi's `fixture`).
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
        std::fs::read(std::path::Path::new(&crate_dir).join("../../tests/fixtures/models").join(name)).unwrap()
    }

    #[test]
    fn the_fixture_card_is_valid() {
        let card = ModelCard::parse(&fixture("tiny-fcn.json")).unwrap();
        assert_eq!(card.key(), "tiny-fcn@0.1.0");
        assert_eq!(card.thresholds.itil_per_mm2, 106.0);
    }

    #[test]
    fn problems_are_named() {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("tiny-fcn.json")).unwrap();
        v.as_object_mut().unwrap().remove("mpp");
        let err = ModelCard::parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("missing field `mpp`"), "{err}");
        let wrong = ModelCard::parse(&fixture("tiny-fcn-wrong-input.json")).unwrap_err().to_string();
        assert!(wrong.contains("input.shape: 3 channels of 512×512 px"), "{wrong}");
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("tiny-fcn.json")).unwrap();
        v["normalisation"]["std"] = serde_json::json!([0.5, 0.0, 0.5]);
        v["thresholds"]["lymphocyte_probability"] = serde_json::json!(1.5);
        let err = ModelCard::parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("normalisation") && err.contains("lymphocyte_probability"), "{err}");
    }

    #[test]
    fn the_card_is_checked_against_the_model() {
        let card = ModelCard::parse(&fixture("tiny-fcn.json")).unwrap();
        let t = |name: &str, shape: &[i64]| TensorInfo { name: name.into(), shape: shape.to_vec(), float32: true };
        let inputs = [t("tiles", &[-1, 3, 256, 256])];
        let outputs = [t("tissue", &[-1, 3, 64, 64]), t("lymphocytes", &[-1, 1, 64, 64])];
        assert!(card.check_against(&inputs, &outputs).is_ok());
        let err = card.check_against(&[t("image", &[-1, 3, 256, 256])], &outputs).unwrap_err().to_string();
        assert!(err.contains("no input \"tiles\""), "{err}");
        let err = card.check_against(&inputs, &outputs[..1]).unwrap_err().to_string();
        assert!(err.contains("no output \"lymphocytes\""), "{err}");
        let err =
            card.check_against(&inputs, &[t("tissue", &[-1, 3, 32, 32]), outputs[1].clone()]).unwrap_err().to_string();
        assert!(err.contains("the card says tissue is [-1, 3, 64, 64]"), "{err}");
    }
}
