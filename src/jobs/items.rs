//! Work items: a job that fans out into independent pieces (an AI run: one per slide) is shared
//! by every worker of the installation: every process that opens its database. The worker that claimed the job leads it:
//! it creates the items, works on them, waits for the ones others hold and finishes the job.
//! Any idle worker helps: it claims items of running jobs one at a time. Each item is claimed
//! atomically by one worker (a conditional update: of two racing workers exactly one changes the
//! row), carries its own heartbeat, and goes back to the queue when its worker stops beating
//! (`EVIDENTIA_JOB_STALE_SECS`); after [`MAX_ATTEMPTS`] lost workers it fails. Progress is the
//! count of finished items, whoever finished them.

use std::time::Duration;

use diesel::prelude::*;

use super::JobStatus;
use crate::db::schema::{job_items, jobs};
use crate::db::{now, write_tx, Conn};
use crate::error::Result;
use diesel::sql_types::{Integer, Nullable, Text, Timestamp};

/// Lost workers an item survives before it fails.
pub const MAX_ATTEMPTS: i32 = 3;

crate::db::text_enum! {
    /// Where an item is: queued → running → done / failed (a running item whose worker stops
    /// beating is queued again).
    pub enum ItemStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

/// An item claimed by a worker: its row, its job, and what it stands for (a slide id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub id: i32,
    pub job_id: i32,
    pub item: i32,
}

/// How far a job's items are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    /// Workers holding an item now.
    pub workers: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.queued + self.running + self.done + self.failed
    }
    pub fn finished(&self) -> i64 {
        self.done + self.failed
    }
}

/// Creates the job's items (those it has already are kept as they are: a lead taking over an
/// earlier one's job creates nothing twice).
pub fn ensure(conn: &mut Conn, job_id: i32, items: &[i32]) -> Result<()> {
    write_tx(conn, |conn| {
        for chunk in items.chunks(500) {
            let rows: Vec<_> = chunk.iter().map(|i| (job_items::job_id.eq(job_id), job_items::item.eq(*i))).collect();
            crate::db::on_engine!(&mut *conn, |c| {
                diesel::insert_into(job_items::table).values(&rows).on_conflict_do_nothing().execute(c)
            })?;
        }
        Ok(())
    })
}

/// Claims the next queued item for `worker`: of job `job_id`, or (a helper) of any running job
/// nobody asked to cancel. `None` when there is none.
pub fn claim(conn: &mut Conn, job_id: Option<i32>, worker: &str) -> Result<Option<Claimed>> {
    if crate::db::is_postgres(conn) {
        return claim_skip_locked(conn, job_id, worker);
    }
    loop {
        let mut next = job_items::table
            .inner_join(jobs::table)
            .filter(job_items::status.eq(ItemStatus::Queued.as_str()))
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::cancel_requested.eq(false))
            .order(job_items::id.asc())
            .select((job_items::id, job_items::job_id, job_items::item))
            .into_boxed();
        if let Some(j) = job_id {
            next = next.filter(job_items::job_id.eq(j));
        }
        let Some((id, job_id, item)) = next.first::<(i32, i32, i32)>(conn).optional()? else { return Ok(None) };
        let t = now();
        let n = diesel::update(
            job_items::table.filter(job_items::id.eq(id)).filter(job_items::status.eq(ItemStatus::Queued.as_str())),
        )
        .set((
            job_items::status.eq(ItemStatus::Running.as_str()),
            job_items::worker.eq(worker),
            job_items::heartbeat_at.eq(Some(t)),
            job_items::attempts.eq(job_items::attempts + 1),
        ))
        .execute(conn)?;
        if n == 1 {
            return Ok(Some(Claimed { id, job_id, item }));
        }
    }
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    job_id: i32,
    #[diesel(sql_type = Integer)]
    item: i32,
}

/// [`claim`] on PostgreSQL in one statement: the first queued item no other worker is claiming
/// at this moment (`FOR UPDATE SKIP LOCKED`), so that workers on many machines never wait on
/// one another's claims nor retry after losing a race.
fn claim_skip_locked(conn: &mut Conn, job_id: Option<i32>, worker: &str) -> Result<Option<Claimed>> {
    let row: Option<ClaimedRow> = diesel::sql_query(
        "UPDATE job_items SET status = $1, worker = $2, heartbeat_at = $3, attempts = attempts + 1 \
         WHERE id = (SELECT i.id FROM job_items i JOIN jobs j ON j.id = i.job_id \
                     WHERE i.status = $4 AND j.status = $5 AND NOT j.cancel_requested \
                       AND ($6::integer IS NULL OR i.job_id = $6) \
                     ORDER BY i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED) \
         RETURNING id, job_id, item",
    )
    .bind::<Text, _>(ItemStatus::Running.as_str())
    .bind::<Text, _>(worker)
    .bind::<Timestamp, _>(now())
    .bind::<Text, _>(ItemStatus::Queued.as_str())
    .bind::<Text, _>(JobStatus::Running.as_str())
    .bind::<Nullable<Integer>, _>(job_id)
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| Claimed { id: r.id, job_id: r.job_id, item: r.item }))
}

/// Records the end of an item `worker` claimed: done, or failed with why. Only while the item is
/// still this worker's: one taken from it (its heartbeat stopped) is the new holder's to finish.
/// Returns whether it was recorded.
pub fn finish(conn: &mut Conn, item: Claimed, worker: &str, error: Option<&str>) -> Result<bool> {
    let status = if error.is_some() { ItemStatus::Failed } else { ItemStatus::Done };
    let n = diesel::update(
        job_items::table
            .find(item.id)
            .filter(job_items::worker.eq(worker))
            .filter(job_items::status.eq(ItemStatus::Running.as_str())),
    )
    .set((
        job_items::status.eq(status.as_str()),
        job_items::error.eq(error),
        job_items::finished_at.eq(Some(now())),
        job_items::heartbeat_at.eq(Some(now())),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives the items of job `job_id` that `worker` holds back to the queue (it stopped before
/// finishing them); returns how many.
pub fn release(conn: &mut Conn, job_id: i32, worker: &str) -> Result<usize> {
    Ok(diesel::update(
        job_items::table
            .filter(job_items::job_id.eq(job_id))
            .filter(job_items::worker.eq(worker))
            .filter(job_items::status.eq(ItemStatus::Running.as_str())),
    )
    .set((
        job_items::status.eq(ItemStatus::Queued.as_str()),
        job_items::worker.eq(None::<String>),
        job_items::attempts.eq(job_items::attempts - 1),
    ))
    .execute(conn)?)
}

/// Refreshes the heartbeat of every item `worker` holds.
pub fn heartbeat(conn: &mut Conn, worker: &str) -> Result<()> {
    diesel::update(
        job_items::table
            .filter(job_items::worker.eq(worker))
            .filter(job_items::status.eq(ItemStatus::Running.as_str())),
    )
    .set(job_items::heartbeat_at.eq(Some(now())))
    .execute(conn)?;
    Ok(())
}

/// Items whose worker stopped beating go back to the queue, or fail after [`MAX_ATTEMPTS`].
/// Returns how many were touched.
pub fn requeue_stale(conn: &mut Conn, stale_after: Duration) -> Result<usize> {
    let cutoff = now() - chrono::Duration::from_std(stale_after).unwrap_or_default();
    let stale = job_items::table
        .filter(job_items::status.eq(ItemStatus::Running.as_str()))
        .filter(job_items::heartbeat_at.lt(cutoff));
    write_tx(conn, |conn| {
        let failed = diesel::update(stale.filter(job_items::attempts.ge(MAX_ATTEMPTS)))
            .set((
                job_items::status.eq(ItemStatus::Failed.as_str()),
                job_items::error.eq(Some(format!("its worker was lost {MAX_ATTEMPTS} times"))),
                job_items::finished_at.eq(Some(now())),
            ))
            .execute(conn)?;
        let requeued = diesel::update(stale)
            .set((job_items::status.eq(ItemStatus::Queued.as_str()), job_items::worker.eq(None::<String>)))
            .execute(conn)?;
        Ok(failed + requeued)
    })
}

/// How far job `job_id`'s items are.
pub fn counts(conn: &mut Conn, job_id: i32) -> Result<Counts> {
    let rows: Vec<(String, i64)> = job_items::table
        .filter(job_items::job_id.eq(job_id))
        .group_by(job_items::status)
        .select((job_items::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut c = Counts::default();
    for (status, n) in rows {
        match ItemStatus::parse(&status) {
            Some(ItemStatus::Queued) => c.queued = n,
            Some(ItemStatus::Running) => c.running = n,
            Some(ItemStatus::Done) => c.done = n,
            Some(ItemStatus::Failed) => c.failed = n,
            None => {}
        }
    }
    c.workers = job_items::table
        .filter(job_items::job_id.eq(job_id))
        .filter(job_items::status.eq(ItemStatus::Running.as_str()))
        .select(job_items::worker)
        .distinct()
        .load::<Option<String>>(conn)?
        .len() as i64;
    Ok(c)
}

/// The items of job `job_id` that failed, with why.
pub fn failed(conn: &mut Conn, job_id: i32) -> Result<Vec<(i32, String)>> {
    Ok(job_items::table
        .filter(job_items::job_id.eq(job_id))
        .filter(job_items::status.eq(ItemStatus::Failed.as_str()))
        .order(job_items::id.asc())
        .select((job_items::item, job_items::error.assume_not_null()))
        .load(conn)?)
}

/// Records the job's progress from its items (whoever finished them); returns whether a cancel
/// was asked.
pub fn report(conn: &mut Conn, job_id: i32, message: &str) -> Result<bool> {
    let c = counts(conn, job_id)?;
    diesel::update(jobs::table.find(job_id))
        .set((jobs::progress_done.eq(c.finished()), jobs::progress_total.eq(c.total()), jobs::message.eq(message)))
        .execute(conn)?;
    Ok(jobs::table.find(job_id).select(jobs::cancel_requested).first(conn)?)
}
