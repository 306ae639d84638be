//! Disagreements, adjudication and the reference. A slide whose submitted reads disagree on a
//! field (a different category, or numbers further apart than the campaign's tolerance) goes to
//! the adjudicator; the adjudicated value becomes the reference, both reads stay as they are.
//! Also the campaign's first agreement view, computed by `stats::agreement`.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::campaigns::Campaign;
use super::reads::{self, Read};
use super::schema::{self, Definition, FieldDef};
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::adjudications;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};
use crate::stats::agreement::{self, ReaderPair, Weights};

/// One field of one slide on which the readers disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub slide_id: i32,
    pub slide: String,
    pub field: String,
    /// Reader → value, in reader order.
    pub values: Vec<(String, String)>,
    /// The reads behind `values`, same order (the adjudicator may open them).
    pub read_ids: Vec<i32>,
    /// The adjudicated value, once given.
    pub adjudicated: Option<String>,
    pub adjudicator: Option<String>,
    pub note: Option<String>,
    /// An earlier adjudication of reads that have changed since (reopened): no longer applies.
    pub superseded: Option<String>,
}

/// True when the readers' values of `field` disagree under the campaign's tolerance.
pub fn disagree(field: &FieldDef, values: &[&str], tolerance: f64) -> bool {
    if values.len() < 2 || field.is_comment() {
        return false;
    }
    if field.is_numeric() {
        let nums: Vec<Option<f64>> = values.iter().map(|v| v.trim().parse::<f64>().ok()).collect();
        if nums.iter().any(Option::is_none) {
            // One reader left it empty while another gave a number: that is a disagreement.
            return nums.iter().any(Option::is_some);
        }
        let nums: Vec<f64> = nums.into_iter().flatten().collect();
        let (lo, hi) = nums.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
        // A small epsilon so that a tolerance of 5 accepts 10 and 15 despite binary fractions.
        return hi - lo > tolerance + 1e-9;
    }
    values.iter().any(|v| *v != values[0])
}

/// Submitted reads of a campaign grouped by slide: slide → reader → read. Only slides every
/// assigned reader has submitted; withdrawn reads do not count.
fn complete_slides(reads: &[Read]) -> BTreeMap<(String, i32), BTreeMap<String, &Read>> {
    let mut by_slide: BTreeMap<(String, i32), Vec<&Read>> = BTreeMap::new();
    for r in reads.iter().filter(|r| !r.is_withdrawn()) {
        by_slide.entry((r.slide.clone(), r.slide_id)).or_default().push(r);
    }
    by_slide
        .into_iter()
        .filter(|(_, rs)| rs.iter().all(|r| r.is_submitted()))
        .map(|(k, rs)| (k, rs.into_iter().map(|r| (r.reader.clone(), r)).collect()))
        .collect()
}

#[derive(Debug, Clone, Queryable)]
struct Adjudication {
    slide_id: i32,
    field: String,
    value: String,
    reads_values: String,
    adjudicator: String,
    note: Option<String>,
}

impl Adjudication {
    /// Whether it settles these readers' values (they have not changed since).
    fn settles(&self, values: &[(String, String)]) -> bool {
        serde_json::from_str::<Value>(&self.reads_values).ok() == Some(readers_json(values))
    }
}

/// Reader → value as a JSON object (what an adjudication records it settled).
fn readers_json(values: &[(String, String)]) -> Value {
    Value::Object(values.iter().map(|(r, v)| (r.clone(), Value::String(v.clone()))).collect())
}

fn adjudications_of(conn: &mut Conn, campaign_id: i32) -> Result<Vec<Adjudication>> {
    Ok(adjudications::table
        .filter(adjudications::campaign_id.eq(campaign_id))
        .select((
            adjudications::slide_id,
            adjudications::field,
            adjudications::value,
            adjudications::reads_values,
            adjudications::adjudicator,
            adjudications::note,
        ))
        .load(conn)?)
}

fn json_text(v: &str) -> String {
    serde_json::from_str::<Value>(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Every disagreement of a campaign, adjudicated or not, by slide and field.
pub fn disagreements(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    campaign: &Campaign,
    def: &Definition,
) -> Result<Vec<Disagreement>> {
    let all = reads::of_campaign(conn, study_id, campaign.id)?;
    let done = adjudications_of(conn, campaign.id)?;
    let mut out = Vec::new();
    for ((label, slide_id), by_reader) in complete_slides(&all) {
        for field in &def.fields {
            let values: Vec<(String, String)> =
                by_reader.iter().map(|(r, read)| (r.clone(), read.value(&field.name))).collect();
            let texts: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
            if !disagree(field, &texts, campaign.tolerance(&field.name)) {
                continue;
            }
            let earlier = done.iter().find(|a| a.slide_id == slide_id && a.field == field.name);
            let adj = earlier.filter(|a| a.settles(&values));
            out.push(Disagreement {
                superseded: earlier.filter(|a| !a.settles(&values)).map(|a| json_text(&a.value)),
                slide_id,
                slide: label.clone(),
                field: field.name.clone(),
                read_ids: by_reader.values().map(|r| r.id).collect(),
                values,
                adjudicated: adj.map(|a| json_text(&a.value)),
                adjudicator: adj.map(|a| a.adjudicator.clone()),
                note: adj.and_then(|a| a.note.clone()),
            });
        }
    }
    Ok(out)
}

/// Which slide an adjudication is about: by its label (managers' tools, the CLI, the demo) or by
/// one of its reads, which is all a blinded adjudicator is shown (the label carries the case).
#[derive(Debug, Clone, Copy)]
pub enum SlideRef<'a> {
    Label(&'a str),
    Read(i32),
}

impl SlideRef<'_> {
    fn matches(&self, d: &Disagreement) -> bool {
        match self {
            SlideRef::Label(l) => d.slide == *l,
            SlideRef::Read(r) => d.read_ids.contains(r),
        }
    }
}

/// Records the adjudicator's value for one field of one slide (validated against the schema).
/// Changing an earlier adjudication needs a reason. Audited with the readers' values.
#[allow(clippy::too_many_arguments)]
pub fn adjudicate(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    campaign_id: i32,
    slide: SlideRef<'_>,
    field: &str,
    value: &str,
    note: &str,
) -> Result<()> {
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        let campaign = super::campaigns::get(conn, study.id, campaign_id)?;
        if actor.user_id.is_none() || campaign.adjudicator_id != actor.user_id {
            // Not this campaign's adjudicator: the disagreements (other readers' values) stay hidden.
            access.require(Permission::ViewReads)?;
            return Err(Error::forbidden(format!("only the adjudicator of {} adjudicates", campaign.name)));
        }
        study.ensure_editable()?;
        let def = schema::require_current(conn, study.id)?.definition();
        let open = disagreements(conn, study.id, &campaign, &def)?;
        let Some(d) = open.iter().find(|d| slide.matches(d) && d.field == field) else {
            return Err(Error::invalid("field", format!("that slide has no disagreement on {field} to adjudicate")));
        };
        let mut one = Map::new();
        one.insert(field.to_string(), Value::String(value.to_string()));
        let valid = def.validate(&one, false)?;
        let Some(Value::String(v)) = valid.get(field).cloned() else {
            return Err(Error::invalid("value", "choose the reference value"));
        };
        let note = note.trim();
        if d.adjudicated.is_some() && note.is_empty() {
            return Err(Error::invalid("note", "this was adjudicated already: say why the reference changes"));
        }
        let readers = readers_json(&d.values);
        let stored = Value::String(v.clone()).to_string();
        let at = now();
        if d.adjudicated.is_some() || d.superseded.is_some() {
            diesel::update(
                adjudications::table
                    .filter(adjudications::campaign_id.eq(campaign.id))
                    .filter(adjudications::slide_id.eq(d.slide_id))
                    .filter(adjudications::field.eq(field)),
            )
            .set((
                adjudications::value.eq(&stored),
                adjudications::reads_values.eq(readers.to_string()),
                adjudications::adjudicator.eq(&actor.name),
                adjudications::note.eq(note),
                adjudications::created_at.eq(at),
            ))
            .execute(conn)?;
        } else {
            diesel::insert_into(adjudications::table)
                .values((
                    adjudications::campaign_id.eq(campaign.id),
                    adjudications::slide_id.eq(d.slide_id),
                    adjudications::field.eq(field),
                    adjudications::value.eq(&stored),
                    adjudications::reads_values.eq(readers.to_string()),
                    adjudications::adjudicator.eq(&actor.name),
                    adjudications::note.eq((!note.is_empty()).then_some(note)),
                    adjudications::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        audit::record(
            conn,
            Change::new(
                study.chain(),
                &actor.name,
                Action::Adjudicate,
                Entity::Adjudication,
                format!("{}/{}/{field}", campaign.name, d.slide),
            )
            .before_opt(d.adjudicated.as_ref().map(|a| json!({"value": a})))
            .after(json!({"value": v, "reads": readers}))
            .because_opt((!note.is_empty()).then_some(note)),
        )?;
        Ok(())
    })
}

/// Slide label → field → reference value.
pub type Reference = BTreeMap<String, BTreeMap<String, String>>;

/// The reference value of every field of every complete slide: the adjudicated value where the
/// readers disagreed, else their common value (numbers within tolerance: their median). Slides
/// with an unadjudicated disagreement have no reference for that field.
pub fn reference(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    campaign: &Campaign,
    def: &Definition,
) -> Result<Reference> {
    let all = reads::of_campaign(conn, study_id, campaign.id)?;
    let done = adjudications_of(conn, campaign.id)?;
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ((label, slide_id), by_reader) in complete_slides(&all) {
        let row = out.entry(label).or_default();
        for field in def.fields.iter().filter(|f| !f.is_comment()) {
            let texts: Vec<String> = by_reader.values().map(|r| r.value(&field.name)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let value = if disagree(field, &refs, campaign.tolerance(&field.name)) {
                let current: Vec<(String, String)> =
                    by_reader.iter().map(|(r, read)| (r.clone(), read.value(&field.name))).collect();
                done.iter()
                    .find(|a| a.slide_id == slide_id && a.field == field.name && a.settles(&current))
                    .map(|a| json_text(&a.value))
            } else if field.is_numeric() {
                median(&refs)
            } else {
                refs.first().map(|s| s.to_string())
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                row.insert(field.name.clone(), v);
            }
        }
    }
    Ok(out)
}

/// The reference of a campaign as a table: the compared fields (schema order) and, per complete
/// slide, its reference values.
pub fn reference_table(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    campaign_id: i32,
) -> Result<(Vec<String>, Reference)> {
    let campaign = super::campaigns::get(conn, study_id, campaign_id)?;
    let def = schema::current(conn, study_id)?.map(|s| s.definition()).unwrap_or_default();
    let fields = def.fields.iter().filter(|f| !f.is_comment()).map(|f| f.name.clone()).collect();
    Ok((fields, reference(conn, study_id, &campaign, &def)?))
}

/// The median of numbers given as text, as text (what the reference stores).
fn median(values: &[&str]) -> Option<String> {
    crate::stats::median(values.iter().filter_map(|v| v.trim().parse().ok()).collect()).map(|m| format!("{m}"))
}

/// The agreement of one categorical field: every pair of readers.
#[derive(Debug, Clone, Serialize)]
pub struct FieldAgreement {
    pub field: String,
    /// The field as the schema labels it.
    pub label: String,
    pub pairs: Vec<ReaderPair>,
}

/// Agreement between the readers of a campaign on each categorical and yes/no field, over the
/// slides every reader submitted. Unweighted kappa; linear weights for ordered categories with
/// more than two choices are left to the statistics pages.
pub fn agreement(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    campaign: &Campaign,
    def: &Definition,
) -> Result<Vec<FieldAgreement>> {
    let all = reads::of_campaign(conn, study_id, campaign.id)?;
    let complete = complete_slides(&all);
    let mut out = Vec::new();
    for field in &def.fields {
        let Some(categories) = field.categories() else { continue };
        let mut ratings: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((label, _), by_reader) in &complete {
            for (reader, read) in by_reader {
                ratings.entry(reader.clone()).or_default().insert(label.clone(), read.value(&field.name));
            }
        }
        out.push(FieldAgreement {
            field: field.name.clone(),
            label: field.display_label(),
            pairs: agreement::reader_pairs(&categories, &ratings, Weights::None, 0.95),
        });
    }
    Ok(out)
}

/// Campaigns where the actor adjudicates, with their open (unadjudicated) disagreements.
pub fn queue(
    conn: &mut Conn,
    actor: &Actor,
    study_id: crate::studies::StudyId,
) -> Result<Vec<(Campaign, Vec<Disagreement>)>> {
    let Some(uid) = actor.user_id else { return Ok(Vec::new()) };
    let def = match schema::current(conn, study_id)? {
        Some(s) => s.definition(),
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for c in super::campaigns::list(conn, study_id)?.into_iter().filter(|c| c.adjudicator_id == Some(uid)) {
        let ds = disagreements(conn, study_id, &c, &def)?;
        out.push((c, ds));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(line: &str) -> FieldDef {
        Definition::parse_text(line).unwrap().fields.remove(0)
    }

    #[test]
    fn categories_disagree_when_any_differs() {
        let f = field("phenotype | categorical | inflamed, excluded, desert");
        assert!(!disagree(&f, &["inflamed", "inflamed"], 0.0));
        assert!(disagree(&f, &["inflamed", "desert"], 0.0));
        assert!(!disagree(&f, &["inflamed"], 0.0), "one reader cannot disagree");
        let c = field("comment | comment");
        assert!(!disagree(&c, &["a", "b"], 0.0), "comments are not compared");
    }

    #[test]
    fn numbers_disagree_beyond_the_tolerance() {
        let f = field("tps | numeric | 0-100 %");
        assert!(!disagree(&f, &["10", "15"], 5.0));
        assert!(!disagree(&f, &["0.1", "0.3"], 0.2), "binary fractions do not tip an exact tolerance");
        assert!(disagree(&f, &["10", "15.5"], 5.0));
        assert!(disagree(&f, &["10", ""], 5.0), "a missing number against a given one");
        assert!(!disagree(&f, &["", ""], 5.0));
        assert_eq!(median(&["10", "20"]).as_deref(), Some("15"));
        assert_eq!(median(&["3", "1", "2"]).as_deref(), Some("2"));
    }
}
