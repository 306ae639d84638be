//! Biomarker runs: a model version over a study's slides (slides of enrolled cases that are not
//! excluded, optionally one site or stain), as a job with progress and cancel. One result per
//! slide, written as each slide finishes: a resumed run skips the slides that have one, so
//! nothing is computed twice or duplicated; a slide that fails is recorded with its reason and
//! the run goes on.

use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use super::phenotype::CellClass;
use super::pipeline::{self, Options};
use super::registry;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{biomarker_results, biomarker_runs, models, slides};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::jobs::kinds::{JobContext, JobHandler};

/// The run job's parameters: the run it computes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RunParams {
    pub run: i32,
}

/// What a run did: its slides, how many failed, and the backend it ran on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunOutput {
    pub run: i32,
    pub slides: i64,
    pub failed: i64,
    pub backend: super::Backend,
    /// The execution provider of the lead worker that finished it (`cuda`, `cpu`); absent in
    /// runs finished before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl crate::jobs::JobParams for RunParams {
    const KIND: crate::jobs::JobKind = crate::jobs::JobKind::BiomarkerRun;
    type Output = RunOutput;
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = biomarker_runs)]
pub struct Run {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    #[diesel(select_expression = models::name)]
    pub model_name: String,
    #[diesel(select_expression = models::version)]
    pub model_version: String,
    pub model_sha256: String,
    pub backend: Option<super::Backend>,
    #[serde(skip)]
    pub slide_ids: crate::db::Json<Vec<i32>>,
    pub job_id: Option<i32>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// The execution provider its lead worker ran the model on (`cuda`, `cpu`).
    pub provider: Option<String>,
}

impl Run {
    pub fn model(&self) -> String {
        format!("{}@{}", self.model_name, self.model_version)
    }
    pub fn slide_ids(&self) -> Vec<i32> {
        self.slide_ids.0.clone()
    }
}

crate::db::text_enum! {
    /// One slide's outcome in a run: analysed, or failed (with the reason).
    pub enum ResultStatus {
        Ok = "ok",
        Failed = "failed",
    }
}

crate::db::text_enum! {
    /// A slide's immune phenotype as stored with its result (the pipeline's `CellClass`).
    pub enum Phenotype {
        Inflamed = "inflamed",
        Excluded = "excluded",
        Desert = "desert",
    }
}

impl From<CellClass> for Phenotype {
    fn from(c: CellClass) -> Phenotype {
        match c {
            CellClass::Inflamed => Phenotype::Inflamed,
            CellClass::Excluded => Phenotype::Excluded,
            CellClass::Desert => Phenotype::Desert,
        }
    }
}

/// One slide's result in a run.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = biomarker_results)]
pub struct SlideResultRow {
    #[diesel(select_expression = slides::label)]
    pub slide: String,
    pub status: ResultStatus,
    pub reason: Option<String>,
    pub phenotype: Option<Phenotype>,
    pub inflamed_share: Option<f64>,
    pub excluded_share: Option<f64>,
    pub desert_share: Option<f64>,
    pub itil_density_median: Option<f64>,
    pub stil_density_median: Option<f64>,
    pub grid_cells_scored: Option<i32>,
    pub tiles: Option<i32>,
    pub flags: String,
    pub seconds: f64,
}

impl SlideResultRow {
    /// The flags as people read them ("slide unreadable, few tiles"); empty when none.
    pub fn flags_label(&self) -> String {
        let flags: Vec<String> = serde_json::from_str(&self.flags).unwrap_or_default();
        flags.iter().map(|f| f.replace('_', " ")).collect::<Vec<_>>().join(", ")
    }
}

impl crate::export::CsvRecord for SlideResultRow {
    const HEADER: &'static [&'static str] = &[
        "slide",
        "status",
        "reason",
        "phenotype",
        "inflamed_share",
        "excluded_share",
        "desert_share",
        "itil_density_median",
        "stil_density_median",
        "grid_cells_scored",
        "tiles",
        "flags",
        "seconds",
    ];
    fn record(&self) -> Vec<String> {
        let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let i = |v: Option<i32>| v.map(|x| x.to_string()).unwrap_or_default();
        vec![
            self.slide.clone(),
            self.status.to_string(),
            self.reason.clone().unwrap_or_default(),
            self.phenotype.map(|p| p.to_string()).unwrap_or_default(),
            f(self.inflamed_share),
            f(self.excluded_share),
            f(self.desert_share),
            f(self.itil_density_median),
            f(self.stil_density_median),
            i(self.grid_cells_scored),
            i(self.tiles),
            self.flags.clone(),
            format!("{:.3}", self.seconds),
        ]
    }
}

pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, id: i32) -> Result<Run> {
    biomarker_runs::table
        .inner_join(models::table)
        .filter(biomarker_runs::study_id.eq(study_id))
        .filter(biomarker_runs::id.eq(id))
        .select(Run::as_select())
        .first(conn)
        .or_not_found()
}

pub fn list(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Run>> {
    Ok(biomarker_runs::table
        .inner_join(models::table)
        .filter(biomarker_runs::study_id.eq(study_id))
        .order(biomarker_runs::id.desc())
        .select(Run::as_select())
        .load(conn)?)
}

/// The newest heatmap of a slide (from the newest run with a result for it): run id and map.
pub fn heatmap(conn: &mut Conn, study_id: crate::studies::StudyId, slide_label: &str) -> Result<Option<(i32, Value)>> {
    let row: Option<(i32, String)> = biomarker_results::table
        .inner_join(slides::table)
        .inner_join(biomarker_runs::table)
        .filter(biomarker_runs::study_id.eq(study_id))
        .filter(slides::label.eq(slide_label))
        .filter(biomarker_results::status.eq(ResultStatus::Ok))
        .order(biomarker_runs::id.desc())
        .select((biomarker_runs::id, biomarker_results::cells))
        .first(conn)
        .optional()?;
    Ok(row.map(|(id, cells)| (id, serde_json::from_str(&cells).unwrap_or(Value::Null))))
}

/// A result's heatmap as a PNG laid over its slide: each scored grid cell's class colour over
/// the cell's tissue only (glass stays clear), at the tissue mask's resolution
/// (`pipeline::heatmap_rgba`).
pub fn heatmap_png(reader: &dyn crate::slides::reader::SlideReader, heatmap: &Value) -> Result<Vec<u8>> {
    let (w, h, rgba) = pipeline::heatmap_rgba(reader, heatmap)
        .map_err(|e| Error::Internal(anyhow::anyhow!("drawing the heatmap: {e}")))?;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| Error::Internal(anyhow::anyhow!("encoding the heatmap: {e}"));
    let mut writer = enc.write_header().map_err(png_error)?;
    writer.write_image_data(&rgba).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

/// Slides the run has a successful result for.
pub fn slides_with_result(conn: &mut Conn, run_id: i32) -> Result<std::collections::BTreeSet<i32>> {
    Ok(biomarker_results::table
        .filter(biomarker_results::run_id.eq(run_id))
        .filter(biomarker_results::status.eq(ResultStatus::Ok))
        .select(biomarker_results::slide_id)
        .load::<i32>(conn)?
        .into_iter()
        .collect())
}

/// One slide's result in a run with its heatmap (what an AI-assisted reader sees).
pub fn slide_result(conn: &mut Conn, run_id: i32, slide_id: i32) -> Result<Option<(SlideResultRow, Value)>> {
    let row: Option<(SlideResultRow, String)> = biomarker_results::table
        .inner_join(slides::table)
        .filter(biomarker_results::run_id.eq(run_id))
        .filter(biomarker_results::slide_id.eq(slide_id))
        .select((SlideResultRow::as_select(), biomarker_results::cells))
        .first(conn)
        .optional()?;
    Ok(row.map(|(r, cells)| (r, serde_json::from_str(&cells).unwrap_or(Value::Null))))
}

pub fn results(conn: &mut Conn, run_id: i32) -> Result<Vec<SlideResultRow>> {
    Ok(biomarker_results::table
        .inner_join(slides::table)
        .filter(biomarker_results::run_id.eq(run_id))
        .order(slides::label.asc())
        .select(SlideResultRow::as_select())
        .load(conn)?)
}

/// Starts a run of an active model over the study's slides; returns the run and its job.
pub fn start(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    model_key: &str,
    site: &str,
    stain: &str,
) -> Result<(Run, crate::jobs::Job)> {
    access.require(Permission::ManageRuns)?;
    let study = crate::studies::get_by_code(conn, &access.study.code)?;
    study.ensure_editable()?;
    let model = registry::get(conn, model_key)?;
    if model.status != super::registry::ModelStatus::Active {
        return Err(Error::invalid("model", format!("{model_key} is {}: choose an active version", model.status)));
    }
    let slide_ids: Vec<i32> =
        crate::slides::enrolled_available(conn, study.id, site, stain)?.into_iter().map(|(id, _)| id).collect();
    if slide_ids.is_empty() {
        return Err(Error::invalid("slides", "no slide matches: slides of enrolled cases that are not excluded"));
    }
    let opts = Options::default();
    let run_id = write_tx(conn, |conn| {
        let id: i32 = diesel::insert_into(biomarker_runs::table)
            .values((
                biomarker_runs::study_id.eq(study.id),
                biomarker_runs::model_id.eq(model.id),
                biomarker_runs::model_sha256.eq(&model.sha256),
                biomarker_runs::params.eq(json!(opts).to_string()),
                biomarker_runs::slide_ids.eq(json!(slide_ids).to_string()),
                biomarker_runs::created_by.eq(&actor.name),
                biomarker_runs::created_at.eq(now()),
            ))
            .returning(biomarker_runs::id)
            .get_result(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::StartRun, Entity::BiomarkerRun, id).after(json!({
                "model": model.key(), "model_sha256": model.sha256, "slides": slide_ids.len(), "params": opts,
            })),
        )?;
        Ok::<_, Error>(id)
    })?;
    let job = crate::jobs::enqueue(conn, actor, Some(&study), &RunParams { run: run_id })?;
    diesel::update(biomarker_runs::table.find(run_id)).set(biomarker_runs::job_id.eq(job.id)).execute(conn)?;
    Ok((get(conn, study.id, run_id)?, job))
}

/// The run's job: one work item per slide ([`crate::jobs::items`]), shared by every worker of the
/// installation; the worker that claimed the job leads it and records its end.
pub struct RunJob;

/// What a worker needs to analyse a run's slides, loaded once per worker: the model's card and
/// inference sessions.
struct Analyser {
    run_id: i32,
    card: super::card::ModelCard,
    sessions: Vec<super::engine::Model>,
    backend: super::Backend,
}

impl Analyser {
    /// The execution provider the model runs on here.
    fn provider(&self) -> &'static str {
        self.sessions.first().map(|m| m.provider.as_str()).unwrap_or("cpu")
    }
}

impl Analyser {
    fn open(conn: &mut Conn, storage: &crate::storage::Storage, run_id: i32) -> anyhow::Result<Analyser> {
        let model_id: i32 = biomarker_runs::table.find(run_id).select(biomarker_runs::model_id).first(conn)?;
        let model: registry::ModelRecord =
            models::table.find(model_id).select(registry::ModelRecord::as_select()).first(conn)?;
        let card = model.card().map_err(|e| anyhow::anyhow!("{e}"))?;
        let sessions = pipeline::sessions(&model.file(storage)?).map_err(|e| anyhow::anyhow!(e))?;
        let backend = super::engine::backend().map_err(|e| anyhow::anyhow!(e))?;
        if let Some(w) = backend.warning() {
            tracing::warn!(run = run_id, "{w}");
        }
        Ok(Analyser { run_id, card, sessions, backend: super::Backend::from(backend.kind) })
    }

    /// Analyses one slide and stores its result, unless it has one already (an earlier worker
    /// finished it before it was lost): never twice. A slide that cannot be analysed gets a
    /// failed result with its reason. Returns the tiles analysed.
    fn slide(&mut self, conn: &mut Conn, storage: &crate::storage::Storage, slide_id: i32) -> anyhow::Result<u64> {
        let has_result = biomarker_results::table
            .filter(biomarker_results::run_id.eq(self.run_id))
            .filter(biomarker_results::slide_id.eq(slide_id))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if has_result {
            return Ok(0);
        }
        let (sha, format): (String, crate::slides::SlideFormat) =
            slides::table.find(slide_id).select((slides::sha256, slides::format)).first(conn)?;
        let t0 = Instant::now();
        let outcome = crate::slides::open_stored(storage, &sha, format)
            .map_err(|e| format!("slide unreadable: {e}"))
            .and_then(|reader| {
                pipeline::analyse(reader.as_ref(), &mut self.sessions, &self.card, Options::default(), &mut |_, _| {})
            });
        let seconds = t0.elapsed().as_secs_f64();
        let tiles = outcome.as_ref().map(|r| u64::from(r.tiles)).unwrap_or(0);
        let row = match outcome {
            Ok(r) => (
                biomarker_results::status.eq(ResultStatus::Ok),
                biomarker_results::reason.eq(None::<String>),
                biomarker_results::phenotype.eq(r.phenotype.map(Phenotype::from)),
                biomarker_results::inflamed_share.eq(Some(r.inflamed_share)),
                biomarker_results::excluded_share.eq(Some(r.excluded_share)),
                biomarker_results::desert_share.eq(Some(r.desert_share)),
                biomarker_results::itil_density_median.eq(r.itil_density_median),
                biomarker_results::stil_density_median.eq(r.stil_density_median),
                biomarker_results::grid_cells_scored.eq(Some(r.grid_cells_scored as i32)),
                biomarker_results::tiles.eq(Some(r.tiles as i32)),
                biomarker_results::flags.eq(json!(r.flags).to_string()),
                biomarker_results::cells.eq(r.heatmap().to_string()),
            ),
            Err(e) => failed_row(e),
        };
        insert_result(conn, self.run_id, slide_id, row, seconds, Some(self.provider()))?;
        Ok(tiles)
    }
}

type ResultRow = (
    diesel::dsl::Eq<biomarker_results::status, ResultStatus>,
    diesel::dsl::Eq<biomarker_results::reason, Option<String>>,
    diesel::dsl::Eq<biomarker_results::phenotype, Option<Phenotype>>,
    diesel::dsl::Eq<biomarker_results::inflamed_share, Option<f64>>,
    diesel::dsl::Eq<biomarker_results::excluded_share, Option<f64>>,
    diesel::dsl::Eq<biomarker_results::desert_share, Option<f64>>,
    diesel::dsl::Eq<biomarker_results::itil_density_median, Option<f64>>,
    diesel::dsl::Eq<biomarker_results::stil_density_median, Option<f64>>,
    diesel::dsl::Eq<biomarker_results::grid_cells_scored, Option<i32>>,
    diesel::dsl::Eq<biomarker_results::tiles, Option<i32>>,
    diesel::dsl::Eq<biomarker_results::flags, String>,
    diesel::dsl::Eq<biomarker_results::cells, String>,
);

/// The result of a slide that could not be analysed, with why.
fn failed_row(reason: String) -> ResultRow {
    (
        biomarker_results::status.eq(ResultStatus::Failed),
        biomarker_results::reason.eq(Some(reason)),
        biomarker_results::phenotype.eq(None::<Phenotype>),
        biomarker_results::inflamed_share.eq(None),
        biomarker_results::excluded_share.eq(None),
        biomarker_results::desert_share.eq(None),
        biomarker_results::itil_density_median.eq(None),
        biomarker_results::stil_density_median.eq(None),
        biomarker_results::grid_cells_scored.eq(None),
        biomarker_results::tiles.eq(None),
        biomarker_results::flags.eq(json!(["slide_unreadable"]).to_string()),
        biomarker_results::cells.eq("{}".to_string()),
    )
}

/// Stores a slide's result; one already there (a worker that lost the slide finished it after
/// all) is kept: one result per slide (`UNIQUE (run_id, slide_id)`), the first.
/// `provider`: the execution provider the slide was analysed on (none when it was not).
fn insert_result(
    conn: &mut Conn,
    run_id: i32,
    slide_id: i32,
    row: ResultRow,
    seconds: f64,
    provider: Option<&str>,
) -> anyhow::Result<()> {
    crate::db::on_engine!(&mut *conn, |c| diesel::insert_into(biomarker_results::table)
        .values((
            biomarker_results::run_id.eq(run_id),
            biomarker_results::slide_id.eq(slide_id),
            row,
            biomarker_results::seconds.eq(seconds),
            biomarker_results::created_at.eq(now()),
            biomarker_results::provider.eq(provider),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Claims and analyses the run's slides one at a time (starting with `first`, if given) until
/// none is left to claim, reporting the run's progress — all workers' — after each.
fn work_items(ctx: &JobContext, a: &mut Analyser, first: Option<crate::jobs::items::Claimed>) -> anyhow::Result<()> {
    use crate::jobs::items;
    let mut next = first;
    loop {
        let item = match next.take() {
            Some(i) => i,
            None => match items::claim(&mut *ctx.conn()?, Some(ctx.job.id), &ctx.worker)? {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        a.slide(&mut *ctx.conn()?, &ctx.storage, item.item)?;
        if !items::finish(&mut *ctx.conn()?, item, &ctx.worker, None)? {
            tracing::warn!(job = ctx.job.id, slide = item.item, worker = %ctx.worker, "the slide was taken over by another worker meanwhile");
        }
        if report(ctx)? {
            return Err(crate::jobs::kinds::Cancelled.into());
        }
    }
}

/// Records the run's progress from its items; whether a cancel was asked.
fn report(ctx: &JobContext) -> anyhow::Result<bool> {
    use crate::jobs::items;
    let mut conn = ctx.conn()?;
    let c = items::counts(&mut conn, ctx.job.id)?;
    let started = ctx.job.started_at.unwrap_or_else(now);
    let elapsed = (now() - started).num_milliseconds().max(1) as f64 / 1000.0;
    let left = match c.finished() {
        0 => String::new(),
        n => format!(", ~{:.0} s left", (c.total() - n) as f64 * elapsed / n as f64),
    };
    let workers = c.workers.max(1);
    let message = format!(
        "{}/{} slides on {workers} worker{}{left}",
        c.finished(),
        c.total(),
        if workers == 1 { "" } else { "s" }
    );
    Ok(items::report(&mut conn, ctx.job.id, &message)?)
}

impl JobHandler for RunJob {
    fn run(&self, ctx: &JobContext) -> anyhow::Result<Value> {
        use crate::jobs::items;
        let run_id = ctx.job.params::<RunParams>()?.run;
        let mut conn = ctx.conn()?;
        let (study_id, slide_ids): (i32, String) = biomarker_runs::table
            .find(run_id)
            .select((biomarker_runs::study_id, biomarker_runs::slide_ids))
            .first(&mut conn)?;
        let slide_ids: Vec<i32> = serde_json::from_str(&slide_ids)?;
        let mut analyser = Analyser::open(&mut conn, &ctx.storage, run_id)?;
        diesel::update(biomarker_runs::table.find(run_id))
            .set((biomarker_runs::backend.eq(analyser.backend), biomarker_runs::provider.eq(analyser.provider())))
            .execute(&mut conn)?;
        items::ensure(&mut conn, ctx.job.id, &slide_ids)?;
        drop(conn);
        // Work, then wait for the slides other workers hold; one of theirs coming back to the
        // queue (its worker lost) is taken here.
        loop {
            work_items(ctx, &mut analyser, None)?;
            let c = items::counts(&mut *ctx.conn()?, ctx.job.id)?;
            if c.queued == 0 && c.running == 0 {
                break;
            }
            if report(ctx)? {
                return Err(crate::jobs::kinds::Cancelled.into());
            }
            items::requeue_stale(&mut *ctx.conn()?, ctx.stale_after)?;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let mut conn = ctx.conn()?;
        // A slide whose workers were all lost gets a failed result: every slide has one (one that
        // has a result already keeps it: results are insert-once).
        for (slide_id, why) in items::failed(&mut conn, ctx.job.id)? {
            insert_result(&mut conn, run_id, slide_id, failed_row(why), 0.0, None)?;
        }
        let failed = biomarker_results::table
            .filter(biomarker_results::run_id.eq(run_id))
            .filter(biomarker_results::status.eq(ResultStatus::Failed))
            .count()
            .get_result::<i64>(&mut conn)?;
        let total = slide_ids.len() as i64;
        report(ctx)?;
        let summary = RunOutput {
            run: run_id,
            slides: total,
            failed,
            backend: analyser.backend,
            provider: Some(analyser.provider().to_string()),
        };
        let study: crate::studies::Study = crate::db::schema::studies::table
            .find(study_id)
            .select(crate::studies::Study::as_select())
            .first(&mut conn)?;
        audit::record(
            &mut conn,
            Change::new(study.chain(), "system", Action::FinishRun, Entity::BiomarkerRun, run_id).after(json!(summary)),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::jobs::output::<RunParams>(&summary)
    }

    fn help(&self, ctx: &JobContext, first: crate::jobs::items::Claimed) -> anyhow::Result<()> {
        let run_id = ctx.job.params::<RunParams>()?.run;
        let mut analyser = Analyser::open(&mut *ctx.conn()?, &ctx.storage, run_id)?;
        tracing::info!(job = ctx.job.id, worker = %ctx.worker, provider = analyser.provider(), "helping with a run");
        match work_items(ctx, &mut analyser, Some(first)) {
            Err(e) if e.is::<crate::jobs::kinds::Cancelled>() => Ok(()),
            other => other,
        }
    }
}
