//! Change control: two runs of a study (e.g. model v1 and v2) compared on the slides both
//! analysed — the phenotype confusion matrix, percent agreement and Cohen's kappa, and per slide
//! what changed (phenotype, scores, densities).

use serde::Serialize;

use super::runs::{self, Run, SlideResultRow};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::stats::agreement::{cohen_kappa, ConfusionMatrix, Kappa, Weights};

/// The phenotypes in their order (rows run A, columns run B).
pub const PHENOTYPES: [&str; 3] = ["inflamed", "excluded", "desert"];

/// One slide in either run.
#[derive(Debug, Clone, Serialize)]
pub struct SlidePair {
    pub slide: String,
    pub a: Option<SlideResultRow>,
    pub b: Option<SlideResultRow>,
}

impl SlidePair {
    fn phenotype(r: &Option<SlideResultRow>) -> Option<super::runs::Phenotype> {
        r.as_ref().and_then(|r| r.phenotype)
    }
    /// Both runs gave the slide a phenotype.
    pub fn comparable(&self) -> bool {
        Self::phenotype(&self.a).is_some() && Self::phenotype(&self.b).is_some()
    }
    /// The phenotype differs (or one run has none where the other has one).
    pub fn changed(&self) -> bool {
        Self::phenotype(&self.a) != Self::phenotype(&self.b)
    }
    pub fn phenotype_a(&self) -> &str {
        Self::phenotype(&self.a).map(|p| p.as_str()).unwrap_or("")
    }
    pub fn phenotype_b(&self) -> &str {
        Self::phenotype(&self.b).map(|p| p.as_str()).unwrap_or("")
    }
    /// B − A of a measurement both runs have.
    pub fn delta(&self, f: impl Fn(&SlideResultRow) -> Option<f64>) -> Option<f64> {
        Some(f(self.b.as_ref()?)? - f(self.a.as_ref()?)?)
    }
}

/// Mean absolute difference and the largest absolute difference of a measurement over the
/// slides where both runs have it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Difference {
    pub n: usize,
    pub mean_abs: Option<f64>,
    pub max_abs: Option<f64>,
}

impl Difference {
    fn of(pairs: &[SlidePair], f: impl Fn(&SlideResultRow) -> Option<f64> + Copy) -> Difference {
        let d: Vec<f64> = pairs.iter().filter_map(|p| p.delta(f)).map(f64::abs).collect();
        Difference {
            n: d.len(),
            mean_abs: (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64),
            max_abs: d.iter().copied().reduce(f64::max),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub run_a: Run,
    pub run_b: Run,
    /// Every slide of either run, changed ones first, then by label.
    pub slides: Vec<SlidePair>,
    pub matrix: ConfusionMatrix,
    pub percent_agreement: Option<f64>,
    pub kappa: Kappa,
    pub changed: usize,
    /// Slides without a phenotype in one of the runs (missing, failed or not scored).
    pub not_comparable: usize,
    pub itil: Difference,
    pub stil: Difference,
}

/// Compares two runs of the study (either order; rows of the matrix are run `a`).
pub fn compare(conn: &mut Conn, access: &StudyAccess, a: i32, b: i32) -> Result<Comparison> {
    access.require(Permission::ViewRuns)?;
    if a == b {
        return Err(Error::invalid("b", "choose two different runs"));
    }
    let sid = access.study.id;
    let (run_a, run_b) = (runs::get(conn, sid, a)?, runs::get(conn, sid, b)?);
    let (ra, rb) = (runs::results(conn, a)?, runs::results(conn, b)?);
    Ok(from_results(run_a, run_b, ra, rb))
}

fn from_results(run_a: Run, run_b: Run, ra: Vec<SlideResultRow>, rb: Vec<SlideResultRow>) -> Comparison {
    let mut by_slide: std::collections::BTreeMap<String, SlidePair> = std::collections::BTreeMap::new();
    for (r, is_a) in ra.into_iter().map(|r| (r, true)).chain(rb.into_iter().map(|r| (r, false))) {
        let slide = r.slide.clone();
        let pair = by_slide.entry(slide.clone()).or_insert(SlidePair { slide, a: None, b: None });
        *(if is_a { &mut pair.a } else { &mut pair.b }) = Some(r);
    }
    let mut slides: Vec<SlidePair> = by_slide.into_values().collect();
    slides.sort_by_key(|p| !p.changed()); // stable: changed first, each group by label
    let categories: Vec<String> = PHENOTYPES.iter().map(|s| s.to_string()).collect();
    let matrix = ConfusionMatrix::from_pairs_in(
        &categories,
        slides.iter().filter(|p| p.comparable()).map(|p| (p.phenotype_a(), p.phenotype_b())),
    );
    Comparison {
        run_a,
        run_b,
        percent_agreement: matrix.percent_agreement(),
        kappa: cohen_kappa(&matrix, Weights::None, 0.95),
        matrix,
        changed: slides.iter().filter(|p| p.comparable() && p.changed()).count(),
        not_comparable: slides.iter().filter(|p| !p.comparable()).count(),
        itil: Difference::of(&slides, |r| r.itil_density_median),
        stil: Difference::of(&slides, |r| r.stil_density_median),
        slides,
    }
}

/// One CSV row per slide: both runs' phenotype and measurements side by side.
#[derive(Debug, Clone)]
pub struct CompareRow<'a>(pub &'a SlidePair);

impl crate::export::CsvRecord for CompareRow<'_> {
    const HEADER: &'static [&'static str] = &[
        "slide",
        "status_a",
        "status_b",
        "phenotype_a",
        "phenotype_b",
        "changed",
        "inflamed_share_a",
        "inflamed_share_b",
        "excluded_share_a",
        "excluded_share_b",
        "desert_share_a",
        "desert_share_b",
        "itil_density_median_a",
        "itil_density_median_b",
        "stil_density_median_a",
        "stil_density_median_b",
    ];
    fn record(&self) -> Vec<String> {
        let p = self.0;
        let f = |r: &Option<SlideResultRow>, g: fn(&SlideResultRow) -> Option<f64>| {
            r.as_ref().and_then(g).map(|x| x.to_string()).unwrap_or_default()
        };
        let status = |r: &Option<SlideResultRow>| r.as_ref().map(|r| r.status.to_string()).unwrap_or("missing".into());
        vec![
            p.slide.clone(),
            status(&p.a),
            status(&p.b),
            p.phenotype_a().to_string(),
            p.phenotype_b().to_string(),
            if p.changed() { "yes" } else { "no" }.to_string(),
            f(&p.a, |r| r.inflamed_share),
            f(&p.b, |r| r.inflamed_share),
            f(&p.a, |r| r.excluded_share),
            f(&p.b, |r| r.excluded_share),
            f(&p.a, |r| r.desert_share),
            f(&p.b, |r| r.desert_share),
            f(&p.a, |r| r.itil_density_median),
            f(&p.b, |r| r.itil_density_median),
            f(&p.a, |r| r.stil_density_median),
            f(&p.b, |r| r.stil_density_median),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i32) -> Run {
        Run {
            id,
            study_id: crate::studies::StudyId::for_tests(1),
            model_name: "m".into(),
            model_version: id.to_string(),
            model_sha256: "0".repeat(64),
            backend: None,
            slide_ids: crate::db::Json(Vec::new()),
            job_id: None,
            created_by: "t".into(),
            provider: None,
            created_at: chrono::NaiveDateTime::default(),
        }
    }

    fn row(slide: &str, phenotype: Option<&str>, itil: Option<f64>) -> SlideResultRow {
        SlideResultRow {
            slide: slide.into(),
            status: if phenotype.is_some() { super::runs::ResultStatus::Ok } else { super::runs::ResultStatus::Failed },
            reason: None,
            phenotype: phenotype
                .map(|p| super::runs::Phenotype::parse(p).unwrap_or_else(|| panic!("no phenotype {p}"))),
            inflamed_share: None,
            excluded_share: None,
            desert_share: None,
            itil_density_median: itil,
            stil_density_median: None,
            grid_cells_scored: None,
            tiles: None,
            flags: "[]".into(),
            seconds: 0.0,
        }
    }

    #[test]
    fn matrix_counts_slides_both_runs_typed_and_lists_changes_first() {
        let a = vec![
            row("S1", Some("inflamed"), Some(100.0)),
            row("S2", Some("excluded"), Some(50.0)),
            row("S3", Some("desert"), None),
            row("S4", None, None),
            row("S5", Some("desert"), Some(10.0)),
        ];
        let b = vec![
            row("S1", Some("inflamed"), Some(110.0)),
            row("S2", Some("inflamed"), Some(150.0)),
            row("S3", Some("desert"), Some(5.0)),
            row("S4", Some("desert"), None),
            row("S6", Some("desert"), None),
        ];
        let c = from_results(run(1), run(2), a, b);
        assert_eq!(c.matrix.n(), 3, "S1, S2, S3: S4 failed in A, S5/S6 in one run only");
        assert_eq!(c.matrix.counts[1][0], 1, "S2 excluded → inflamed");
        assert_eq!(c.percent_agreement, Some(2.0 / 3.0));
        assert_eq!((c.changed, c.not_comparable), (1, 3));
        let order: Vec<&str> = c.slides.iter().map(|p| p.slide.as_str()).collect();
        assert_eq!(order, ["S2", "S4", "S5", "S6", "S1", "S3"]);
        assert_eq!(c.itil.n, 2);
        assert_eq!(c.itil.mean_abs, Some(55.0));
        assert_eq!(c.itil.max_abs, Some(100.0));
    }
}
