//! Demo case data: a REDCap dictionary and ~200 subjects' site spreadsheets, full of the
//! identifiers real exports carry, imported through the same de-identifying path as any upload.

use super::truth::DemoSubject;

/// The demo study's REDCap data dictionary (the last column is Evidentia's action).
pub const DICTIONARY_CSV: &str = include_str!("demo_dictionary.csv");

const SEX: [&str; 2] = ["Male", "Female"];

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One site export as CSV bytes, for the subjects of `site`.
pub fn site_export(subjects: &[DemoSubject], site: &str) -> Vec<u8> {
    let mut out = String::from(
        "record_id,site,patient_name,mrn,birth_date,phone,zip_code,age,sex,smoking,histology,stage,ecog,pdl1_tps,ici_start_date,\
progression,pfs_months,death,os_months,mets___1,mets___2,mets___3,mets___4,clinical_notes,redcap_event_name\n",
    );
    for s in subjects.iter().filter(|s| s.site == site) {
        let note = format!(
            "{} ({}), MRN {}. {} started ICI on {}. Contact {}. {}",
            s.name,
            SEX[(s.sex - 1) as usize],
            s.mrn,
            s.name,
            s.ici_start.format("%Y-%m-%d"),
            s.phone,
            if s.progressed { "Progressed on therapy." } else { "No progression at last visit." }
        );
        let mets: Vec<&str> = (1..=4).map(|m| if s.metastases.contains(&m) { "1" } else { "0" }).collect();
        let row = [
            s.hospital_id.clone(),
            s.site.to_string(),
            s.name.clone(),
            s.mrn.clone(),
            s.birth_date.format("%Y-%m-%d").to_string(),
            s.phone.clone(),
            s.zip.clone(),
            s.age.to_string(),
            s.sex.to_string(),
            s.smoking.to_string(),
            s.histology.to_string(),
            s.stage.to_string(),
            s.ecog.to_string(),
            format!("{}", s.pdl1_tps),
            s.ici_start.format("%Y-%m-%d").to_string(),
            (s.progressed as u8).to_string(),
            format!("{}", s.pfs_months),
            (s.died as u8).to_string(),
            format!("{}", s.os_months),
            mets[0].into(),
            mets[1].into(),
            mets[2].into(),
            mets[3].into(),
            note,
            "baseline_arm_1".into(),
        ];
        out.push_str(&row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out.into_bytes()
}
