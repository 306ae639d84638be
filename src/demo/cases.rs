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

/// The demo study's schedule, as REDCap's design files: a baseline and four follow-up visits
/// (months 3, 6, 12 and 24 after the start of immunotherapy), where response, progression and
/// death are recorded; immune-related adverse events repeat at the visits.
pub const EVENTS_CSV: &str = "event_name,arm_num,day_offset,unique_event_name\n\
Baseline,1,0,baseline_arm_1\nMonth 3,1,91,month_3_arm_1\nMonth 6,1,183,month_6_arm_1\n\
Month 12,1,365,month_12_arm_1\nMonth 24,1,730,month_24_arm_1\n";
pub const MAPPING_CSV: &str = "arm_num,unique_event_name,form\n1,baseline_arm_1,baseline\n1,baseline_arm_1,outcome\n\
1,month_3_arm_1,followup\n1,month_3_arm_1,irae\n1,month_6_arm_1,followup\n1,month_6_arm_1,irae\n\
1,month_12_arm_1,followup\n1,month_12_arm_1,irae\n1,month_24_arm_1,followup\n1,month_24_arm_1,irae\n";
pub const REPEATING_CSV: &str = "event_name,form_name,custom_form_label\n\
month_3_arm_1,irae,[irae_term]\nmonth_6_arm_1,irae,[irae_term]\nmonth_12_arm_1,irae,[irae_term]\nmonth_24_arm_1,irae,[irae_term]\n";

/// The follow-up visits: unique event name and month.
const VISITS: [(&str, f64); 4] =
    [("month_3_arm_1", 3.0), ("month_6_arm_1", 6.0), ("month_12_arm_1", 12.0), ("month_24_arm_1", 24.0)];

/// Days in a mean month (365.25 / 12).
const MONTH_DAYS: f64 = 30.4375;

/// One site export as CSV bytes, for the subjects of `site`: REDCap's longitudinal export, a
/// row per subject and event (and per adverse event), the site as its data access group.
pub fn site_export(subjects: &[DemoSubject], site: &str) -> Vec<u8> {
    let mut out = String::from(
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,redcap_data_access_group,\
patient_name,mrn,birth_date,phone,zip_code,age,sex,smoking,histology,stage,ecog,pdl1_tps,mets___1,mets___2,mets___3,mets___4,\
baseline_complete,ici_start_date,progression,pfs_months,death,os_months,clinical_notes,outcome_complete,\
visit_date,response,death_fu,followup_complete,irae_term,irae_grade,irae_complete\n",
    );
    // Cells of the baseline forms, the follow-up form and the adverse-event form.
    const BASE: usize = 24;
    const FOLLOWUP: usize = 4;
    const IRAE: usize = 3;
    let mut push = |id: &str, event: &str, repeat: (&str, &str), base: &[String], fu: &[String], irae: &[String]| {
        let mut row: Vec<String> =
            vec![id.to_string(), event.into(), repeat.0.into(), repeat.1.into(), site.to_lowercase()];
        for (cells, n) in [(base, BASE), (fu, FOLLOWUP), (irae, IRAE)] {
            if cells.is_empty() {
                row.extend(std::iter::repeat_n(String::new(), n));
            } else {
                row.extend(cells.iter().cloned());
            }
        }
        out.push_str(&row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    };
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
        let base = [
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
            mets[0].into(),
            mets[1].into(),
            mets[2].into(),
            mets[3].into(),
            "2".into(),
            s.ici_start.format("%Y-%m-%d").to_string(),
            (s.progressed as u8).to_string(),
            format!("{}", s.pfs_months),
            (s.died as u8).to_string(),
            format!("{}", s.os_months),
            note,
            "2".into(),
        ];
        push(&s.hospital_id, "baseline_arm_1", ("", ""), &base, &[], &[]);
        let seed = s.hospital_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        for (k, (event, month)) in VISITS.iter().enumerate() {
            let date = |m: f64| {
                (s.ici_start + chrono::Duration::days((m * MONTH_DAYS).round() as i64)).format("%Y-%m-%d").to_string()
            };
            if *month <= s.os_months {
                let response = if s.progressed && s.pfs_months <= *month {
                    "4"
                } else if (seed >> k) % 3 == 0 {
                    "2"
                } else {
                    "3"
                };
                // Most visit forms complete; a few still awaiting the site's review.
                let status = if (seed >> (k + 3)) % 7 == 0 { "1" } else { "2" };
                push(
                    &s.hospital_id,
                    event,
                    ("", ""),
                    &[],
                    &[date(*month), response.into(), "0".into(), status.into()],
                    &[],
                );
                // Immune-related adverse events at some visits (REDCap's repeating instrument).
                let events = match (seed >> (k * 2)) % 11 {
                    0 => 2,
                    1 | 2 => 1,
                    _ => 0,
                };
                for n in 1..=events {
                    let term = ((seed >> (k + n)) % 5 + 1).to_string();
                    let grade = ((seed >> (k + 2 * n)) % 3 + 1).to_string();
                    push(&s.hospital_id, event, ("irae", &n.to_string()), &[], &[], &[term, grade, "2".into()]);
                }
            } else {
                if s.died {
                    push(
                        &s.hospital_id,
                        event,
                        ("", ""),
                        &[],
                        &[date(s.os_months), String::new(), "1".into(), "2".into()],
                        &[],
                    );
                }
                break;
            }
        }
    }
    out.into_bytes()
}
