//! Queries: the list (by status, site, subject and field; counts and ages by site; CSV), one
//! query's thread with its steps (answer with a corrected value, close, reopen), and opening a
//! query from a case page or a data quality finding. Annotators are blinded to all of it (404).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::StudyNav;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::cases::deid::EditDeid;
use crate::cases::dictionary::{self, FieldDef};
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::quality::queries::{self, Message, NewQuery, Query, QueryFilter, QueryStatus, StepInput};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{render, render_form, AppState, Pager};

#[derive(Template)]
#[template(path = "queries/list.html")]
pub struct QueriesPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub queries: Vec<Query>,
    pub total: i64,
    pub filter: QueryFilter,
    pub pager: Pager,
    pub csv_query: String,
    pub by_site: Vec<queries::SiteQueries>,
    pub sites: Vec<String>,
    pub now: chrono::NaiveDateTime,
}

fn filter_params(f: &QueryFilter) -> Vec<(&'static str, String)> {
    vec![("status", f.status.clone()), ("site", f.site.clone()), ("case", f.case.clone()), ("field", f.field.clone())]
}

pub async fn queries_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<QueryFilter>,
) -> Result<HttpResponse, PageError> {
    let mut filter = q.into_inner();
    if filter.status.is_empty() {
        filter.status = "unresolved".into();
    }
    let sid = access.study.id;
    let f2 = filter.clone();
    let scope = access.sites.clone();
    let (page, by_site, sites) = state
        .db(move |c| {
            Ok((
                queries::list(c, sid, &scope, &f2, PageRequest::new(f2.page, None))?,
                queries::by_site(c, sid, &scope)?,
                crate::studies::sites::codes_in(c, sid, &scope)?,
            ))
        })
        .await?;
    let base = format!("/studies/{}/queries", access.study.code);
    let (pager, csv_query) = Pager::with_csv_query(&page, &base, &filter_params(&filter));
    let ctx = PageCtx::new(&req, Some(&user), format!("Queries · {}", access.study.code), "studies");
    render(
        &ctx,
        &QueriesPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "queries"),
            total: page.total,
            queries: page.items,
            filter,
            pager,
            csv_query,
            by_site,
            sites,
            now: crate::db::now(),
        },
    )
}

pub async fn queries_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCases>,
    q: web::Query<QueryFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = q.into_inner();
    let sid = access.study.id;
    let scope = access.sites.clone();
    let bytes = state
        .db(move |c| {
            let all = queries::list(c, sid, &scope, &filter, PageRequest::all())?;
            let mut out = Vec::new();
            crate::export::write_csv(&mut out, &all.items)?;
            Ok(out)
        })
        .await?;
    Ok(crate::web::csv_response(&format!("{}-queries.csv", access.study.code), bytes))
}

/// Opens a query (from a case page or a finding); back to the case page when refused.
pub async fn query_open(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::RaiseQueries>,
    form: web::Form<NewQuery>,
) -> Result<HttpResponse, PageError> {
    let input = form.into_inner();
    let code = access.study.code.clone();
    let back = format!("/studies/{code}/cases/{}", input.case.trim());
    let (actor, scrubber) = (user.actor.clone(), state.edit_scrubber.clone());
    match state.db(move |c| queries::open(c, &actor, &access, &input, &EditDeid::new(scrubber))).await {
        Ok(q) => Ok(redirect_with_flash(
            &format!("/studies/{code}/queries/{}", q.id),
            "ok",
            &format!("Query {} opened on {} {}.", q.id, q.case, q.field),
        )),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&back, "error", &format!("No query was opened: {e}"))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "queries/show.html")]
pub struct QueryPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub query: Query,
    pub messages: Vec<Message>,
    pub field: Option<FieldDef>,
    pub current: String,
    pub can_answer: bool,
    pub can_raise: bool,
    pub errors: FieldErrors,
    pub input: StepInput,
    pub reasons: &'static [&'static str],
    pub now: chrono::NaiveDateTime,
}

impl QueryPage {
    /// Codes and labels for a choice field's answer (empty: a text input).
    pub fn options(&self) -> Vec<(String, String)> {
        match self.field.as_ref().map(|f| f.field_type.as_str()) {
            Some("dropdown" | "radio") => {
                self.field.iter().flat_map(|f| f.choices()).map(|c| (c.code, c.label)).collect()
            }
            Some("yesno") => vec![("1".into(), "Yes".into()), ("0".into(), "No".into())],
            Some("truefalse") => vec![("1".into(), "True".into()), ("0".into(), "False".into())],
            _ => Vec::new(),
        }
    }
    /// Whether the answer may carry a new value: one the case page could change by typing.
    pub fn value_editable(&self) -> bool {
        self.field.as_ref().is_some_and(|f| crate::cases::typed_edits_allowed(f) && f.field_type.as_str() != "checkbox")
    }
    pub fn label(&self) -> String {
        self.field.as_ref().map(|f| f.label.clone()).unwrap_or_else(|| self.query.field.clone())
    }
}

async fn query_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    id: i32,
    errors: FieldErrors,
    input: StepInput,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let scope = access.sites.clone();
    let (query, messages, field, current) = state
        .db(move |c| {
            let q = queries::get(c, sid, &scope, id)?;
            let messages = queries::messages(c, id)?;
            let field = dictionary::load(c, sid)?.into_iter().find(|f| f.name == q.field);
            let case = crate::cases::get(c, sid, &q.case)?;
            let current = match (&field, case.value(&q.field)) {
                (Some(f), Some(v)) => f.label_of(v),
                _ => String::new(),
            };
            Ok((q, messages, field, current))
        })
        .await?;
    let editable = access.study.ensure_editable().is_ok();
    let ctx = PageCtx::new(req, Some(user), format!("Query {id} · {}", access.study.code), "studies");
    let page = QueryPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "queries"),
        can_answer: editable && access.can(Permission::AnswerQueries) && query.status == QueryStatus::Open,
        can_raise: editable && access.can(Permission::RaiseQueries),
        query,
        messages,
        field,
        current,
        errors: errors.clone(),
        input,
        reasons: &crate::cases::CHANGE_REASONS,
        now: crate::db::now(),
    };
    render_form(&ctx, &page, &errors)
}

pub async fn query_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    query_page(&req, &state, &user, access, id, FieldErrors::default(), StepInput::default()).await
}

/// A step of a query's thread: `answer`, `close` or `reopen`.
pub async fn query_step(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCases>,
    path: web::Path<(String, i32, String)>,
    form: web::Form<StepInput>,
) -> Result<HttpResponse, PageError> {
    let (code, id, step) = path.into_inner();
    let input = form.into_inner();
    let (actor, scrubber, a2, i2) = (user.actor.clone(), state.edit_scrubber.clone(), access.clone(), input.clone());
    let result = state
        .db(move |c| {
            let deid = EditDeid::new(scrubber);
            match step.as_str() {
                "answer" => queries::answer(c, &actor, &a2, id, &i2, &deid),
                "close" => queries::close(c, &actor, &a2, id, &i2, &deid),
                "reopen" => queries::reopen(c, &actor, &a2, id, &i2, &deid),
                _ => Err(Error::NotFound),
            }
        })
        .await;
    let url = format!("/studies/{code}/queries/{id}");
    match result {
        Ok(q) => Ok(redirect_with_flash(&url, "ok", &format!("Query {id} is now {}.", q.status))),
        Err(Error::Invalid(errors)) => query_page(&req, &state, &user, access, id, errors, input).await,
        Err(Error::Conflict(m)) => Ok(redirect_with_flash(&url, "error", &m)),
        Err(e) => Err(e.into()),
    }
}
