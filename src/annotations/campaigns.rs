//! Reading campaigns: which slides, which readers, the rules (blinding to case data, randomised
//! order with a recorded seed, an adjudicator and numeric tolerances), the optional re-read after
//! a washout, and progress. Creating a campaign creates one `assigned` read per slide and reader.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::order;
use crate::annotations::reads::ReadStatus;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, Role, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{campaigns, reads, slides, users};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, OptionalExt, Result};
use crate::studies::members;

crate::db::text_enum! {
    /// A reading campaign: open (reads can be done), or closed (with a reason; can be reopened).
    pub enum CampaignStatus {
        Open = "open",
        Closed = "closed",
    }
}

crate::db::text_enum! {
    /// What a campaign is for: reads for the study's analyses, or training (reader training and
    /// calibration), which never feeds the analysis set.
    pub enum CampaignPurpose {
        Analysis = "analysis",
        Training = "training",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub name: String,
    pub parent_id: Option<i32>,
    pub washout_days: i32,
    pub blind_case_data: bool,
    #[serde(skip)]
    pub case_fields: crate::db::Json<Vec<String>>,
    pub seed: i64,
    #[serde(skip)]
    pub tolerances: crate::db::Json<BTreeMap<String, f64>>,
    #[serde(skip)]
    pub adjudicator_id: Option<i32>,
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// AI-assisted: the biomarker run whose results readers see while reading.
    pub ai_run_id: Option<i32>,
    /// Stored from this version on; campaigns created before are analysis campaigns.
    #[serde(skip)]
    pub purpose: Option<CampaignPurpose>,
}

crate::db::text_enum! {
    /// How a read was made: with the AI's results on screen or without them.
    pub enum Assistance {
        Unaided = "unaided",
        AiAssisted = "ai_assisted",
    }
}

impl Campaign {
    pub fn purpose(&self) -> CampaignPurpose {
        self.purpose.unwrap_or(CampaignPurpose::Analysis)
    }
    pub fn is_training(&self) -> bool {
        self.purpose() == CampaignPurpose::Training
    }
    /// How its reads are made, as recorded with every read.
    pub fn assistance(&self) -> Assistance {
        if self.ai_run_id.is_some() {
            Assistance::AiAssisted
        } else {
            Assistance::Unaided
        }
    }
    pub fn case_fields(&self) -> Vec<String> {
        self.case_fields.0.clone()
    }
    pub fn tolerances(&self) -> BTreeMap<String, f64> {
        self.tolerances.0.clone()
    }
    pub fn tolerance(&self, field: &str) -> f64 {
        self.tolerances().get(field).copied().unwrap_or(0.0)
    }
    pub fn is_reread(&self) -> bool {
        self.parent_id.is_some()
    }
    pub fn tolerances_label(&self) -> String {
        let t = self.tolerances();
        if t.is_empty() {
            return "exact".into();
        }
        t.iter().map(|(k, v)| format!("{k} ±{v}")).collect::<Vec<_>>().join(", ")
    }
}

/// What a manager asks for when creating a campaign.
#[derive(Debug, Clone, Default)]
pub struct CampaignInput {
    pub name: String,
    /// Usernames of the readers (study members with the annotator role).
    pub readers: Vec<String>,
    /// Slides: enrolled cases' slides that are not excluded, narrowed by site and stain.
    pub site: String,
    pub stain: String,
    pub blind_case_data: bool,
    pub case_fields: Vec<String>,
    pub seed: Option<i64>,
    pub tolerances: BTreeMap<String, f64>,
    pub adjudicator: String,
    /// For a re-read: the first-read campaign and the washout in days.
    pub parent_id: Option<i32>,
    pub washout_days: i32,
    /// AI-assisted reading with this biomarker run of the study (None: unaided, blinded to AI).
    pub ai_run_id: Option<i32>,
    /// The manager confirmed showing readers outcome fields (see [`outcome_fields`]).
    pub confirm_outcomes: bool,
    /// Training campaigns never feed the analysis set (a re-read keeps its first read's purpose).
    pub training: bool,
}

/// Case fields that hold outcomes (the dictionary's outcome and follow-up forms: progression,
/// survival, response…): showing them to readers unblinds them to what the biomarker is meant to
/// predict, so a campaign shows them only with an explicit, audited confirmation.
pub fn outcome_fields(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<String>> {
    Ok(crate::cases::dictionary::load(conn, study_id)?
        .into_iter()
        .filter(|f| {
            let form = f.form_name.to_lowercase();
            form.contains("outcome") || form.contains("follow")
        })
        .map(|f| f.name)
        .collect())
}

pub fn list(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Campaign>> {
    Ok(campaigns::table
        .filter(campaigns::study_id.eq(study_id))
        .order(campaigns::id.asc())
        .select(Campaign::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, id: i32) -> Result<Campaign> {
    campaigns::table
        .filter(campaigns::study_id.eq(study_id))
        .filter(campaigns::id.eq(id))
        .select(Campaign::as_select())
        .first(conn)
        .or_not_found()
}

pub fn by_name(conn: &mut Conn, study_id: crate::studies::StudyId, name: &str) -> Result<Campaign> {
    campaigns::table
        .filter(campaigns::study_id.eq(study_id))
        .filter(campaigns::name.eq(name))
        .select(Campaign::as_select())
        .first(conn)
        .or_not_found()
}

/// Who reads and who adjudicates any of these slides in the study's campaigns.
fn roles_on_slides(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    slide_ids: &[i32],
) -> Result<(std::collections::BTreeSet<i32>, std::collections::BTreeSet<i32>)> {
    let rows: Vec<(i32, Option<i32>)> = reads::table
        .inner_join(campaigns::table)
        .filter(campaigns::study_id.eq(study_id))
        .filter(reads::slide_id.eq_any(slide_ids))
        .select((reads::reader_id, campaigns::adjudicator_id))
        .distinct()
        .load(conn)?;
    Ok((rows.iter().map(|r| r.0).collect(), rows.iter().filter_map(|r| r.1).collect()))
}

/// Dictionary fields a campaign may show its readers: those whose values are kept, shifted or
/// generalised; never identifiers (dropped) or the subject id (pseudonymised).
pub fn showable_case_fields(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<String>> {
    use crate::cases::dictionary::{self, DeidAction};
    Ok(dictionary::load(conn, study_id)?
        .into_iter()
        .filter(|f| !matches!(f.action, DeidAction::Drop | DeidAction::Pseudonymise))
        .map(|f| f.name)
        .collect())
}

/// The slides and readers of an existing campaign (for its re-read).
/// Slide (id, label) pairs.
type SlideList = Vec<(i32, String)>;

fn slides_and_readers(conn: &mut Conn, campaign_id: i32) -> Result<(SlideList, Vec<String>)> {
    let slides: SlideList = reads::table
        .inner_join(slides::table)
        .filter(reads::campaign_id.eq(campaign_id))
        .filter(reads::status.ne(ReadStatus::Withdrawn))
        .select((slides::id, slides::label))
        .distinct()
        .order(slides::label.asc())
        .load(conn)?;
    let readers: Vec<String> = reads::table
        .inner_join(users::table)
        .filter(reads::campaign_id.eq(campaign_id))
        .filter(reads::status.ne(ReadStatus::Withdrawn))
        .select(users::username)
        .distinct()
        .order(users::username.asc())
        .load(conn)?;
    Ok((slides, readers))
}

/// Creates a campaign and its assignments in one transaction, audited with the seed, the
/// readers and the slides. A re-read takes the slides and readers of its parent.
pub fn create(conn: &mut Conn, actor: &Actor, access: &StudyAccess, input: &CampaignInput) -> Result<Campaign> {
    access.require(Permission::ManageCampaigns)?;
    let name = input.name.trim().to_string();
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let schema = super::schema::require_current(conn, study.id)?.definition();
        let mut errors = FieldErrors::default();
        if name.is_empty() || name.chars().count() > 80 {
            errors.add("name", "give the campaign a name of at most 80 characters");
        } else if by_name(conn, study.id, &name).is_ok() {
            errors.add("name", format!("a campaign named {name:?} exists already"));
        }
        let parent = match input.parent_id {
            Some(pid) => Some(get(conn, study.id, pid)?),
            None => None,
        };
        let (slide_list, reader_names) = match &parent {
            Some(p) => {
                if p.parent_id.is_some() {
                    errors.add("parent", "a re-read is made from a first-read campaign");
                }
                if !(0..=365).contains(&input.washout_days) {
                    errors.add("washout_days", "the washout is 0 to 365 days");
                }
                slides_and_readers(conn, p.id)?
            }
            None => {
                let mut names: Vec<String> =
                    input.readers.iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
                names.sort();
                names.dedup();
                (crate::slides::enrolled_available(conn, study.id, &input.site, &input.stain)?, names)
            }
        };
        if slide_list.is_empty() {
            errors.add("slides", "no slide matches: slides of enrolled cases that are not excluded");
        }
        let roster = members::list(conn, study.id, false)?;
        let member_role = |username: &str| roster.iter().find(|m| m.username == username).map(|m| (m.user_id, m.role));
        let mut readers = Vec::new();
        if reader_names.is_empty() {
            errors.add("readers", "choose at least one reader");
        }
        for r in &reader_names {
            match member_role(r) {
                Some((id, Role::Annotator)) => readers.push((id, r.clone())),
                Some(_) => errors.add("readers", format!("{r} is not an annotator in this study")),
                None => errors.add("readers", format!("{r} is not a member of this study")),
            }
        }
        let adjudicator_id = match input.adjudicator.trim() {
            "" => parent.as_ref().and_then(|p| p.adjudicator_id),
            a if reader_names.iter().any(|r| r == a) => {
                errors.add("adjudicator", "the adjudicator cannot be one of the readers");
                None
            }
            // A pathologist who does not read these slides: the adjudication is blinded to who
            // said what and to the AI, like a read.
            a => match member_role(a) {
                Some((id, Role::Annotator)) => Some(id),
                _ => {
                    errors.add("adjudicator", format!("{a} is not a pathologist (annotator) of this study"));
                    None
                }
            },
        };
        // One person is either a reader or the adjudicator of a slide, across all campaigns:
        // an adjudicator sees every reader's values. Administrators see everything, so they
        // cannot be blinded readers.
        let slide_ids: Vec<i32> = slide_list.iter().map(|(id, _)| *id).collect();
        let (past_readers, past_adjudicators) = roles_on_slides(conn, study.id, &slide_ids)?;
        for (id, name) in &readers {
            if crate::auth::users::get(conn, *id)?.is_admin {
                errors.add("readers", format!("{name} is an administrator and sees everything: not a blinded reader"));
            }
            if past_adjudicators.contains(id) {
                errors.add("readers", format!("{name} adjudicates some of these slides in another campaign"));
            }
        }
        if let Some(a) = adjudicator_id.filter(|a| past_readers.contains(a) && parent.is_none()) {
            let name = roster.iter().find(|m| m.user_id == a).map(|m| m.username.clone()).unwrap_or_default();
            errors.add("adjudicator", format!("{name} reads some of these slides in another campaign"));
        }
        let showable = showable_case_fields(conn, study.id)?;
        let outcomes: Vec<String> =
            outcome_fields(conn, study.id)?.into_iter().filter(|f| input.case_fields.contains(f)).collect();
        if !outcomes.is_empty() && !input.confirm_outcomes {
            errors.add(
                "case_fields",
                format!(
                    "{} {}: showing outcomes unblinds readers to what the biomarker predicts — confirm it explicitly, or leave them out",
                    outcomes.join(", "),
                    if outcomes.len() == 1 { "is an outcome" } else { "are outcomes" }
                ),
            );
        }
        for f in &input.case_fields {
            if !showable.contains(f) {
                errors.add(
                    "case_fields",
                    format!("{f} is not a case field readers can be shown (identifiers and subject ids never are)"),
                );
            }
        }
        for (f, t) in &input.tolerances {
            if !schema.field(f).is_some_and(|d| d.is_numeric()) {
                errors.add("tolerances", format!("{f} is not a numeric field of the annotation schema"));
            } else if !(t.is_finite() && *t >= 0.0) {
                errors.add("tolerances", format!("{f}: the tolerance must be a number ≥ 0"));
            }
        }
        let ai_run = match input.ai_run_id {
            Some(id) => match crate::biomarker::runs::get(conn, study.id, id) {
                Ok(run) => Some(run),
                Err(Error::NotFound) => {
                    errors.add("ai_run", format!("run {id} is not a biomarker run of this study"));
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        if let Some(run) = &ai_run {
            let with_result = crate::biomarker::runs::slides_with_result(conn, run.id)?;
            let missing = slide_ids.iter().filter(|id| !with_result.contains(id)).count();
            if missing > 0 {
                errors.add(
                    "ai_run",
                    format!(
                        "run {} has no result for {missing} of the {} slides: let it finish, or choose another run",
                        run.id,
                        slide_ids.len()
                    ),
                );
            }
        }
        errors.into_result()?;

        let (blind, case_fields, tolerances) = match &parent {
            Some(p) => (p.blind_case_data, p.case_fields(), p.tolerances()),
            None => (
                input.blind_case_data,
                if input.blind_case_data { vec![] } else { input.case_fields.clone() },
                input.tolerances.clone(),
            ),
        };
        let seed = input.seed.unwrap_or_else(order::new_seed);
        let purpose = match &parent {
            Some(p) => p.purpose(),
            None if input.training => CampaignPurpose::Training,
            None => CampaignPurpose::Analysis,
        };
        let at = now();
        let campaign: Campaign = crate::db::on_engine!(&mut *conn, |c| diesel::insert_into(campaigns::table)
            .values((
                campaigns::study_id.eq(study.id),
                campaigns::name.eq(&name),
                campaigns::parent_id.eq(parent.as_ref().map(|p| p.id)),
                campaigns::washout_days.eq(if parent.is_some() { input.washout_days } else { 0 }),
                campaigns::blind_case_data.eq(blind),
                campaigns::case_fields.eq(json!(case_fields).to_string()),
                campaigns::seed.eq(seed),
                campaigns::tolerances.eq(json!(tolerances).to_string()),
                campaigns::adjudicator_id.eq(adjudicator_id),
                campaigns::status.eq(CampaignStatus::Open),
                campaigns::created_by.eq(&actor.name),
                campaigns::created_at.eq(at),
                campaigns::ai_run_id.eq(input.ai_run_id),
                campaigns::purpose.eq(purpose),
            ))
            .returning(Campaign::as_returning())
            .get_result(c))?;
        let labels: Vec<String> = slide_list.iter().map(|(_, l)| l.clone()).collect();
        let id_of: BTreeMap<&str, i32> = slide_list.iter().map(|(id, l)| (l.as_str(), *id)).collect();
        let mut rows = Vec::with_capacity(labels.len() * readers.len());
        for (reader_id, username) in &readers {
            for (i, label) in order::reading_order(seed, username, &labels).iter().enumerate() {
                rows.push((
                    reads::campaign_id.eq(campaign.id),
                    reads::slide_id.eq(id_of[label.as_str()]),
                    reads::reader_id.eq(*reader_id),
                    reads::position.eq(i as i32 + 1),
                    reads::status.eq(ReadStatus::Assigned),
                    reads::field_values.eq("{}"),
                    reads::regions.eq("[]"),
                    reads::region_count.eq(0),
                    reads::updated_at.eq(at),
                    reads::assistance.eq(campaign.assistance()),
                ));
            }
        }
        for chunk in rows.chunks(500) {
            crate::db::on_engine!(&mut *conn, |c| diesel::insert_into(reads::table).values(chunk).execute(c))?;
        }
        let adjudicator =
            adjudicator_id.and_then(|id| roster.iter().find(|m| m.user_id == id)).map(|m| m.username.clone());
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Create, Entity::Campaign, &name).after(json!({
                "seed": seed, "readers": reader_names, "slides": labels, "blind_case_data": blind,
                "case_fields": case_fields, "tolerances": tolerances, "adjudicator": adjudicator,
                "outcome_fields_shown_confirmed": (!outcomes.is_empty()).then_some(&outcomes),
                "parent": parent.as_ref().map(|p| p.name.clone()),
                "washout_days": campaign.washout_days,
                "purpose": purpose.as_str(),
                "assistance": campaign.assistance().as_str(),
                "ai_run": ai_run.as_ref().map(|r| json!({"id": r.id, "model": r.model(), "model_sha256": r.model_sha256})),
            })),
        )?;
        Ok(campaign)
    })
}

/// Reads of one reader in a campaign, or of everyone: counts by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub reader: String,
    pub full_name: String,
    pub total: i64,
    pub submitted: i64,
    pub draft: i64,
    pub last_activity: Option<NaiveDateTime>,
}

impl Progress {
    pub fn left(&self) -> i64 {
        self.total - self.submitted
    }
    pub fn percent(&self) -> i64 {
        if self.total == 0 {
            0
        } else {
            self.submitted * 100 / self.total
        }
    }
}

/// Per-reader progress, then the overall figure (reader "all").
pub fn progress(conn: &mut Conn, campaign_id: i32) -> Result<(Vec<Progress>, Progress)> {
    let rows: Vec<(String, String, ReadStatus, NaiveDateTime)> = reads::table
        .inner_join(users::table)
        .filter(reads::campaign_id.eq(campaign_id))
        .filter(reads::status.ne(ReadStatus::Withdrawn))
        .select((users::username, users::full_name, reads::status, reads::updated_at))
        .load(conn)?;
    let mut by_reader: BTreeMap<String, Progress> = BTreeMap::new();
    let mut all = Progress { reader: "all".into(), full_name: "All readers".into(), ..Default::default() };
    for (username, full_name, status, updated) in rows {
        let p = by_reader.entry(username.clone()).or_insert_with(|| Progress {
            reader: username,
            full_name,
            ..Default::default()
        });
        for p in [p, &mut all] {
            p.total += 1;
            match status {
                ReadStatus::Submitted => p.submitted += 1,
                ReadStatus::Draft => p.draft += 1,
                ReadStatus::Assigned | ReadStatus::Withdrawn => {}
            }
            if status != ReadStatus::Assigned {
                p.last_activity = p.last_activity.max(Some(updated));
            }
        }
    }
    Ok((by_reader.into_values().collect(), all))
}

/// When a re-read of a slide opens for a reader: `washout_days` after they submitted the same
/// slide in the parent campaign; `None` while that first read is not submitted.
pub fn opens_at(first_read_submitted: Option<NaiveDateTime>, washout_days: i32) -> Option<NaiveDateTime> {
    first_read_submitted.map(|t| t + Duration::days(i64::from(washout_days)))
}

/// Closes a campaign (no more reading) or reopens it; a reason is required and audited.
pub fn set_status(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    id: i32,
    open: bool,
    reason: &str,
) -> Result<Campaign> {
    access.require(Permission::ManageCampaigns)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the campaign is closed or reopened"));
    }
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let c = get(conn, study.id, id)?;
        let status = if open { CampaignStatus::Open } else { CampaignStatus::Closed };
        if c.status == status {
            return Err(Error::Conflict(format!("campaign {} is already {status}", c.name)));
        }
        record_status(conn, actor, &study, &c, status, reason)?;
        get(conn, study.id, id)
    })
}

/// Sets campaign `c`'s status with its reason and audits the change, inside the caller's
/// transaction (a manager's close or reopen, and the study lock closing every open campaign).
pub(crate) fn record_status(
    conn: &mut Conn,
    actor: &Actor,
    study: &crate::studies::Study,
    c: &Campaign,
    status: CampaignStatus,
    reason: &str,
) -> Result<()> {
    diesel::update(campaigns::table.find(c.id))
        .set((campaigns::status.eq(status), campaigns::status_reason.eq(reason)))
        .execute(conn)?;
    let action = if status == CampaignStatus::Open { Action::Reopen } else { Action::Close };
    audit::record(
        conn,
        Change::new(study.chain(), &actor.name, action, Entity::Campaign, &c.name)
            .before(json!({"status": c.status}))
            .after(json!({"status": status}))
            .because(reason),
    )
}

/// What a manager takes out of a running campaign: a reader (who left the study, or cannot go
/// on) or a slide (excluded at QC, case withdrawn).
#[derive(Debug, Clone)]
pub enum Withdrawal {
    Reader(String),
    Slide(String),
}

/// Withdraws a reader's or a slide's reads from a campaign, with a reason: they keep what they
/// hold, leave the queue, and no longer count for progress, completion, adjudication or
/// agreement. Nothing is deleted; audited.
pub fn withdraw(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    campaign_id: i32,
    what: &Withdrawal,
    reason: &str,
) -> Result<usize> {
    access.require(Permission::ManageCampaigns)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why they are withdrawn from the campaign"));
    }
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let c = get(conn, study.id, campaign_id)?;
        let (field, name) = match what {
            Withdrawal::Reader(u) => ("reader", u),
            Withdrawal::Slide(l) => ("slide", l),
        };
        let ids: Vec<i32> = match what {
            Withdrawal::Reader(u) => reads::table
                .inner_join(users::table)
                .filter(reads::campaign_id.eq(c.id))
                .filter(users::username.eq(u))
                .filter(reads::status.ne(ReadStatus::Withdrawn))
                .select(reads::id)
                .load(conn)?,
            Withdrawal::Slide(l) => reads::table
                .inner_join(slides::table)
                .filter(reads::campaign_id.eq(c.id))
                .filter(slides::label.eq(l))
                .filter(reads::status.ne(ReadStatus::Withdrawn))
                .select(reads::id)
                .load(conn)?,
        };
        if ids.is_empty() {
            return Err(Error::invalid(field, format!("{name} has no reads left in campaign {}", c.name)));
        }
        diesel::update(reads::table.filter(reads::id.eq_any(&ids)))
            .set((
                reads::status.eq(ReadStatus::Withdrawn),
                reads::withdrawn_reason.eq(reason),
                reads::updated_at.eq(now()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Withdraw, Entity::Campaign, &c.name)
                .after(json!({ field: name, "reads": ids.len() }))
                .because(reason),
        )?;
        Ok(ids.len())
    })
}

/// The campaign's adjudicator as people read them: "full name (username)".
pub fn adjudicator_name(conn: &mut Conn, c: &Campaign) -> Result<Option<String>> {
    match c.adjudicator_id {
        Some(id) => {
            let u = crate::auth::users::get(conn, id)?;
            Ok(Some(format!("{} ({})", u.full_name, u.username)))
        }
        None => Ok(None),
    }
}

/// Case values shown to readers of a campaign that is not blinded to case data.
/// The case fields a campaign shows its readers, as (label, value) with the dictionary's labels
/// and choices' labels ("Histology: Squamous cell carcinoma", not "histology 2").
pub fn case_values(
    c: &Campaign,
    case_data: &str,
    dictionary: &[crate::cases::dictionary::FieldDef],
) -> Vec<(String, String)> {
    let data: Map<String, Value> = serde_json::from_str(case_data).unwrap_or_default();
    c.case_fields()
        .into_iter()
        .map(|name| {
            let field = dictionary.iter().find(|d| d.name == name);
            let v = match (data.get(&name), field) {
                (Some(v), Some(f)) => f.label_of(v),
                (Some(v), None) => crate::cases::dictionary::value_text(v),
                (None, _) => String::new(),
            };
            let label = field.map(|f| f.label.trim()).filter(|l| !l.is_empty()).map_or(name.clone(), str::to_string);
            (label, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reread_opens_after_the_washout() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap().and_hms_opt(9, 0, 0).unwrap();
        assert_eq!(opens_at(Some(t), 14).unwrap().to_string(), "2026-01-24 09:00:00");
        assert_eq!(opens_at(None, 14), None);
    }

    #[test]
    fn progress_percent_and_left() {
        let p = Progress { total: 8, submitted: 3, ..Default::default() };
        assert_eq!((p.left(), p.percent()), (5, 37));
        assert_eq!(Progress::default().percent(), 0);
    }
}
