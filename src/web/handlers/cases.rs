//! Case data pages: the data dictionary, the case list and page, de-identified imports with a
//! preview before anything is stored, and the CSV exports. Annotators are blinded to all of it
//! (404).

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{Map, Value};

use super::StudyNav;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::cases::decode::Encoding;
use crate::cases::deid::EditDeid;
use crate::cases::dictionary::{self, DictionaryChange, FieldDef, FieldEdit};
use crate::cases::import::{self, ImportOptions, PreparedImport};
use crate::cases::{self, Case, CaseFilter, CaseStatus, ImportRecord};
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::studies::sites::{self, Site};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render, render_form, render_outcome, upload, AppState, Pager};

#[derive(Template)]
#[template(path = "cases/dictionary.html")]
pub struct DictionaryPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub fields: Vec<FieldDef>,
    pub can_manage: bool,
    pub change: Option<DictionaryChange>,
    pub problems: Vec<String>,
    pub errors: FieldErrors,
}

async fn dictionary_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    change: Option<DictionaryChange>,
    problems: Vec<String>,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let fields = state.db(move |c| dictionary::load(c, sid)).await?;
    let ctx = PageCtx::new(req, Some(user), format!("Data dictionary · {}", access.study.code), "studies");
    let failed = !problems.is_empty() || !errors.is_empty();
    let page = DictionaryPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "dictionary"),
        fields,
        can_manage: access.can(Permission::ManageCases) && access.study.ensure_editable().is_ok(),
        change,
        problems,
        errors,
    };
    render_outcome(&ctx, &page, failed)
}

pub async fn dictionary_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    dictionary_page(&req, &state, &user, access, None, Vec::new(), FieldErrors::default()).await
}

pub async fn dictionary_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let fields = state.db(move |c| dictionary::load(c, sid)).await?;
    let bytes = dictionary::to_redcap_csv(&fields).map_err(Error::Internal)?;
    Ok(crate::web::csv_response(&format!("{}-dictionary.csv", access.study.code), bytes))
}

pub async fn dictionary_import(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCases>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let up = match upload::read(payload, state.config.max_upload_bytes).await {
        Ok(u) => u,
        Err(Error::Invalid(e)) => {
            return dictionary_page(&req, &state, &user, access, None, vec![e.to_string()], FieldErrors::default())
                .await
        }
        Err(e) => return Err(e.into()),
    };
    let parsed = match dictionary::parse_redcap("the uploaded dictionary", &up.bytes) {
        Ok(p) => p,
        Err(problems) => {
            let list = problems.iter().map(|p| p.to_string()).collect();
            return dictionary_page(&req, &state, &user, access, None, list, FieldErrors::default()).await;
        }
    };
    let accept = !up.field("accept_invalidated").is_empty();
    let dry_run = !up.field("dry_run").is_empty();
    let actor = user.actor.clone();
    let a2 = access.clone();
    let fields = parsed.fields.clone();
    match state.db(move |c| dictionary::replace(c, &actor, &a2, &fields, accept, dry_run)).await {
        Ok(change) => {
            let code = access.study.code.clone();
            if dry_run {
                return dictionary_page(&req, &state, &user, access, Some(change), Vec::new(), FieldErrors::default())
                    .await;
            }
            let mut msg = format!(
                "Dictionary imported: {} added, {} changed, {} retired.",
                change.added.len(),
                change.changed.len(),
                change.retired.len()
            );
            if !parsed.ignored_columns.is_empty() {
                msg.push_str(&format!(" Kept but not used: {}.", parsed.ignored_columns.join(", ")));
            }
            Ok(redirect_with_flash(&format!("/studies/{code}/dictionary"), "ok", &msg))
        }
        Err(Error::Conflict(m)) => {
            dictionary_page(&req, &state, &user, access, None, vec![m], FieldErrors::default()).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn dictionary_field_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCases>,
    path: web::Path<(String, String)>,
    form: web::Form<FieldEdit>,
) -> Result<HttpResponse, PageError> {
    let (code, name) = path.into_inner();
    let actor = user.actor.clone();
    let a2 = access.clone();
    let n2 = name.clone();
    match state.db(move |c| dictionary::edit_field(c, &actor, &a2, &n2, &form)).await {
        Ok(_) => Ok(redirect_with_flash(
            &format!("/studies/{code}/dictionary#field-{name}"),
            "ok",
            &format!("Field {name} saved."),
        )),
        Err(Error::Invalid(errors)) => dictionary_page(&req, &state, &user, access, None, Vec::new(), errors).await,
        Err(Error::Conflict(m)) => {
            dictionary_page(&req, &state, &user, access, None, vec![m], FieldErrors::default()).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "cases/list.html")]
pub struct CasesListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub cases: Vec<Case>,
    pub total: i64,
    pub filter: CaseFilter,
    pub sites: Vec<Site>,
    pub fields: Vec<FieldDef>,
    pub pager: Pager,
    pub can_manage: bool,
    pub statuses: Vec<&'static str>,
    pub csv_query: String,
    /// The first few dictionary fields shown as columns.
    pub columns: Vec<FieldDef>,
}

impl CasesListPage {
    pub fn cell(&self, case: &Case, f: &FieldDef) -> String {
        case.value(&f.name).map(|v| f.label_of(v)).unwrap_or_default()
    }
}

fn filter_params(f: &CaseFilter) -> Vec<(&'static str, String)> {
    vec![
        ("site", f.site.clone()),
        ("status", f.status.clone()),
        ("field", f.field.clone()),
        ("value", f.value.clone()),
        ("sort", f.sort.clone()),
        ("dir", f.dir.clone()),
    ]
}

pub async fn cases_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<CaseFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = q.into_inner();
    let sid = access.study.id;
    let f2 = filter.clone();
    let lists = state.case_lists.clone();
    let scope = access.sites.clone();
    let (parts, page) = state
        .db(move |c| {
            let parts = lists.parts(c, sid)?;
            let page = cases::list(c, &lists, sid, &scope, &parts.fields, &f2, PageRequest::new(f2.page, None))?;
            Ok((parts, page))
        })
        .await?;
    let fields = parts.fields.as_slice();
    let site_list: Vec<Site> = parts.sites.iter().filter(|s| access.sites.includes(s.id)).cloned().collect();
    let base = format!("/studies/{}/cases", access.study.code);
    let (pager, csv_query) = Pager::with_csv_query(&page, &base, &filter_params(&filter));
    let columns: Vec<FieldDef> = fields
        .iter()
        .filter(|f| f.holds_data() && f.action != dictionary::DeidAction::Drop)
        .skip(1)
        .take(5)
        .cloned()
        .collect();
    let ctx = PageCtx::new(&req, Some(&user), format!("Cases · {}", access.study.code), "studies");
    render(
        &ctx,
        &CasesListPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "cases"),
            total: page.total,
            cases: page.items,
            filter,
            sites: site_list,
            fields: fields.iter().filter(|f| f.holds_data()).cloned().collect(),
            pager,
            can_manage: access.can(Permission::EnterData) && access.study.ensure_editable().is_ok(),
            statuses: CaseStatus::ALL.iter().map(|s| s.as_str()).collect(),
            csv_query,
            columns,
        },
    )
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ExportQuery {
    #[serde(flatten)]
    pub filter: CaseFilter,
    #[serde(default)]
    pub labels: Option<String>,
}

pub async fn cases_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, PageError> {
    let q = q.into_inner();
    let sid = access.study.id;
    let labels = q.labels.is_some();
    let scope = access.sites.clone();
    let bytes = state
        .db(move |c| {
            let fields = dictionary::load(c, sid)?;
            let page =
                cases::list(c, &cases::ListCache::default(), sid, &scope, &fields, &q.filter, PageRequest::all())?;
            let mut out = Vec::new();
            cases::export::write(&mut out, &fields, &page.items, labels)?;
            Ok(out)
        })
        .await?;
    Ok(crate::web::csv_response(&format!("{}-cases.csv", access.study.code), bytes))
}

#[derive(Template)]
#[template(path = "cases/import.html")]
pub struct CaseImportPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub sites: Vec<Site>,
    pub prepared: Option<PreparedImport>,
    pub token: String,
    pub error: Option<String>,
    pub imports: Vec<ImportRecord>,
    /// Saved analyses computed on the data as it is now: an import makes them stale.
    pub saved_current: i64,
    /// Why this user cannot import here (a locked study, a role without the right), if so.
    pub cannot_import: Option<String>,
}

impl CaseImportPage {
    pub fn report_rows(&self) -> Vec<(String, String, usize)> {
        self.prepared
            .as_ref()
            .map(|p| {
                p.report
                    .fields
                    .iter()
                    .flat_map(|(f, m)| m.iter().map(move |(rule, n)| (f.clone(), rule.clone(), *n)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn import_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: &StudyAccess,
    prepared: Option<PreparedImport>,
    token: String,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let (mut site_list, imports, saved_current) = state
        .db(move |c| {
            Ok((sites::list(c, sid, false)?, cases::imports(c, sid)?, crate::analyses::saved::current_count(c, sid)?))
        })
        .await?;
    site_list.retain(|s| access.sites.includes(s.id));
    // Site staff see their own imports only (an import's report covers every site in its file).
    let imports = match access.sites {
        crate::auth::permissions::SiteScope::All => imports,
        crate::auth::permissions::SiteScope::Only(_) => {
            imports.into_iter().filter(|i| i.actor == user.actor.name).collect()
        }
    };
    let ctx = PageCtx::new(req, Some(user), format!("Import cases · {}", access.study.code), "studies");
    let failed = error.is_some() || prepared.as_ref().is_some_and(|p| !p.ok());
    let page = CaseImportPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(access, "cases"),
        sites: site_list,
        prepared,
        token,
        error,
        imports,
        saved_current,
        cannot_import: if !access.can(Permission::EnterData) {
            Some("Only the study's managers and site staff import cases.".into())
        } else {
            access.study.ensure_editable().err().map(|_| {
                format!("The study is {}: its cases cannot change, so nothing can be imported.", access.study.status)
            })
        },
    };
    render_outcome(&ctx, &page, failed)
}

pub async fn case_import_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
) -> Result<HttpResponse, PageError> {
    import_page(&req, &state, &user, &access, None, String::new(), None).await
}

/// Upload → de-identified preview (the upload itself is dropped here, in memory).
pub async fn case_import_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EnterData>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    access.study.ensure_editable()?;
    let up = match upload::read(payload, state.config.max_upload_bytes).await {
        Ok(u) => u,
        Err(Error::Invalid(e)) => {
            return import_page(&req, &state, &user, &access, None, String::new(), Some(e.to_string())).await
        }
        Err(e) => return Err(e.into()),
    };
    let encoding = match up.field("encoding").as_str() {
        "" | "auto" => None,
        e => match Encoding::parse_name(e) {
            Some(e) => Some(e),
            None => {
                return import_page(
                    &req,
                    &state,
                    &user,
                    &access,
                    None,
                    String::new(),
                    Some(format!("unknown encoding '{e}'")),
                )
                .await
            }
        },
    };
    let site = Some(up.field("site")).filter(|s| !s.is_empty());
    let mut opts = ImportOptions {
        site,
        encoding,
        mrn_patterns: state.config.mrn_patterns.clone(),
        scope: access.sites.clone(),
        ..Default::default()
    };
    opts.limits.max_bytes = state.config.max_upload_bytes;
    let data_dir = state.config.data_dir.clone();
    let tmp = state.config.tmp_dir();
    let sid = access.study.id;
    let code = access.study.code.clone();
    let (prepared, token) = state
        .db(move |c| {
            let fields = dictionary::load(c, sid)?;
            let design = crate::cases::events::load(c, sid)?;
            let site_list = sites::list(c, sid, true)?;
            let key = crate::cases::deid::study_key(c, &data_dir, &code)?;
            // The name of an upload can itself identify a patient: it is not kept or shown.
            let prepared =
                import::prepare(sid, &fields, &design, &site_list, &key, "the uploaded file", &up.bytes, &opts);
            drop(up);
            let token = if prepared.ok() { import::save_preview(&tmp, &prepared)? } else { String::new() };
            Ok((prepared, token))
        })
        .await?;
    import_page(&req, &state, &user, &access, Some(prepared), token, None).await
}

pub async fn case_import_confirm(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EnterData>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (code, token) = path.into_inner();
    let tmp = state.config.tmp_dir();
    let actor = user.actor.clone();
    let url = format!("/studies/{code}/cases/import");
    let result = state
        .db(move |c| {
            let prepared = import::take_preview(&tmp, &token).ok_or_else(|| {
                Error::Conflict("this preview has expired or was already imported: upload the file again".into())
            })?;
            import::commit(c, &actor, &access, &prepared)
        })
        .await;
    if result.is_ok() {
        // The import returned once committed to the WAL (`db::bulk_write`).
        crate::db::checkpoint_in_background(&state.pool);
    }
    match result {
        // To the cases, the ones just imported first.
        Ok(s) => Ok(redirect_with_flash(
            &format!("/studies/{code}/cases?sort=updated&dir=desc"),
            "ok",
            &format!("Import {}: {} (listed first below). {}", s.import_id, s.sentence(), s.quality.sentence()),
        )),
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "cases/show.html")]
pub struct CaseShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub case: Case,
    pub fields: Vec<FieldDef>,
    pub view: FieldView,
    pub history: Vec<HistoryRow>,
    pub slides: Vec<crate::slides::Slide>,
    pub can_slides: bool,
    pub can_manage: bool,
    pub can_history: bool,
    pub statuses: Vec<&'static str>,
    /// The case's dates a status date is counted from.
    pub anchors: Vec<cases::DayAnchor>,
    pub errors: FieldErrors,
    /// The reasons offered for a change, and what the form sent back after an error.
    pub reasons: &'static [&'static str],
    pub reason: cases::ChangeReason,
    /// Saved analyses computed on the data as it is now: a change makes them stale.
    pub saved_current: i64,
    /// The case's open data quality findings.
    pub findings: Vec<crate::quality::Finding>,
    /// The case's queries not yet closed, and whether this user may open one.
    pub queries: Vec<crate::quality::queries::Query>,
    pub can_raise: bool,
    /// Each form and its source data verification, and whether this user verifies.
    pub verification: Vec<(String, Option<crate::quality::sdv::Verification>)>,
    pub can_verify: bool,
    /// The subject's events and forms (REDCap's record home page), in a study with a design.
    pub grid: Option<crate::cases::records::Grid>,
}

/// One event of a case's history as a person reads it.
pub struct HistoryRow {
    pub at: String,
    pub who: String,
    pub username: String,
    pub action: String,
    pub reason: Option<String>,
    pub changes: Vec<cases::FieldChange>,
}

/// The history rows of `events`: field changes labelled with the dictionary, people by name.
fn history_rows(
    conn: &mut crate::db::Conn,
    events: Vec<crate::audit::AuditEvent>,
    fields: &[FieldDef],
) -> Result<Vec<HistoryRow>, Error> {
    let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    let names = crate::auth::users::full_names(conn, &actors)?;
    Ok(events
        .iter()
        .map(|e| HistoryRow {
            at: e.at_display(),
            who: names.get(&e.actor).cloned().unwrap_or_else(|| e.actor.clone()),
            username: e.actor.clone(),
            action: {
                let what = match e.action.as_str() {
                    "create" => "created".to_string(),
                    "update" => "values changed".to_string(),
                    "status" => "status changed".to_string(),
                    other => other.replace('_', " "),
                };
                // A later event's record: which one (`month_3_arm_1:irae#2`).
                match e.entity_id.split_once('/') {
                    Some((_, slot)) if e.entity == crate::audit::Entity::CaseRecord => format!("{slot}: {what}"),
                    _ => what,
                }
            },
            reason: e.reason.clone(),
            changes: cases::labelled_changes(e, fields),
        })
        .collect())
}

/// A record's values as a page shows them: read (labels) or, where the user enters data, as a
/// form's inputs (raw codes, options, ticks); with the fields branching logic hides.
pub struct FieldView {
    pub values: Map<String, Value>,
    /// Whether this user enters data here (the study is editable).
    pub entering: bool,
    pub hidden: Vec<String>,
}

impl FieldView {
    pub fn shown(&self, f: &FieldDef) -> String {
        match self.values.get(&f.name) {
            Some(Value::Array(ticked)) if ticked.is_empty() => "none".into(),
            Some(v) => f.label_of(v),
            None => String::new(),
        }
    }
    pub fn raw(&self, f: &FieldDef) -> String {
        self.values.get(&f.name).map(dictionary::value_text).unwrap_or_default()
    }
    /// Codes and labels for a choice field's drop-down (empty: a text input).
    pub fn options(&self, f: &FieldDef) -> Vec<(String, String)> {
        match f.field_type.as_str() {
            "dropdown" | "radio" | "checkbox" => f.choices().into_iter().map(|c| (c.code, c.label)).collect(),
            "yesno" => vec![("1".into(), "Yes".into()), ("0".into(), "No".into())],
            "truefalse" => vec![("1".into(), "True".into()), ("0".into(), "False".into())],
            _ => Vec::new(),
        }
    }
    /// Whether a checkbox field's stored codes include `code`.
    pub fn ticked(&self, f: &FieldDef, code: &str) -> bool {
        self.values.get(&f.name).and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(code)))
    }
    /// What the page lets this user change: see [`cases::typed_edits_allowed`].
    pub fn editable(&self, f: &FieldDef) -> bool {
        self.entering && cases::typed_edits_allowed(f)
    }
    pub fn is_hidden(&self, f: &FieldDef) -> bool {
        self.hidden.contains(&f.name)
    }
    pub fn is_calc(&self, f: &FieldDef) -> bool {
        f.field_type == dictionary::FieldType::Calc
    }
}

impl CaseShowPage {
    /// Whether a form's verification stands (not cleared by a change since).
    pub fn is_verified(&self, v: &Option<crate::quality::sdv::Verification>) -> bool {
        v.as_ref().is_some_and(|v| v.status == crate::quality::sdv::VerificationStatus::Verified)
    }
    /// The open data quality findings on one field, as "rule: what was found".
    pub fn findings_on(&self, f: &FieldDef) -> Vec<String> {
        self.findings.iter().filter(|x| x.field == f.name).map(|x| format!("{}: {}", x.rule_code, x.detail)).collect()
    }
}

async fn case_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    display_id: String,
    errors: FieldErrors,
    reason: cases::ChangeReason,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let can_history = access.can(Permission::ViewAudit);
    let can_slides = access.can(Permission::ViewSlides);
    let can_manage = access.can(Permission::EnterData) && access.study.ensure_editable().is_ok();
    let a2 = access.clone();
    let (case, fields, history, slides, saved_current, findings, queries, verification) = state
        .db(move |c| {
            let case = cases::visible(c, &a2, &display_id)?;
            let fields = dictionary::load(c, sid)?;
            let history = if can_history {
                let events = cases::history(c, sid, &display_id)?;
                history_rows(c, events, &fields)?
            } else {
                Vec::new()
            };
            let slides = if can_slides { crate::slides::of_case(c, sid, &display_id)? } else { Vec::new() };
            let saved_current = if can_manage { crate::analyses::saved::current_count(c, sid)? } else { 0 };
            let open = crate::quality::FindingFilter {
                status: "open".into(),
                case: case.display_id.clone(),
                ..Default::default()
            };
            let findings =
                crate::quality::findings(c, sid, &a2.sites, &open, crate::db::paging::PageRequest::all())?.items;
            let waiting = crate::quality::queries::QueryFilter {
                status: "unresolved".into(),
                case: case.display_id.clone(),
                ..Default::default()
            };
            let queries =
                crate::quality::queries::list(c, sid, &a2.sites, &waiting, crate::db::paging::PageRequest::all())?
                    .items;
            let done = crate::quality::sdv::of_case(c, case.id)?;
            let design = crate::cases::events::load(c, sid)?;
            let others = crate::cases::records::of_case(c, case.id)?;
            // The fields branching logic hides, on the stored values.
            let hidden = {
                let on_base = fields.iter().filter(|f| f.holds_data() && design.on_base(&f.form_name));
                let cx = crate::cases::entry::Context {
                    design: &design,
                    records: &others,
                    now: crate::db::now(),
                    base: None,
                    this: None,
                };
                crate::cases::entry::evaluate(on_base, &mut case.values(), &cx).hidden
            };
            let grid = if design.is_empty() {
                None
            } else {
                let verified: Vec<(String, String)> = done
                    .iter()
                    .filter(|v| v.status == crate::quality::sdv::VerificationStatus::Verified)
                    .map(|v| (v.event.clone(), v.form.clone()))
                    .collect();
                let statuses = crate::cases::records::base_statuses(c, case.id)?;
                Some(crate::cases::records::Grid::new(&design, &fields, &case.data.0, &statuses, &others, &verified))
            };
            // The case page shows and edits the base record's forms.
            let fields = design.base_fields(fields);
            let verification = crate::quality::sdv::forms(&fields)
                .into_iter()
                .map(|f| {
                    let v = done.iter().find(|v| v.form == f && v.event.is_empty()).cloned();
                    (f, v)
                })
                .collect();
            Ok((case, fields, history, slides, saved_current, findings, queries, (verification, grid, hidden)))
        })
        .await?;
    let (verification, grid, hidden) = verification;
    let ctx = PageCtx::new(req, Some(user), format!("{} · {}", case.display_id, access.study.code), "studies");
    let page = CaseShowPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "cases"),
        view: FieldView { values: case.values(), entering: can_manage, hidden },
        anchors: cases::day_anchors(&case, &fields),
        case,
        fields: fields
            .into_iter()
            .filter(|f| f.holds_data())
            .skip(1)
            .filter(|f| f.action != dictionary::DeidAction::Drop)
            .collect(),
        history,
        slides,
        can_slides,
        can_manage,
        can_history,
        statuses: CaseStatus::ALL.iter().map(|s| s.as_str()).collect(),
        errors: errors.clone(),
        reasons: &cases::CHANGE_REASONS,
        reason,
        saved_current,
        findings,
        queries,
        can_raise: access.can(Permission::RaiseQueries) && access.study.ensure_editable().is_ok(),
        verification,
        can_verify: access.can(Permission::VerifySource) && access.study.ensure_editable().is_ok(),
        grid,
    };
    render_form(&ctx, &page, &errors)
}

pub async fn case_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (_, display) = path.into_inner();
    case_page(&req, &state, &user, access, display, FieldErrors::default(), cases::ChangeReason::default()).await
}

pub async fn case_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EnterData>,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (code, display) = path.into_inner();
    let (input, why) = cases::ChangeReason::split_form(form.into_inner());
    let actor = user.actor.clone();
    let (a2, d2, why2) = (access.clone(), display.clone(), why.clone());
    let scrubber = state.edit_scrubber.clone();
    let result = state
        .db(move |c| {
            let fields = dictionary::load(c, a2.study.id)?;
            let deid = EditDeid::new(scrubber);
            cases::edit_values(c, &actor, &a2, &d2, &fields, &input, &why2, &deid)
        })
        .await;
    match result {
        Ok(edited) => {
            let message = saved_message("Case saved.", &edited);
            Ok(redirect_with_flash(&format!("/studies/{code}/cases/{display}"), "ok", &message))
        }
        Err(Error::Invalid(errors)) => case_page(&req, &state, &user, access, display, errors, why).await,
        Err(e) => Err(e.into()),
    }
}

/// What a page says once values are saved: `saved`, and how many identifiers were redacted from
/// each free-text field (the case page's and a record page's).
pub fn saved_message(saved: &str, edited: &cases::Edited) -> String {
    let mut message = saved.to_string();
    if !edited.redacted.is_empty() {
        let parts: Vec<String> = edited.redacted.iter().map(|(f, n)| format!("{n} in {f}")).collect();
        message.push_str(&format!(" Identifiers redacted from free text: {}.", parts.join(", ")));
    }
    message
}

pub async fn case_status(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::EnterData>,
    path: web::Path<(String, String)>,
    form: web::Form<cases::StatusInput>,
) -> Result<HttpResponse, PageError> {
    let (code, display) = path.into_inner();
    let actor = user.actor.clone();
    let d2 = display.clone();
    let url = format!("/studies/{code}/cases/{display}");
    let scrubber = state.edit_scrubber.clone();
    let result = state
        .db(move |c| {
            let deid = EditDeid::new(scrubber);
            let fields = dictionary::load(c, access.study.id)?;
            cases::set_status(c, &actor, &access, &d2, &fields, &form, &deid)
        })
        .await;
    match result {
        Ok((c, redacted)) => {
            let mut message = format!("{} is now {}.", c.display_id, c.status);
            if let Some(d) = c.status_date {
                message.push_str(&format!(" Its date: {d}."));
            }
            if redacted > 0 {
                message.push_str(&format!(" Identifiers redacted from the reason: {redacted}."));
            }
            Ok(redirect_with_flash(&url, "ok", &message))
        }
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(e) => Err(e.into()),
    }
}
