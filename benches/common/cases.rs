//! Generated case data for the benchmarks: a REDCap dictionary of 30 fields and a site export
//! of N subjects full of PHI (names, MRNs, birth dates, phones, e-mails, ZIP codes, free text).

use evidentia::auth::permissions::StudyAccess;
use evidentia::auth::{permissions, Actor};
use evidentia::cases::{deid::StudyKey, dictionary};
use evidentia::studies::{self, sites, StudyInput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// A study `code` with one site (SNUBH) and the dictionary below, ready for `import::prepare`:
/// its access, fields, sites and pseudonymisation key.
pub fn study_with_dictionary(
    conn: &mut evidentia::db::Conn,
    data_dir: &std::path::Path,
    code: &str,
) -> anyhow::Result<(StudyAccess, Vec<dictionary::FieldDef>, Vec<sites::Site>, StudyKey)> {
    let op = Actor::cli_operator();
    studies::create(conn, &op, &StudyInput { code: code.into(), title: "Bench".into(), ..Default::default() })?;
    let access = permissions::study_access(conn, &op, code)?;
    sites::add(conn, &op, &access, &sites::SiteInput { code: "SNUBH".into(), name: "S".into(), ..Default::default() })?;
    let parsed = dictionary::parse_redcap("bench dictionary", dictionary_csv().as_bytes())
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    dictionary::replace(conn, &op, &access, &parsed.fields, false, false)?;
    let fields = dictionary::load(conn, access.study.id)?;
    let site_list = sites::list(conn, access.study.id, false)?;
    let key = evidentia::cases::deid::study_key(conn, data_dir, code)?;
    Ok((access, fields, site_list, key))
}

const LABS: usize = 14;

pub fn dictionary_csv() -> String {
    let mut d = String::from(
        "Variable / Field Name,Form Name,Section Header,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Field Note,Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?,Branching Logic (Show field only if...),Required Field?\n\
subject_id,f,,text,Subject,,,,,,y,,y\n\
patient_name,f,,text,Name,,,,,,y,,\n\
mrn,f,,text,MRN,,,,,,y,,\n\
birth_date,f,,text,Birth date,,,date_ymd,,,y,,\n\
phone,f,,text,Phone,,,phone,,,y,,\n\
email,f,,text,E-mail,,,email,,,y,,\n\
zip_code,f,,text,ZIP,,,,,,y,,\n\
age,f,,text,Age,,,integer,0,120,,,y\n\
sex,f,,radio,Sex,\"1, Male | 2, Female\",,,,,,,y\n\
stage,f,,dropdown,Stage,\"1, I | 2, II | 3, III | 4, IV\",,,,,,,\n\
smoking,f,,dropdown,Smoking,\"1, Never | 2, Former | 3, Current\",,,,,,,\n\
dx_date,f,,text,Diagnosis date,,,date_ymd,,,,,\n\
progression,f,,yesno,Progression,,,,,,,,\n\
pfs_months,f,,text,PFS,,,number,0,200,,,\n",
    );
    for i in 0..LABS {
        d.push_str(&format!("lab{i},f,,text,Lab {i},,,number,0,10000,,,\n"));
    }
    d.push_str("notes,f,,notes,Notes,,,,,,,,\n");
    d
}

pub fn site_export(n: usize) -> String {
    let mut rng = ChaCha12Rng::seed_from_u64(42);
    let mut s = String::from("subject_id,site,patient_name,mrn,birth_date,phone,email,zip_code,age,sex,stage,smoking,dx_date,progression,pfs_months");
    for i in 0..LABS {
        s.push_str(&format!(",lab{i}"));
    }
    s.push_str(",notes\n");
    const SUR: [&str; 8] = ["Kim", "Lee", "Park", "Choi", "Jung", "Smith", "Garcia", "Nguyen"];
    for i in 0..n {
        let name = format!("{} Patient{i}", SUR[i % SUR.len()]);
        let phone = format!("010-{:04}-{:04}", rng.gen_range(1000..9999), rng.gen_range(1000..9999));
        s.push_str(&format!(
            "H{i:07},SNUBH,{name},MRN{:08},19{:02}-{:02}-{:02},{phone},p{i}@example.org,{:05},{},{},{},{},2023-{:02}-{:02},{},{:.1}",
            10_000_000 + i,
            rng.gen_range(30..99),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            rng.gen_range(10000..99999),
            rng.gen_range(30..95),
            rng.gen_range(1..3),
            rng.gen_range(1..5),
            rng.gen_range(1..4),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            rng.gen_range(0..2),
            rng.gen_range(0.5..40.0)
        ));
        for _ in 0..LABS {
            s.push_str(&format!(",{:.2}", rng.gen_range(0.0..500.0)));
        }
        s.push_str(&format!(",\"{name} seen 2023-05-02, call {phone}. Stable disease, ECOG 1.\"\n"));
    }
    s
}
