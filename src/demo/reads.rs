//! Demo reads: the annotation schema, a finished first-read campaign in which the two demo
//! pathologists read every demo slide (each with their own accuracy against the subject's true
//! phenotype, so agreement is realistic), the manager's adjudication of their disagreements, a
//! re-read campaign waiting out its washout, and an open training read of one site's slides
//! (shown two case fields) to try the workbench on.

use std::collections::BTreeMap;

use diesel::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::{Map, Value};

use super::truth::{self, Phenotype};
use super::DemoStudy;
use crate::annotations::campaigns::{self, CampaignInput};
use crate::annotations::reads::{self, Draft};
use crate::annotations::schema::{self, Definition};
use crate::annotations::{adjudication, rectangle, Geometry, ObjectType, Region, RegionClass};
use crate::auth::permissions::study_access;
use crate::auth::{users, Actor};
use crate::db::schema::{cases, slides};
use crate::db::Conn;
use crate::error::Result;

/// The readers: (username, chance of reading the true phenotype).
const READERS: [(&str, f64); 2] = [("annotator1", 0.85), ("annotator2", 0.75)];
/// The pathologist who adjudicates the first read's disagreements.
const ADJUDICATOR: &str = "annotator3";

/// Seeds schema, campaigns and reads once there are slides and no schema yet.
pub fn seed_reads(conn: &mut Conn, data_dir: &std::path::Path, demo: &DemoStudy) -> Result<Vec<String>> {
    let operator = Actor::cli_operator();
    let access = study_access(conn, &operator, demo.code)?;
    let sid = access.study.id;
    if schema::current(conn, sid)?.is_some() || crate::slides::count(conn, sid)? == 0 {
        return Ok(Vec::new());
    }
    schema::save(conn, &operator, &access, &Definition::parse_text(schema::DEFAULT_TEXT)?, "")?;
    let campaign = campaigns::create(
        conn,
        &operator,
        &access,
        &CampaignInput {
            name: "First read".into(),
            readers: READERS.iter().map(|(u, _)| u.to_string()).collect(),
            blind_case_data: true,
            seed: Some(20_261_126),
            tolerances: BTreeMap::from([("til_density".to_string(), 100.0)]),
            adjudicator: ADJUDICATOR.into(),
            ..Default::default()
        },
    )?;

    // Each slide's subject, through the same keyed pseudonym the import used.
    let key = crate::cases::deid::study_key(conn, data_dir, demo.code)?;
    let subjects = truth::subjects(demo.subjects, demo.seed);
    let truth_of: BTreeMap<String, Phenotype> =
        subjects.iter().map(|s| (key.subject_key(s.site, &s.hospital_id), s.phenotype)).collect();
    let slide_truth: BTreeMap<i32, (Phenotype, i64, i64)> = slides::table
        .inner_join(cases::table)
        .filter(slides::study_id.eq(sid))
        .select((slides::id, cases::subject_key, slides::width, slides::height))
        .load::<(i32, String, i64, i64)>(conn)?
        .into_iter()
        .filter_map(|(id, k, w, h)| truth_of.get(&k).map(|p| (id, (*p, w, h))))
        .collect();

    let all = reads::of_campaign(conn, sid, campaign.id)?;
    for (i, (username, accuracy)) in READERS.iter().enumerate() {
        let actor = users::actor_for_username(conn, username)?;
        let reader_access = study_access(conn, &actor, demo.code)?;
        let mut rng = ChaCha12Rng::seed_from_u64(demo.seed + 100 + i as u64);
        for read in all.iter().filter(|r| r.reader == *username) {
            let Some(&(truth, w, h)) = slide_truth.get(&read.slide_id) else { continue };
            let draft = demo_read(&mut rng, truth, *accuracy, w as f64, h as f64);
            reads::save_draft(conn, &actor, &reader_access, read.id, &draft)?;
            reads::submit(conn, &actor, &reader_access, read.id, &draft.values)?;
        }
    }

    // A third pathologist adjudicates, blinded to who said what: the phenotype they see is the
    // truth, numbers take the mean.
    let adjudicator = users::actor_for_username(conn, ADJUDICATOR)?;
    let adjudicator_access = study_access(conn, &adjudicator, demo.code)?;
    let def = schema::require_current(conn, sid)?.definition();
    let mut adjudicated = 0;
    for d in adjudication::disagreements(conn, sid, &campaign, &def)? {
        let truth = slide_truth.get(&d.slide_id).map(|t| t.0.as_str()).unwrap_or("excluded");
        let value = match d.field.as_str() {
            "phenotype" => truth.to_string(),
            _ => {
                let xs: Vec<f64> = d.values.iter().filter_map(|(_, v)| v.parse().ok()).collect();
                format!("{:.0}", xs.iter().sum::<f64>() / xs.len().max(1) as f64)
            }
        };
        adjudication::adjudicate(
            conn,
            &adjudicator,
            &adjudicator_access,
            campaign.id,
            adjudication::SlideRef::Label(&d.slide),
            &d.field,
            &value,
            "",
        )?;
        adjudicated += 1;
    }

    if !demo.more_campaigns {
        return Ok(vec![format!(
            "annotation schema and campaign \"First read\" in {} ({} reads by 2 pathologists, {adjudicated} disagreements adjudicated)",
            demo.code,
            all.len()
        )]);
    }
    // The reader study's second arm: the same readers, AI-assisted (with the demo run when it
    // covers every slide), after a washout.
    let ai_run_id = super::runs::finished_run(conn, sid)?;
    campaigns::create(
        conn,
        &operator,
        &access,
        &CampaignInput {
            name: if ai_run_id.is_some() { "AI-assisted re-read" } else { "Re-read" }.into(),
            parent_id: Some(campaign.id),
            washout_days: 28,
            seed: Some(20_261_224),
            ai_run_id,
            ..Default::default()
        },
    )?;
    // Something to try the workbench on: the SMC slides, not read yet.
    campaigns::create(
        conn,
        &operator,
        &access,
        &CampaignInput {
            name: "Training read (SMC)".into(),
            readers: READERS.iter().map(|(u, _)| u.to_string()).collect(),
            site: "SMC".into(),
            blind_case_data: false,
            case_fields: vec!["histology".into(), "stage".into()],
            seed: Some(20_261_127),
            ai_run_id,
            training: true,
            ..Default::default()
        },
    )?;
    Ok(vec![format!(
        "annotation schema, campaign \"First read\" ({} reads by 2 pathologists, {adjudicated} disagreements adjudicated), \
         {} after a 28-day washout, and an open {}training read of the SMC slides",
        all.len(),
        if ai_run_id.is_some() { "an AI-assisted re-read" } else { "a re-read" },
        if ai_run_id.is_some() { "AI-assisted " } else { "" },
    )])
}

/// One pathologist's read of a slide whose true phenotype is `truth`: right with probability
/// `accuracy`, else the neighbouring phenotype; TIL density around the phenotype's typical value;
/// a tumour area and a few lymphocytes drawn on it.
fn demo_read(rng: &mut ChaCha12Rng, truth: Phenotype, accuracy: f64, w: f64, h: f64) -> Draft {
    let read = if rng.gen_bool(accuracy) {
        truth
    } else {
        match truth {
            Phenotype::Inflamed | Phenotype::Desert => Phenotype::Excluded,
            Phenotype::Excluded if rng.gen_bool(0.5) => Phenotype::Inflamed,
            Phenotype::Excluded => Phenotype::Desert,
        }
    };
    let typical = match read {
        Phenotype::Inflamed => 420.0,
        Phenotype::Excluded => 180.0,
        Phenotype::Desert => 40.0,
    };
    let density: f64 = (typical * rng.gen_range(0.6..1.4_f64)).round();
    let mut values = Map::new();
    values.insert("phenotype".into(), Value::String(read.as_str().into()));
    values.insert("til_density".into(), Value::String(format!("{density}")));
    values.insert("tumour_present".into(), Value::String("yes".into()));
    let class = |name: &str, color: [u8; 3]| Some(RegionClass { name: name.into(), color });
    let (x, y) = (w * rng.gen_range(0.2..0.35), h * rng.gen_range(0.2..0.35));
    let mut regions = vec![Region {
        id: None,
        class: class("Tumor", [0xc8, 0x32, 0x32]),
        object_type: ObjectType::Annotation,
        geometry: rectangle(x, y, w * 0.4, h * 0.4),
        name: None,
    }];
    for _ in 0..rng.gen_range(8..24) {
        regions.push(Region {
            id: None,
            class: class("Lymphocyte", [0x1f, 0x77, 0xb4]),
            object_type: ObjectType::Annotation,
            geometry: Geometry::Point([x + rng.gen_range(0.0..w * 0.4), y + rng.gen_range(0.0..h * 0.4)]),
            name: None,
        });
    }
    Draft { values, regions, base: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo readers' reads are drawn from a seeded generator: the same seed must give the
    /// same reads on every machine and after every dependency upgrade.
    #[test]
    fn the_demo_reads_keep_their_checksum() {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for i in 0..2u64 {
            let mut rng = ChaCha12Rng::seed_from_u64(truth::SEED + 100 + i);
            for truth in [Phenotype::Inflamed, Phenotype::Excluded, Phenotype::Desert].into_iter().cycle().take(30) {
                h.update(format!("{:?}", demo_read(&mut rng, truth, 0.8, 6000.0, 4000.0)));
            }
        }
        assert_eq!(
            hex::encode(h.finalize()),
            "8f79d3e04f7c9f07089e5f3862506cb6a91341944c56fe5083646687f918d6a6",
            "the demo's reads changed"
        );
    }
}
