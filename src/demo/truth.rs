//! The demo's ground truth: one seeded generator decides each subject's tumour-immune phenotype,
//! outcome and characteristics first; every part of the demo (cases, slides, reads and through
//! the slides the AI runs) derives from it, so the analyses tell one coherent story.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

pub const SEED: u64 = 20_261_125;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phenotype {
    Inflamed,
    Excluded,
    Desert,
}

impl Phenotype {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phenotype::Inflamed => "inflamed",
            Phenotype::Excluded => "excluded",
            Phenotype::Desert => "desert",
        }
    }
}

/// One demo subject: the truth, then the clinical record a site would hold (with PHI).
#[derive(Debug, Clone)]
pub struct DemoSubject {
    pub site: &'static str,
    pub hospital_id: String,
    pub name: String,
    pub mrn: String,
    pub birth_date: chrono::NaiveDate,
    pub phone: String,
    pub zip: String,
    pub age: i64,
    pub sex: u8,
    pub smoking: u8,
    pub histology: u8,
    pub stage: u8,
    pub ecog: u8,
    pub pdl1_tps: f64,
    pub phenotype: Phenotype,
    pub ici_start: chrono::NaiveDate,
    pub progressed: bool,
    pub pfs_months: f64,
    pub died: bool,
    pub os_months: f64,
    pub metastases: Vec<u8>,
}

const SURNAMES: [&str; 12] = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오"];
const SYLLABLES: [&str; 16] =
    ["민", "지", "서", "준", "현", "우", "예", "은", "도", "하", "수", "연", "진", "호", "영", "재"];

/// Exponential draw with the given mean.
fn exp(rng: &mut ChaCha12Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.gen::<f64>()).ln()
}

/// `n` subjects, the same for the same seed. Phenotype shares follow Park et al. (J Clin Oncol
/// 2022): 44.0 % inflamed, 37.1 % excluded, 18.9 % desert; inflamed tumours progress later under
/// immune checkpoint inhibitors.
pub fn subjects(n: usize, seed: u64) -> Vec<DemoSubject> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let base = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or_default();
    (0..n)
        .map(|i| {
            let site = if i % 20 < 11 { "SNUBH" } else { "SMC" };
            let u: f64 = rng.gen();
            let phenotype = if u < 0.440 {
                Phenotype::Inflamed
            } else if u < 0.811 {
                Phenotype::Excluded
            } else {
                Phenotype::Desert
            };
            let (pfs_mean, tps_mean) = match phenotype {
                Phenotype::Inflamed => (11.0, 45.0),
                Phenotype::Excluded => (5.5, 20.0),
                Phenotype::Desert => (4.0, 8.0),
            };
            let age = rng.gen_range(38..=93);
            let birth_date = base - chrono::Duration::days(age * 365 + rng.gen_range(0..365));
            let ici_start = base + chrono::Duration::days(rng.gen_range(0..900));
            let follow_up = rng.gen_range(6.0..36.0);
            let pfs = exp(&mut rng, pfs_mean);
            let progressed = pfs < follow_up;
            let os = pfs + exp(&mut rng, 9.0);
            let died = os < follow_up;
            let name = format!(
                "{}{}{}",
                SURNAMES[rng.gen_range(0..SURNAMES.len())],
                SYLLABLES[rng.gen_range(0..SYLLABLES.len())],
                SYLLABLES[rng.gen_range(0..SYLLABLES.len())]
            );
            let mut metastases: Vec<u8> = (1..=4).filter(|_| rng.gen_bool(0.3)).collect();
            metastases.sort();
            DemoSubject {
                site,
                hospital_id: format!("{}-{:06}", if site == "SNUBH" { "B" } else { "S" }, 100_000 + i * 37),
                name,
                mrn: format!("{:08}", 10_000_000 + i * 7919),
                birth_date,
                phone: format!("010-{:04}-{:04}", rng.gen_range(1000..9999), rng.gen_range(1000..9999)),
                zip: format!("{:05}", rng.gen_range(10000..63000)),
                age,
                sex: rng.gen_range(1..=2),
                smoking: rng.gen_range(1..=3),
                histology: if rng.gen_bool(0.65) {
                    1
                } else if rng.gen_bool(0.8) {
                    2
                } else {
                    3
                },
                stage: rng.gen_range(1..=4),
                ecog: rng.gen_range(0..=2),
                pdl1_tps: (exp(&mut rng, tps_mean).min(100.0) * 10.0).round() / 10.0,
                phenotype,
                ici_start,
                progressed,
                pfs_months: (pfs.min(follow_up) * 10.0).round() / 10.0,
                died,
                os_months: (os.min(follow_up) * 10.0).round() / 10.0,
                metastases,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_subjects_and_plausible_shares() {
        let a = subjects(500, SEED);
        let b = subjects(500, SEED);
        assert_eq!(a.iter().map(|s| &s.name).collect::<Vec<_>>(), b.iter().map(|s| &s.name).collect::<Vec<_>>());
        let inflamed = a.iter().filter(|s| s.phenotype == Phenotype::Inflamed).count() as f64 / 500.0;
        assert!((0.38..0.50).contains(&inflamed), "{inflamed}");
        let mean = |p: Phenotype| {
            let v: Vec<f64> = a.iter().filter(|s| s.phenotype == p).map(|s| s.pfs_months).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(Phenotype::Inflamed) > mean(Phenotype::Desert), "inflamed tumours progress later");
    }

    /// The demo's subjects and the site exports drawn from them are fixtures: the same seed must
    /// give the same bytes on every machine and after every dependency upgrade.
    #[test]
    fn the_demo_subjects_keep_their_checksum() {
        use sha2::{Digest, Sha256};
        let subjects = subjects(crate::demo::DEMO_SUBJECTS, SEED);
        let mut h = Sha256::new();
        for site in ["SNUBH", "SMC"] {
            h.update(crate::demo::cases::site_export(&subjects, site));
        }
        assert_eq!(
            hex::encode(h.finalize()),
            "ed3b4c5a2453922a3176590846fd8757cdc28b3e14bd88bf1c419fbda4f18737",
            "the demo's site exports changed"
        );
    }
}
