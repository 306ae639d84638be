//! Reading-study pages for managers, statisticians and monitors: the annotation schema, the
//! campaign list, a new campaign (or its re-read), a campaign's dashboard (progress, and after
//! completion the agreement view), its reads as CSV, and the adjudicator's page.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{ActionForm, StudyNav};
use crate::annotations::adjudication::{self, Disagreement, FieldAgreement};
use crate::annotations::campaigns::{self, Campaign, CampaignInput, Progress};
use crate::annotations::reads;
use crate::annotations::schema::{self, Definition, SchemaVersion};
use crate::auth::permissions::{Permission, Role, StudyAccess};
use crate::error::{Error, FieldErrors};
use crate::studies::members;
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{flash_outcome, render, render_form, AppState};

#[derive(Template)]
#[template(path = "annotations/schema.html")]
pub struct SchemaPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub current: Option<SchemaVersion>,
    pub definition: Definition,
    pub versions: Vec<SchemaVersion>,
    pub text: String,
    pub reason: String,
    pub started: bool,
    pub can_manage: bool,
    pub errors: FieldErrors,
}

async fn schema_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: &StudyAccess,
    form: Option<SchemaForm>,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let (sid, code) = (access.study.id, &access.study.code);
    let (versions, started) =
        state.db(move |c| Ok((schema::versions(c, sid)?, schema::reading_started(c, sid)?))).await?;
    let current = versions.first().cloned();
    let definition = current.as_ref().map(SchemaVersion::definition).unwrap_or_default();
    let (text, reason) = match form {
        Some(f) => (f.text, f.reason),
        None if current.is_some() => (definition.to_text(), String::new()),
        None => (schema::DEFAULT_TEXT.to_string(), String::new()),
    };
    let ctx = PageCtx::new(req, Some(user), format!("Annotation schema · {code}"), "studies");
    let page = SchemaPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(access, "reading"),
        current,
        definition,
        versions,
        text,
        reason,
        started,
        can_manage: access.can(Permission::ManageCampaigns) && access.study.ensure_editable().is_ok(),
        errors: errors.clone(),
    };
    render_form(&ctx, &page, &errors)
}

pub async fn schema_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCampaigns>,
) -> Result<HttpResponse, PageError> {
    schema_page(&req, &state, &user, &access, None, FieldErrors::default()).await
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SchemaForm {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn schema_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCampaigns>,
    form: web::Form<SchemaForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let (actor, a2, f2) = (user.actor.clone(), access.clone(), form.clone());
    let saved = state
        .db(move |c| {
            let def = Definition::parse_text(&f2.text)?;
            schema::save(c, &actor, &a2, &def, &f2.reason)
        })
        .await;
    match saved {
        Ok(v) => Ok(redirect_with_flash(
            &format!("/studies/{}/annotations/schema", access.study.code),
            "ok",
            &format!("Annotation schema version {} saved.", v.version),
        )),
        Err(Error::Invalid(errors)) => schema_page(&req, &state, &user, &access, Some(form), errors).await,
        Err(Error::Conflict(m)) => {
            schema_page(&req, &state, &user, &access, Some(form), FieldErrors::single("schema", m)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// One row of the campaign list.
pub struct CampaignRow {
    pub campaign: Campaign,
    pub progress: Progress,
    pub parent: Option<String>,
}

#[derive(Template)]
#[template(path = "campaigns/list.html")]
pub struct CampaignsListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub rows: Vec<CampaignRow>,
    pub has_schema: bool,
    pub can_manage: bool,
}

pub async fn campaigns_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
) -> Result<HttpResponse, PageError> {
    if access.role == Some(Role::Annotator) && !access.can(Permission::ViewCampaigns) {
        // Annotators work from their queue; the campaign overview is not theirs.
        return Ok(HttpResponse::SeeOther()
            .insert_header(("Location", format!("/studies/{}/reading", access.study.code)))
            .finish());
    }
    access.require(Permission::ViewCampaigns)?;
    let sid = access.study.id;
    let (rows, has_schema) = state
        .db(move |c| {
            let list = campaigns::list(c, sid)?;
            let mut rows = Vec::new();
            for campaign in &list {
                let (_, progress) = campaigns::progress(c, campaign.id)?;
                let parent = campaign.parent_id.and_then(|p| list.iter().find(|x| x.id == p)).map(|p| p.name.clone());
                rows.push(CampaignRow { campaign: campaign.clone(), progress, parent });
            }
            Ok((rows, schema::current(c, sid)?.is_some()))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Reading campaigns · {}", access.study.code), "studies");
    render(
        &ctx,
        &CampaignsListPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "reading"),
            rows,
            has_schema,
            can_manage: access.can(Permission::ManageCampaigns) && access.study.ensure_editable().is_ok(),
        },
    )
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CampaignForm {
    #[serde(default)]
    pub name: String,
    /// Reader usernames, one per checkbox (`readers=a&readers=b`) — parsed from the raw query.
    #[serde(skip)]
    pub readers: Vec<String>,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub stain: String,
    #[serde(default)]
    pub blind_case_data: Option<String>,
    /// Ticked to show readers outcome fields anyway.
    #[serde(default)]
    pub confirm_outcomes: Option<String>,
    /// `analysis` (default) or `training`.
    #[serde(default)]
    pub purpose: String,
    #[serde(skip)]
    pub case_fields: Vec<String>,
    #[serde(default)]
    pub seed: String,
    /// `field=tolerance, …`
    #[serde(default)]
    pub tolerances: String,
    #[serde(default)]
    pub adjudicator: String,
    #[serde(default)]
    pub parent: String,
    /// Empty: unaided; else the id of the biomarker run AI-assisted readers see.
    #[serde(default)]
    pub ai_run: String,
    #[serde(default)]
    pub washout_days: String,
}

impl CampaignForm {
    /// Repeated fields (readers, case_fields) come from the raw body; serde_urlencoded keeps one.
    fn parse(body: &[u8]) -> Result<CampaignForm, Error> {
        let mut form: CampaignForm =
            serde_urlencoded::from_bytes(body).map_err(|e| Error::invalid("form", e.to_string()))?;
        for (k, v) in url_pairs(body) {
            match k.as_str() {
                "readers" => form.readers.push(v),
                "case_fields" => form.case_fields.push(v),
                _ => {}
            }
        }
        Ok(form)
    }

    fn to_input(&self) -> Result<CampaignInput, Error> {
        let mut errors = FieldErrors::default();
        let seed = match self.seed.trim() {
            "" => None,
            s => match s.parse::<i64>() {
                // Below 2^53, so the seed reads the same in JSON, spreadsheets and JavaScript.
                Ok(v) if (0..1 << 53).contains(&v) => Some(v),
                _ => {
                    errors.add("seed", "the seed is a whole number from 0 to 2^53 − 1, or empty for a random one");
                    None
                }
            },
        };
        let mut tolerances = BTreeMap::new();
        for part in self.tolerances.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=').map(|(f, t)| (f.trim(), t.trim().parse::<f64>())) {
                Some((f, Ok(t))) => {
                    tolerances.insert(f.to_string(), t);
                }
                _ => errors.add("tolerances", format!("{part:?} is not field=number")),
            }
        }
        let parent_id = match self.parent.trim() {
            "" => None,
            p => p.parse::<i32>().ok().or_else(|| {
                errors.add("parent", "choose the first-read campaign");
                None
            }),
        };
        let washout_days = match self.washout_days.trim() {
            "" => 0,
            w => w.parse::<i32>().unwrap_or_else(|_| {
                errors.add("washout_days", "the washout is a number of days");
                0
            }),
        };
        let ai_run_id = match self.ai_run.trim() {
            "" => None,
            r => r.parse::<i32>().ok().or_else(|| {
                errors.add("ai_run", "choose a biomarker run of this study");
                None
            }),
        };
        let training = match self.purpose.trim() {
            "" | "analysis" => false,
            "training" => true,
            _ => {
                errors.add("purpose", "the purpose is analysis or training");
                false
            }
        };
        errors.into_result()?;
        Ok(CampaignInput {
            name: self.name.clone(),
            readers: self.readers.clone(),
            site: self.site.clone(),
            stain: self.stain.clone(),
            blind_case_data: self.blind_case_data.is_some(),
            case_fields: self.case_fields.clone(),
            seed,
            tolerances,
            adjudicator: self.adjudicator.clone(),
            parent_id,
            washout_days,
            ai_run_id,
            confirm_outcomes: self.confirm_outcomes.is_some(),
            training,
        })
    }
}

fn url_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "campaigns/new.html")]
pub struct CampaignNewPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub form: CampaignForm,
    pub errors: FieldErrors,
    pub annotators: Vec<members::Member>,
    pub adjudicators: Vec<members::Member>,
    pub sites: Vec<crate::studies::sites::Site>,
    pub stains: Vec<String>,
    pub dictionary: Vec<String>,
    pub first_reads: Vec<Campaign>,
    pub eligible: usize,
    pub numeric_fields: Vec<String>,
    /// The study's biomarker runs, for AI-assisted campaigns.
    pub runs: Vec<crate::biomarker::runs::Run>,
}

impl CampaignNewPage {
    pub fn reader_checked(&self, username: &str) -> bool {
        self.form.readers.iter().any(|r| r == username)
    }
    pub fn field_checked(&self, name: &str) -> bool {
        self.form.case_fields.iter().any(|r| r == name)
    }
}

async fn new_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: &StudyAccess,
    form: CampaignForm,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let data = state
        .db(move |c| {
            let roster = members::list(c, sid, false)?;
            let def = schema::require_current(c, sid)?.definition();
            Ok((
                roster,
                crate::studies::sites::list(c, sid, false)?,
                crate::slides::stains(c, sid)?,
                campaigns::showable_case_fields(c, sid)?,
                campaigns::list(c, sid)?.into_iter().filter(|c| c.parent_id.is_none()).collect::<Vec<_>>(),
                crate::slides::enrolled_available(c, sid, "", "")?.len(),
                def.fields.iter().filter(|f| f.is_numeric()).map(|f| f.name.clone()).collect::<Vec<_>>(),
                crate::biomarker::runs::list(c, sid)?,
            ))
        })
        .await?;
    let (roster, sites, stains, dictionary, first_reads, eligible, numeric_fields, runs) = data;
    let ctx = PageCtx::new(req, Some(user), format!("New reading campaign · {}", access.study.code), "studies");
    let page = CampaignNewPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(access, "reading"),
        form,
        errors: errors.clone(),
        annotators: roster.iter().filter(|m| m.role == Role::Annotator).cloned().collect(),
        adjudicators: roster.iter().filter(|m| m.role == Role::Annotator).cloned().collect(),
        sites,
        stains,
        dictionary,
        first_reads,
        eligible,
        numeric_fields,
        runs,
    };
    render_form(&ctx, &page, &errors)
}

pub async fn campaign_new(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCampaigns>,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let form = CampaignForm {
        blind_case_data: Some("on".into()),
        parent: q.get("reread").cloned().unwrap_or_default(),
        washout_days: if q.contains_key("reread") { "14".into() } else { String::new() },
        ..Default::default()
    };
    new_page(&req, &state, &user, &access, form, FieldErrors::default()).await
}

pub async fn campaign_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCampaigns>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = CampaignForm::parse(&body)?;
    let (actor, a2, f2) = (user.actor.clone(), access.clone(), form.clone());
    match state.db(move |c| campaigns::create(c, &actor, &a2, &f2.to_input()?)).await {
        Ok(c) => Ok(redirect_with_flash(
            &format!("/studies/{}/campaigns/{}", access.study.code, c.id),
            "ok",
            &format!(
                "Campaign {} created: every reader has their slides in their own order (seed {}).",
                c.name, c.seed
            ),
        )),
        Err(Error::Invalid(errors)) => new_page(&req, &state, &user, &access, form, errors).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "campaigns/show.html")]
pub struct CampaignShowPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub campaign: Campaign,
    pub parent: Option<Campaign>,
    pub adjudicator: Option<String>,
    pub readers: Vec<Progress>,
    pub overall: Progress,
    pub complete: bool,
    /// Shown to managers and statisticians once every read is submitted.
    pub agreement: Option<Vec<FieldAgreement>>,
    pub disagreements: Vec<Disagreement>,
    /// Every read (without values), for roles that review reads.
    pub reads: Vec<reads::Read>,
    pub can_manage: bool,
    pub can_reads: bool,
}

impl CampaignShowPage {
    /// Slides still read in the campaign, for the withdraw form.
    pub fn slide_labels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.reads.iter().filter(|r| !r.is_withdrawn()).map(|r| r.slide.clone()).collect();
        l.dedup();
        l
    }
    pub fn open_disagreements(&self) -> usize {
        self.disagreements.iter().filter(|d| d.adjudicated.is_none()).count()
    }
}

pub async fn campaign_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewCampaigns>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let can_agreement = access.can(Permission::ViewAgreement);
    let can_reads = access.can(Permission::ViewReads);
    let (campaign, parent, adjudicator, (readers, overall), agreement, (disagreements, reads)) = state
        .db(move |c| {
            let campaign = campaigns::get(c, sid, id)?;
            let parent = campaign.parent_id.map(|p| campaigns::get(c, sid, p)).transpose()?;
            let progress = campaigns::progress(c, id)?;
            let complete = progress.1.total > 0 && progress.1.submitted == progress.1.total;
            let def = schema::current(c, sid)?.map(|s| s.definition()).unwrap_or_default();
            let agreement =
                if complete && can_agreement { Some(adjudication::agreement(c, sid, &campaign, &def)?) } else { None };
            let reviewed = if can_reads {
                (adjudication::disagreements(c, sid, &campaign, &def)?, reads::of_campaign(c, sid, id)?)
            } else {
                (Vec::new(), Vec::new())
            };
            Ok((campaign.clone(), parent, campaigns::adjudicator_name(c, &campaign)?, progress, agreement, reviewed))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("{} · {code}", campaign.name), "studies");
    render(
        &ctx,
        &CampaignShowPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "reading"),
            complete: overall.total > 0 && overall.submitted == overall.total,
            campaign,
            parent,
            adjudicator,
            readers,
            overall,
            agreement,
            disagreements,
            reads,
            can_manage: access.can(Permission::ManageCampaigns) && access.study.ensure_editable().is_ok(),
            can_reads,
        },
    )
}

/// Every read of the campaign with its values: the CSV a statistician takes to R.
pub async fn campaign_reads_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewReads>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let (campaign, def, list) = state
        .db(move |c| {
            let campaign = campaigns::get(c, sid, id)?;
            let def = schema::current(c, sid)?.map(|s| s.definition()).unwrap_or_default();
            Ok((campaign, def, reads::of_campaign(c, sid, id)?))
        })
        .await?;
    let (header, rows) = crate::annotations::export::csv_rows(&def, &list);
    crate::web::csv_rows_download(&format!("{code}-{}-reads.csv", campaign.id), header, rows)
}

/// The campaign's reference per slide (adjudicated where the readers disagreed): the table the
/// statistics compare the AI with.
pub async fn campaign_reference_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewReads>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let (fields, reference) = state.db(move |c| adjudication::reference_table(c, sid, id)).await?;
    let header = std::iter::once("slide".to_string()).chain(fields.iter().cloned()).collect();
    let rows = reference
        .into_iter()
        .map(|(slide, values)| {
            std::iter::once(slide).chain(fields.iter().map(|f| values.get(f).cloned().unwrap_or_default())).collect()
        })
        .collect();
    crate::web::csv_rows_download(&format!("{code}-{id}-reference.csv"), header, rows)
}

/// Progress as CSV (per reader).
pub async fn campaign_progress_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewCampaigns>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let sid = access.study.id;
    let (readers, _) = state
        .db(move |c| {
            campaigns::get(c, sid, id)?;
            campaigns::progress(c, id)
        })
        .await?;
    let rows = readers
        .iter()
        .map(|p| {
            vec![
                p.reader.clone(),
                p.full_name.clone(),
                p.total.to_string(),
                p.submitted.to_string(),
                p.draft.to_string(),
                p.left().to_string(),
                p.last_activity.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    crate::web::csv_rows_download(
        &format!("{code}-{id}-progress.csv"),
        ["reader", "full_name", "assigned", "submitted", "draft", "left", "last_activity"].map(String::from).to_vec(),
        rows,
    )
}

pub async fn campaign_status(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCampaigns>,
    path: web::Path<(String, i32)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let url = format!("/studies/{code}/campaigns/{id}");
    let form = form.into_inner();
    let open = form.action == "reopen";
    let actor = user.actor.clone();
    let result = state.db(move |c| campaigns::set_status(c, &actor, &access, id, open, &form.reason.reason)).await;
    flash_outcome(&url, result, "", |c| format!("Campaign {} is {}.", c.name, c.status))
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct WithdrawForm {
    #[serde(default)]
    pub reader: String,
    #[serde(default)]
    pub slide: String,
    #[serde(default)]
    pub reason: String,
}

/// Takes a reader or a slide out of a running campaign, with a reason.
pub async fn campaign_withdraw(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageCampaigns>,
    path: web::Path<(String, i32)>,
    form: web::Form<WithdrawForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let url = format!("/studies/{code}/campaigns/{id}");
    let f = form.into_inner();
    let what = match (f.reader.trim(), f.slide.trim()) {
        (r, "") if !r.is_empty() => campaigns::Withdrawal::Reader(r.to_string()),
        ("", s) if !s.is_empty() => campaigns::Withdrawal::Slide(s.to_string()),
        _ => return Ok(redirect_with_flash(&url, "error", "Choose a reader or a slide to withdraw.")),
    };
    let actor = user.actor.clone();
    let result = state.db(move |c| campaigns::withdraw(c, &actor, &access, id, &what, &f.reason)).await;
    flash_outcome(&url, result, "Not withdrawn: ", |n| format!("{n} read{} withdrawn.", if n == 1 { "" } else { "s" }))
}

#[derive(Template)]
#[template(path = "campaigns/adjudication.html")]
pub struct AdjudicationPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub campaign: Campaign,
    pub disagreements: Vec<Disagreement>,
    pub definition: Definition,
    pub can_adjudicate: bool,
    pub can_campaign: bool,
}

impl AdjudicationPage {
    pub fn choices(&self, field: &str) -> Vec<String> {
        self.definition.field(field).map(|f| f.choices()).unwrap_or_default()
    }
}

/// The adjudicator's page for one campaign (also readable by roles that review reads).
pub async fn adjudication_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let sid = access.study.id;
    let uid = user.actor.user_id;
    let checked = access.clone();
    let (campaign, def, disagreements) = state
        .db(move |c| {
            let campaign = campaigns::get(c, sid, id)?;
            if uid.is_none() || campaign.adjudicator_id != uid {
                checked.require(Permission::ViewReads)?;
            }
            let def = schema::require_current(c, sid)?.definition();
            let mut ds = adjudication::disagreements(c, sid, &campaign, &def)?;
            // The adjudicator judges the values, not the people: readers are "Reader A", "B", …
            // and, unless their role reviews reads, slides are numbered (a label carries the case).
            if uid.is_some() && campaign.adjudicator_id == uid {
                let blind = !checked.can(Permission::ViewReads);
                for (n, d) in ds.iter_mut().enumerate() {
                    for (i, (reader, _)) in d.values.iter_mut().enumerate() {
                        *reader = format!("Reader {}", (b'A' + (i % 26) as u8) as char);
                    }
                    if blind {
                        d.slide = format!("Slide {}", n + 1);
                    }
                }
            }
            Ok((campaign, def, ds))
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Adjudication · {}", campaign.name), "studies");
    render(
        &ctx,
        &AdjudicationPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "reading"),
            can_adjudicate: uid.is_some() && campaign.adjudicator_id == uid && access.study.ensure_editable().is_ok(),
            can_campaign: access.can(Permission::ViewCampaigns),
            campaign,
            disagreements,
            definition: def,
        },
    )
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AdjudicateForm {
    /// The slide by its label, or (what the page posts) by one of its reads.
    #[serde(default)]
    pub slide: String,
    #[serde(default)]
    pub read: Option<i32>,
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub note: String,
}

pub async fn adjudicate(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<AdjudicateForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let url = format!("/studies/{code}/campaigns/{id}/adjudication");
    let f = form.into_inner();
    let actor = user.actor.clone();
    let field = f.field.clone();
    let result = state
        .db(move |c| {
            let slide = match f.read {
                Some(read) => adjudication::SlideRef::Read(read),
                None => adjudication::SlideRef::Label(&f.slide),
            };
            adjudication::adjudicate(c, &actor, &access, id, slide, &f.field, &f.value, &f.note)
        })
        .await;
    flash_outcome(&url, result, "", |()| format!("{field} adjudicated."))
}
