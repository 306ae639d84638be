//! The tumour-immune phenotype rule (docs/models.md; the Lunit SCOPE IO definition, Park et al.,
//! J Clin Oncol 2022): per 1 mm² grid cell, *inflamed* if the intratumoural TIL density
//! (TILs per mm² of cancer epithelium) reaches T_i, else *immune-excluded* if the stromal TIL
//! density reaches T_s, else *immune-desert*; cells with less epithelium than the minimum are not
//! scored. The slide is inflamed if at least a third of its scored cells are, else excluded if at
//! least a third are, else desert; no scored cell, no phenotype. The thresholds come from the
//! model card. One home for the rule: the synthetic slides' truth and the AI pipeline both use it.
//!
//! An engine crate (no database, no I/O): the application uses it as `evidentia::biomarker::phenotype`,
//! and `evidentia-wsi` computes the synthetic slides' ground truth with it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellClass {
    Inflamed,
    Excluded,
    Desert,
}

impl CellClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            CellClass::Inflamed => "inflamed",
            CellClass::Excluded => "excluded",
            CellClass::Desert => "desert",
        }
    }
}

/// The thresholds of the rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub itil_per_mm2: f64,
    pub stil_per_mm2: f64,
    pub min_epithelium_mm2: f64,
    /// The share of scored cells that decides the slide (one third).
    pub slide_share: f64,
}

impl Rule {
    /// A cell's class from its epithelium area and TIL densities (None: not scored).
    pub fn cell(&self, epithelium_mm2: f64, itil_density: Option<f64>, stil_density: Option<f64>) -> Option<CellClass> {
        (epithelium_mm2 >= self.min_epithelium_mm2).then(|| {
            if itil_density.unwrap_or(0.0) >= self.itil_per_mm2 {
                CellClass::Inflamed
            } else if stil_density.unwrap_or(0.0) >= self.stil_per_mm2 {
                CellClass::Excluded
            } else {
                CellClass::Desert
            }
        })
    }

    /// The slide's phenotype from its scored cells' counts (None when none was scored).
    pub fn slide(&self, inflamed: u32, excluded: u32, desert: u32) -> Option<CellClass> {
        let scored = inflamed + excluded + desert;
        (scored > 0).then(|| {
            let share = |n: u32| f64::from(n) / f64::from(scored);
            // A tiny tolerance so that exactly one third counts as reaching a one-third share.
            if share(inflamed) + 1e-12 >= self.slide_share {
                CellClass::Inflamed
            } else if share(excluded) + 1e-12 >= self.slide_share {
                CellClass::Excluded
            } else {
                CellClass::Desert
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule =
        Rule { itil_per_mm2: 106.0, stil_per_mm2: 357.0, min_epithelium_mm2: 0.05, slide_share: 1.0 / 3.0 };

    #[test]
    fn cells_follow_the_thresholds_inclusively() {
        assert_eq!(RULE.cell(0.2, Some(106.0), Some(0.0)), Some(CellClass::Inflamed), "T_i itself is inflamed");
        assert_eq!(RULE.cell(0.2, Some(105.9), Some(357.0)), Some(CellClass::Excluded), "then T_s");
        assert_eq!(RULE.cell(0.2, Some(500.0), Some(900.0)), Some(CellClass::Inflamed), "inflamed wins over excluded");
        assert_eq!(RULE.cell(0.2, None, Some(10.0)), Some(CellClass::Desert));
        assert_eq!(RULE.cell(0.049, Some(900.0), None), None, "too little epithelium: not scored");
    }

    #[test]
    fn the_slide_takes_the_first_class_reaching_a_third() {
        assert_eq!(RULE.slide(1, 1, 1), Some(CellClass::Inflamed), "exactly a third");
        assert_eq!(RULE.slide(1, 2, 4), Some(CellClass::Desert), "1/7 inflamed and 2/7 excluded are below a third");
        assert_eq!(RULE.slide(2, 3, 4), Some(CellClass::Excluded));
        assert_eq!(RULE.slide(0, 0, 0), None);
    }
}
