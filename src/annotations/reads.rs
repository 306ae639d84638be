//! Reads: one reader's slide-level values and regions for one slide of a campaign. Drafts save
//! as the reader works; *submit* completes the read; changing a submitted read needs a reason.
//! Who may see a read: its reader (to work on it), the roles that review reads (read-only), and
//! the campaign's adjudicator. To anyone else it does not exist (404), which is the blinding.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::campaigns::{self, Campaign, CampaignStatus};
use super::geojson::{self, Limits};
use super::schema;
use super::Region;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{campaigns as campaigns_t, cases, reads, slides, users};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};

/// A read without its regions (which can be megabytes), with the names pages show.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = reads)]
pub struct Read {
    pub id: i32,
    pub campaign_id: i32,
    #[diesel(select_expression = campaigns_t::name)]
    pub campaign: String,
    pub slide_id: i32,
    #[diesel(select_expression = slides::label)]
    pub slide: String,
    pub reader_id: i32,
    #[diesel(select_expression = users::username)]
    pub reader: String,
    pub position: i32,
    pub status: ReadStatus,
    pub withdrawn_reason: Option<String>,
    pub schema_version: Option<i32>,
    #[serde(skip)]
    pub field_values: crate::db::Json<Map<String, Value>>,
    pub region_count: i32,
    pub started_at: Option<NaiveDateTime>,
    pub submitted_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    /// The campaign's type when the read was assigned.
    pub assistance: crate::annotations::campaigns::Assistance,
}

crate::db::text_enum! {
    /// A reader's read of a slide: assigned → draft → submitted (reopened to draft by a manager),
    /// or withdrawn (with a reason).
    pub enum ReadStatus {
        Assigned = "assigned",
        Draft = "draft",
        Submitted = "submitted",
        Withdrawn = "withdrawn",
    }
}

impl Read {
    pub fn values(&self) -> Map<String, Value> {
        self.field_values.0.clone()
    }
    pub fn value(&self, field: &str) -> String {
        self.values().get(field).and_then(Value::as_str).unwrap_or("").to_string()
    }
    pub fn is_submitted(&self) -> bool {
        self.status == ReadStatus::Submitted
    }
    pub fn is_withdrawn(&self) -> bool {
        self.status == ReadStatus::Withdrawn
    }
}

type Joined = diesel::dsl::InnerJoin<
    diesel::dsl::InnerJoin<diesel::dsl::InnerJoin<reads::table, campaigns_t::table>, slides::table>,
    users::table,
>;

/// Reads of a study joined to what [`Read`] selects.
fn joined<'a>(
    study_id: crate::studies::StudyId,
) -> diesel::dsl::IntoBoxed<
    'a,
    diesel::dsl::Filter<Joined, diesel::dsl::Eq<campaigns_t::study_id, i32>>,
    crate::db::MultiBackend,
> {
    reads::table
        .inner_join(campaigns_t::table)
        .inner_join(slides::table)
        .inner_join(users::table)
        .filter(campaigns_t::study_id.eq(study_id))
        .into_boxed()
}

/// Every read of a campaign, by slide then reader.
pub fn of_campaign(conn: &mut Conn, study_id: crate::studies::StudyId, campaign_id: i32) -> Result<Vec<Read>> {
    Ok(joined(study_id)
        .filter(reads::campaign_id.eq(campaign_id))
        .order((slides::label.asc(), users::username.asc()))
        .select(Read::as_select())
        .load(conn)?)
}

/// Every read of a study (exports), by campaign, slide, reader.
pub fn of_study(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Read>> {
    Ok(joined(study_id)
        .order((reads::campaign_id.asc(), slides::label.asc(), users::username.asc()))
        .select(Read::as_select())
        .load(conn)?)
}

/// One entry of a reader's queue: the read and, for a re-read still in washout, when it opens.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub read: Read,
    /// `None`: open now. `Some(None)`: waits for the first read. `Some(Some(t))`: opens at t.
    pub opens: Option<Option<NaiveDateTime>>,
    /// A submitted first read hidden from its reader while they re-read the slide (blinding):
    /// it shows again when the re-read is submitted.
    pub hidden: bool,
}

impl QueueItem {
    pub fn is_open(&self) -> bool {
        self.opens.is_none()
    }
    /// The reader can open it now (not waiting for a washout, not hidden by a re-read).
    pub fn readable(&self) -> bool {
        self.is_open() && !self.hidden
    }
    /// Waiting for the reader: readable and not yet submitted.
    pub fn to_read(&self) -> bool {
        self.readable() && !self.read.is_submitted()
    }
    pub fn opens_label(&self) -> String {
        match self.opens {
            None => String::new(),
            Some(None) => "after the first read".into(),
            Some(Some(t)) => format!("opens {}", t.format("%Y-%m-%d %H:%M UTC")),
        }
    }
}

/// The reader's queue in a study: their reads in open campaigns, in their randomised order.
pub fn queue(conn: &mut Conn, study_id: crate::studies::StudyId, reader_id: i32) -> Result<Vec<QueueItem>> {
    let list: Vec<Read> = joined(study_id)
        .filter(reads::reader_id.eq(reader_id))
        .filter(reads::status.ne(ReadStatus::Withdrawn))
        .filter(campaigns_t::status.eq(CampaignStatus::Open))
        .order((reads::campaign_id.asc(), reads::position.asc()))
        .select(Read::as_select())
        .load(conn)?;
    let mut campaign_cache: Vec<Campaign> = Vec::new();
    let mut out = Vec::with_capacity(list.len());
    for read in list {
        let campaign = match campaign_cache.iter().find(|c| c.id == read.campaign_id) {
            Some(c) => c.clone(),
            None => {
                let c = campaigns::get(conn, study_id, read.campaign_id)?;
                campaign_cache.push(c.clone());
                c
            }
        };
        let opens = washout(conn, &campaign, &read)?;
        let hidden = read.is_submitted() && rereading(conn, &read)?;
        out.push(QueueItem { read, opens, hidden });
    }
    Ok(out)
}

/// For a re-read: `None` when open, else when it opens (see [`QueueItem::opens`]).
fn washout(conn: &mut Conn, campaign: &Campaign, read: &Read) -> Result<Option<Option<NaiveDateTime>>> {
    let Some(parent) = campaign.parent_id else { return Ok(None) };
    let first: Option<Option<NaiveDateTime>> = reads::table
        .filter(reads::campaign_id.eq(parent))
        .filter(reads::slide_id.eq(read.slide_id))
        .filter(reads::reader_id.eq(read.reader_id))
        // The first submission counts, even if the read was reopened since.
        .filter(reads::submitted_at.is_not_null())
        .select(reads::submitted_at)
        .first(conn)
        .optional()?;
    let opens = campaigns::opens_at(first.flatten(), campaign.washout_days);
    Ok(match opens {
        Some(t) if t <= now() => None,
        other => Some(other),
    })
}

/// A read as one actor may use it.
#[derive(Debug, Clone)]
pub struct ReadAccess {
    pub read: Read,
    pub campaign: Campaign,
    /// The actor is its reader.
    pub own: bool,
}

impl ReadAccess {
    /// The reader may change it now: their own, not submitted, campaign open.
    pub fn editable(&self) -> bool {
        self.own
            && !self.read.is_submitted()
            && !self.read.is_withdrawn()
            && self.campaign.status == CampaignStatus::Open
    }
}

/// Finds a read for an actor, applying the blinding rules: its reader (after the washout), a
/// role that reviews reads, or the campaign's adjudicator. Anyone else: not found.
pub fn open_for(conn: &mut Conn, actor: &Actor, access: &StudyAccess, read_id: i32) -> Result<ReadAccess> {
    let read: Read =
        joined(access.study.id).filter(reads::id.eq(read_id)).select(Read::as_select()).first(conn).or_not_found()?;
    let campaign = campaigns::get(conn, access.study.id, read.campaign_id)?;
    let own = actor.user_id == Some(read.reader_id) && access.role.is_some();
    // The adjudicator sees submitted reads of slides every reader has finished, nothing else.
    let adjudicates = actor.user_id.is_some()
        && campaign.adjudicator_id == actor.user_id
        && read.is_submitted()
        && slide_complete(conn, read.campaign_id, read.slide_id)?;
    if !own && !adjudicates {
        access.require(Permission::ViewReads)?;
    }
    if own && rereading(conn, &read)? {
        // While re-reading a slide, the reader's own first read of it does not exist for them.
        return Err(Error::NotFound);
    }
    if own {
        match washout(conn, &campaign, &read)? {
            None => {}
            Some(None) => {
                return Err(Error::Conflict(format!(
                    "this re-read opens {} days after you submit the same slide in the first read",
                    campaign.washout_days
                )))
            }
            Some(Some(t)) => {
                return Err(Error::Conflict(format!(
                    "washout: this re-read opens on {} (UTC)",
                    t.format("%Y-%m-%d %H:%M")
                )))
            }
        }
    }
    Ok(ReadAccess { read, campaign, own })
}

/// True when every read of the slide in the campaign is submitted.
fn slide_complete(conn: &mut Conn, campaign_id: i32, slide_id: i32) -> Result<bool> {
    let open: i64 = reads::table
        .filter(reads::campaign_id.eq(campaign_id))
        .filter(reads::slide_id.eq(slide_id))
        .filter(reads::status.ne_all([ReadStatus::Submitted, ReadStatus::Withdrawn]))
        .count()
        .get_result(conn)?;
    Ok(open == 0)
}

/// True when the read's reader has an unsubmitted re-read of the same slide (in a campaign that
/// re-reads this one).
fn rereading(conn: &mut Conn, read: &Read) -> Result<bool> {
    let n: i64 = reads::table
        .inner_join(campaigns_t::table)
        .filter(campaigns_t::parent_id.eq(read.campaign_id))
        .filter(reads::slide_id.eq(read.slide_id))
        .filter(reads::reader_id.eq(read.reader_id))
        .filter(reads::status.ne(ReadStatus::Submitted))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The read's regions.
pub fn regions(conn: &mut Conn, read_id: i32) -> Result<Vec<Region>> {
    let text: String = reads::table.find(read_id).select(reads::regions).first(conn)?;
    serde_json::from_str(&text).map_err(|e| Error::Internal(anyhow::anyhow!("stored regions of read {read_id}: {e}")))
}

/// Size of the slide a read is on (for the region limits).
fn slide_limits(conn: &mut Conn, slide_id: i32) -> Result<Limits> {
    let (w, h): (i64, i64) = slides::table.find(slide_id).select((slides::width, slides::height)).first(conn)?;
    Ok(Limits::for_slide(w as f64, h as f64))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a draft save brings: the form's values (strings) and the regions.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Draft {
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(default)]
    pub regions: Vec<Region>,
    /// The read's `updated_at` as the saving page loaded it; when given and the read changed
    /// since, the save is refused instead of overwriting the other change.
    #[serde(default)]
    pub base: Option<String>,
}

/// Outcome of a save: when, and how many regions the read now has.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub saved_at: String,
    pub region_count: usize,
    pub status: ReadStatus,
    /// The read's new `updated_at` (the next save's `base`).
    pub updated_at: String,
}

/// Checks the actor may change this read now (own, not submitted, open campaign, editable study).
/// With `for_reader`, a campaign manager may too (importing a reader's QuPath work for them).
fn ensure_editable(conn: &mut Conn, access: &StudyAccess, ra: &ReadAccess, for_reader: bool) -> Result<()> {
    let study = crate::studies::get_by_code(conn, &access.study.code)?;
    study.ensure_editable()?;
    let manager_for_reader = for_reader && access.can(Permission::ManageCampaigns);
    if !(ra.own || manager_for_reader) {
        return Err(Error::forbidden("only the reader changes a read"));
    }
    if ra.campaign.status != CampaignStatus::Open {
        return Err(Error::Conflict(format!("campaign {} is {}", ra.campaign.name, ra.campaign.status)));
    }
    if ra.read.is_submitted() {
        return Err(Error::Conflict("the read is submitted: to change it, reopen it with a reason".into()));
    }
    if ra.read.is_withdrawn() {
        return Err(Error::Conflict("the read was withdrawn from the campaign".into()));
    }
    Ok(())
}

/// Saves a draft (values may be incomplete). Unchanged drafts write nothing. Audited with the
/// values, the region count and the SHA-256 of the regions (not the regions themselves, which
/// can be megabytes; the read keeps them).
pub fn save_draft(conn: &mut Conn, actor: &Actor, access: &StudyAccess, read_id: i32, draft: &Draft) -> Result<Saved> {
    write_tx(conn, |conn| {
        let ra = open_for(conn, actor, access, read_id)?;
        ensure_editable(conn, access, &ra, false)?;
        if draft.base.as_ref().is_some_and(|b| *b != ra.read.updated_at.to_string()) {
            return Err(Error::Conflict(
                "this read was changed elsewhere since the page was loaded (another tab, or regions imported for you): \
                 reload the page; what you did is still on screen"
                    .into(),
            ));
        }
        let sv = schema::require_current(conn, access.study.id)?;
        let def = sv.definition();
        let values = def.validate(&draft.values, false)?;
        geojson::check(&draft.regions, &slide_limits(conn, ra.read.slide_id)?)
            .map_err(|e| Error::invalid("regions", e.to_string()))?;
        def.check_regions(&draft.regions).map_err(|m| Error::invalid("regions", m))?;
        write_read(
            conn,
            actor,
            access,
            &ra,
            sv.version,
            &values,
            Some(&draft.regions),
            ReadStatus::Draft,
            Action::SaveDraft,
        )
    })
}

/// Completes a read: every required field must be filled. Regions stay as last saved.
pub fn submit(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    read_id: i32,
    values: &Map<String, Value>,
) -> Result<Saved> {
    write_tx(conn, |conn| {
        let ra = open_for(conn, actor, access, read_id)?;
        ensure_editable(conn, access, &ra, false)?;
        let sv = schema::require_current(conn, access.study.id)?;
        let values = sv.definition().validate(values, true)?;
        write_read(conn, actor, access, &ra, sv.version, &values, None, ReadStatus::Submitted, Action::Submit)
    })
}

/// Reopens a submitted read so its reader can change it; needs a reason, audited.
pub fn reopen(conn: &mut Conn, actor: &Actor, access: &StudyAccess, read_id: i32, reason: &str) -> Result<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the submitted read changes"));
    }
    write_tx(conn, |conn| {
        let ra = open_for(conn, actor, access, read_id)?;
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        if !ra.own {
            return Err(Error::forbidden("only the reader changes a read"));
        }
        if !ra.read.is_submitted() {
            return Err(Error::Conflict("the read is not submitted".into()));
        }
        if ra.campaign.status != CampaignStatus::Open {
            return Err(Error::Conflict(format!("campaign {} is {}", ra.campaign.name, ra.campaign.status)));
        }
        diesel::update(reads::table.find(read_id))
            .set((reads::status.eq(ReadStatus::Draft), reads::updated_at.eq(now())))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Reopen, Entity::Read, read_entity(&ra.read))
                .before(json!({"status": "submitted", "values": ra.read.values()}))
                .after(json!({"status": "draft"}))
                .because(reason),
        )?;
        Ok(())
    })
}

/// Adds regions from a QuPath GeoJSON file to a reader's read (a draft afterwards): by the reader,
/// or by a campaign manager for them (the CLI). The file is checked against the slide before
/// anything is written.
pub fn import_regions(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    read_id: i32,
    bytes: &[u8],
    dry_run: bool,
) -> Result<Saved> {
    write_tx(conn, |conn| {
        let ra = open_for(conn, actor, access, read_id)?;
        ensure_editable(conn, access, &ra, true)?;
        let limits = slide_limits(conn, ra.read.slide_id)?;
        let imported = geojson::parse(bytes, &limits).map_err(|e| Error::invalid("file", e.to_string()))?;
        let sv = schema::require_current(conn, access.study.id)?;
        sv.definition()
            .check_regions(&imported)
            .map_err(|m| Error::invalid("file", m.replacen("region", "feature", 1)))?;
        let mut all = regions(conn, read_id)?;
        all.extend(imported);
        geojson::check(&all, &limits).map_err(|e| Error::invalid("file", e.to_string()))?;
        if dry_run {
            let at = ra.read.updated_at;
            return Ok(Saved {
                saved_at: String::new(),
                region_count: all.len(),
                status: ra.read.status,
                updated_at: at.to_string(),
            });
        }
        let values = ra.read.values();
        write_read(conn, actor, access, &ra, sv.version, &values, Some(&all), ReadStatus::Draft, Action::ImportRegions)
    })
}

/// Stores values and regions with the new status and records the change (inside the caller's
/// transaction). A draft identical to what is stored writes nothing.
#[allow(clippy::too_many_arguments)]
fn write_read(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    ra: &ReadAccess,
    schema_version: i32,
    values: &Map<String, Value>,
    regions: Option<&[Region]>,
    status: ReadStatus,
    action: crate::audit::Action,
) -> Result<Saved> {
    let stored: String = reads::table.find(ra.read.id).select(reads::regions).first(conn)?;
    // `None` keeps the stored regions as they are (a submit), without parsing them.
    let (regions_json, region_count) = match regions {
        Some(r) => (std::borrow::Cow::Owned(serde_json::to_string(r).map_err(|e| Error::Internal(e.into()))?), r.len()),
        None => (std::borrow::Cow::Borrowed(stored.as_str()), ra.read.region_count as usize),
    };
    let values_json = Value::Object(values.clone()).to_string();
    let at = now();
    let saved = |updated: chrono::NaiveDateTime| Saved {
        saved_at: at.format("%Y-%m-%d %H:%M:%S").to_string(),
        region_count,
        status,
        updated_at: updated.to_string(),
    };
    if status == ReadStatus::Draft
        && ra.read.status == ReadStatus::Draft
        && stored == *regions_json
        && ra.read.field_values.0 == *values
    {
        return Ok(saved(ra.read.updated_at));
    }
    diesel::update(reads::table.find(ra.read.id))
        .set((
            reads::status.eq(status),
            reads::schema_version.eq(schema_version),
            reads::field_values.eq(&values_json),
            reads::regions.eq(regions_json.as_ref()),
            reads::region_count.eq(region_count as i32),
            reads::started_at.eq(ra.read.started_at.unwrap_or(at)),
            // The first submission's time stays (a re-read's washout counts from it).
            reads::submitted_at.eq(ra.read.submitted_at.or((status == ReadStatus::Submitted).then_some(at))),
            reads::updated_at.eq(at),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        Change::new(access.study.chain(), &actor.name, action, Entity::Read, read_entity(&ra.read))
            .before(json!({"status": ra.read.status, "values": ra.read.values(), "region_count": ra.read.region_count,
                           "regions_sha256": sha256_hex(stored.as_bytes())}))
            .after(json!({"status": status, "values": values, "region_count": region_count,
                          "regions_sha256": sha256_hex(regions_json.as_bytes()), "schema_version": schema_version})),
    )?;
    Ok(saved(at))
}

/// How a read is named in the audit trail: `campaign/slide/reader`.
pub fn read_entity(r: &Read) -> String {
    format!("{}/{}/{}", r.campaign, r.slide, r.reader)
}

/// The read of (campaign, slide, reader) for the CLI: the campaign by name, or the only open
/// campaign where this reader has an unsubmitted read of the slide.
pub fn find(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    campaign: Option<&str>,
    slide: &str,
    reader: &str,
) -> Result<i32> {
    let mut q =
        joined(study_id).filter(slides::label.eq(slide.to_string())).filter(users::username.eq(reader.to_string()));
    if let Some(c) = campaign {
        q = q.filter(campaigns_t::name.eq(c.to_string()));
    } else {
        q = q.filter(campaigns_t::status.eq(CampaignStatus::Open)).filter(reads::status.ne(ReadStatus::Submitted));
    }
    let found: Vec<(i32, String)> = q.select((reads::id, campaigns_t::name)).load(conn)?;
    match found.as_slice() {
        [(id, _)] => Ok(*id),
        [] => Err(Error::invalid(
            "slide",
            format!(
                "{reader} has no open read of slide {slide}{}",
                campaign.map(|c| format!(" in campaign {c}")).unwrap_or_default()
            ),
        )),
        many => Err(Error::invalid(
            "campaign",
            format!(
                "{reader} reads {slide} in several campaigns ({}): name one with --campaign",
                many.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// The case data readers of a campaign may see for a read's slide (empty when blinded).
pub fn visible_case_values(conn: &mut Conn, campaign: &Campaign, slide_id: i32) -> Result<Vec<(String, String)>> {
    if campaign.blind_case_data || campaign.case_fields().is_empty() {
        return Ok(Vec::new());
    }
    let data: String =
        slides::table.inner_join(cases::table).filter(slides::id.eq(slide_id)).select(cases::data).first(conn)?;
    let dictionary = crate::cases::dictionary::load(conn, campaign.study_id)?;
    Ok(campaigns::case_values(campaign, &data, &dictionary))
}

/// Neighbours in the reader's queue (previous, next read ids), for n/p in the workbench.
pub fn neighbours(conn: &mut Conn, read: &Read) -> Result<(Option<i32>, Option<i32>)> {
    let base =
        || reads::table.filter(reads::campaign_id.eq(read.campaign_id)).filter(reads::reader_id.eq(read.reader_id));
    let prev = base()
        .filter(reads::position.lt(read.position))
        .order(reads::position.desc())
        .select(reads::id)
        .first(conn)
        .optional()?;
    let next = base()
        .filter(reads::position.gt(read.position))
        .order(reads::position.asc())
        .select(reads::id)
        .first(conn)
        .optional()?;
    Ok((prev, next))
}

/// Audit events of one read, newest first (the read's history on the workbench).
pub fn history(conn: &mut Conn, study_id: crate::studies::StudyId, read: &Read) -> Result<Vec<audit::AuditEvent>> {
    use crate::db::schema::audit_events;
    Ok(audit_events::table
        .filter(audit_events::study_id.eq(study_id))
        .filter(audit_events::entity.eq(Entity::Read))
        .filter(audit_events::entity_id.eq(read_entity(read)))
        .order(audit_events::id.desc())
        .select(audit::AuditEvent::as_select())
        .load(conn)?)
}
