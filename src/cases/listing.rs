//! The case list: filters, sort and paging over up to hundreds of thousands of cases, answered
//! from a cache of each list's ordered case ids while the study's cases are unchanged.
//!
//! Counting and skipping to a deep page cost a scan of the study's cases (and a filter on a
//! dictionary field parses every case's values): tens to hundreds of milliseconds at 100,000
//! cases, for every request. So the ordered ids of a list (study, filters, sort) are computed
//! once and kept with the study's *case version*, which triggers on `cases` and `sites`
//! (migration `2026-12-05-000015_case_versions`) raise on every change, whoever makes it (the
//! server, the CLI, a worker). A request reads the version (one indexed row), slices its page
//! out of the cached ids and loads only those rows (a page asked again at the same version is
//! kept too, its values parsed). Concurrent requests for a list not yet cached wait for the one
//! computing it instead of computing it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;

use super::dictionary::FieldDef;
use super::{Case, CaseFilter};
use crate::auth::permissions::SiteScope;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{case_versions, cases, sites};
use crate::db::{json_text_like, Conn};
use crate::error::{Error, Result};
use crate::studies::sites::Site;
use crate::studies::StudyId;

/// Lists kept at most; past this the cache starts again (each list is 4 bytes per case).
const MAX_LISTS: usize = 64;
/// Pages kept at most (about 150 KB each at 50 cases of 30 values).
const MAX_PAGES: usize = 128;

/// One list's key: the study, its case version, and everything that selects and orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    study: StudyId,
    scope: SiteScope,
    version: i64,
    site: String,
    status: String,
    field: String,
    value: String,
    sort: String,
    desc: bool,
}

type Slot = Arc<Mutex<Option<Arc<Vec<i32>>>>>;

/// A page of a list: the list and the slice of its ids.
type PageKey = (Key, usize, usize);

/// What a case list page shows besides its cases, kept with the case version, which the data
/// dictionary and the sites also raise (migration `2026-12-09-000002_case_version_dictionary`):
/// parsing the dictionary took an eighth of a page's time.
#[derive(Clone)]
pub struct StudyParts {
    version: i64,
    pub fields: Arc<Vec<FieldDef>>,
    /// Every site of the study, retired ones too.
    pub sites: Arc<Vec<Site>>,
}

/// The ordered case ids of recently asked lists, their pages' cases, and each study's
/// dictionary and sites (shared by all requests of one server).
#[derive(Default)]
pub struct ListCache {
    lists: Mutex<HashMap<Key, Slot>>,
    parts: Mutex<HashMap<StudyId, StudyParts>>,
    /// Pages' cases as loaded (their values parsed), by list and slice of it.
    pages: Mutex<HashMap<PageKey, Arc<Vec<Case>>>>,
}

impl ListCache {
    /// The study's dictionary and sites as of its current case version. The version is read
    /// first: what is loaded after it is at least as new, and a later change raises it again.
    pub fn parts(&self, conn: &mut Conn, study: StudyId) -> Result<StudyParts> {
        let now = version(conn, study)?;
        if let Some(p) = self.parts.lock().unwrap_or_else(|p| p.into_inner()).get(&study).filter(|p| p.version == now) {
            return Ok(p.clone());
        }
        let parts = StudyParts {
            version: now,
            fields: Arc::new(super::dictionary::load(conn, study)?),
            sites: Arc::new(crate::studies::sites::list(conn, study, true)?),
        };
        let mut all = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut all, MAX_LISTS, |_| true);
        all.insert(study, parts.clone());
        Ok(parts)
    }

    /// The slot of `key`, new if absent; lists of the same study at other versions go.
    fn slot(&self, key: &Key) -> Slot {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = lists.get(key) {
            return s.clone();
        }
        make_room(&mut lists, MAX_LISTS, |k| key.is_current(k));
        lists.entry(key.clone()).or_default().clone()
    }

    /// The cases `ids[start..end]` of the list `key`, loaded by `load` unless kept.
    fn page(
        &self,
        key: &Key,
        start: usize,
        end: usize,
        load: impl FnOnce() -> Result<Vec<Case>>,
    ) -> Result<Arc<Vec<Case>>> {
        let at = (key.clone(), start, end);
        if let Some(rows) = self.pages.lock().unwrap_or_else(|p| p.into_inner()).get(&at) {
            return Ok(rows.clone());
        }
        let rows = Arc::new(load()?);
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut pages, MAX_PAGES, |(k, _, _)| key.is_current(k));
        pages.insert(at, rows.clone());
        Ok(rows)
    }
}

impl Key {
    /// Whether `other` may stay beside this key: another study's, or this study's at this version.
    fn is_current(&self, other: &Key) -> bool {
        other.study != self.study || other.version == self.version
    }
}

/// Before an insert: drops the entries `keep` refuses, and all of them when `max` are kept.
fn make_room<K, V>(map: &mut HashMap<K, V>, max: usize, keep: impl Fn(&K) -> bool) {
    map.retain(|k, _| keep(k));
    if map.len() >= max {
        map.clear();
    }
}

/// The study's case version (0 before its first case).
fn version(conn: &mut Conn, study: StudyId) -> Result<i64> {
    Ok(case_versions::table.find(study).select(case_versions::version).first(conn).optional()?.unwrap_or(0))
}

/// Cases of a study with filters, sort and paging. A page (at most 500 cases) comes through
/// `cache`; longer requests (CSV exports) read the rows in one ordered query. Only the sites of
/// `scope`.
pub fn list(
    conn: &mut Conn,
    cache: &ListCache,
    study_id: StudyId,
    scope: &SiteScope,
    dictionary: &[FieldDef],
    f: &CaseFilter,
    page: PageRequest,
) -> Result<Page<Case>> {
    if !f.field.is_empty() && !dictionary.iter().any(|d| d.name == f.field) {
        return Err(Error::invalid("field", format!("'{}' is not a dictionary field", f.field)));
    }
    let postgres = crate::db::is_postgres(conn);
    let build = || {
        let mut q = cases::table.inner_join(sites::table).filter(cases::study_id.eq(study_id)).into_boxed();
        if let Some(ids) = scope.ids() {
            q = q.filter(cases::site_id.eq_any(ids.to_vec()));
        }
        if !f.site.is_empty() {
            q = q.filter(sites::code.eq(f.site.clone()));
        }
        if !f.status.is_empty() {
            q = q.filter(cases::status.eq(f.status.clone()));
        }
        if !f.field.is_empty() && !f.value.trim().is_empty() {
            q = q.filter(json_text_like(postgres, &f.field, &format!("%{}%", f.value.trim())));
        }
        let desc = f.dir == "desc";
        // Every order ends on the id, so that equal keys page the same way every time.
        match (f.sort.as_str(), desc) {
            ("status", false) => q.order((cases::status.asc(), cases::id.asc())),
            ("status", true) => q.order((cases::status.desc(), cases::id.asc())),
            ("site", false) => q.order((sites::code.asc(), cases::id.asc())),
            ("site", true) => q.order((sites::code.desc(), cases::id.asc())),
            ("updated", false) => q.order((cases::updated_at.asc(), cases::id.asc())),
            ("updated", true) => q.order((cases::updated_at.desc(), cases::id.asc())),
            (_, true) => q.order(cases::display_id.desc()),
            _ => q.order(cases::display_id.asc()),
        }
    };
    if page.per_page > PageRequest::MAX_PER_PAGE {
        let items: Vec<Case> = build().select(Case::as_select()).load(conn)?;
        let total = items.len() as i64;
        return Ok(Page { items, total, page: page.page, per_page: page.per_page });
    }
    let key = Key {
        study: study_id,
        scope: scope.clone(),
        version: version(conn, study_id)?,
        site: f.site.clone(),
        status: f.status.clone(),
        field: f.field.clone(),
        value: f.value.trim().to_string(),
        sort: f.sort.clone(),
        desc: f.dir == "desc",
    };
    let slot = cache.slot(&key);
    let ids = {
        // Held while computing: a concurrent request for the same list waits for this one.
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(ids) => ids.clone(),
            None => {
                let ids = Arc::new(build().select(cases::id).load::<i32>(conn)?);
                *guard = Some(ids.clone());
                ids
            }
        }
    };
    let total = ids.len() as i64;
    let start = usize::try_from(page.offset()).unwrap_or(usize::MAX).min(ids.len());
    let end = start.saturating_add(usize::try_from(page.per_page).unwrap_or(0)).min(ids.len());
    let wanted = &ids[start..end];
    let rows = cache.page(&key, start, end, || {
        let mut rows: HashMap<i32, Case> = cases::table
            .inner_join(sites::table)
            .filter(cases::id.eq_any(wanted))
            .select(Case::as_select())
            .load::<Case>(conn)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        // In the list's order; a case gone since (never: cases are not deleted) is skipped.
        Ok(wanted.iter().filter_map(|id| rows.remove(id)).collect())
    })?;
    Ok(Page { items: rows.to_vec(), total, page: page.page, per_page: page.per_page })
}
