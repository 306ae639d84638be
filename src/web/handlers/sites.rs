//! A study's sites: list, add, edit, retire, CSV.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::studies::reason_of;
use super::{ReasonForm, StudyNav};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::error::{Error, FieldErrors};
use crate::studies::sites::{self, Site, SiteInput};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{csv_download, render, render_form, AppState};

#[derive(Template)]
#[template(path = "sites/list.html")]
pub struct SitesListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub sites: Vec<Site>,
    pub can_manage: bool,
    pub form: SiteInput,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "sites/edit.html")]
pub struct SiteEditPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub site: Site,
    pub form: SiteInput,
    pub errors: FieldErrors,
}

async fn list_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    form: SiteInput,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    // The page needs more than the right that the form's handler checked.
    access.require(Permission::ViewSites)?;
    let sid = access.study.id;
    let list = state.db(move |c| sites::list(c, sid, true)).await?;
    let ctx = PageCtx::new(req, Some(user), format!("Sites · {}", access.study.code), "studies");
    let page = SitesListPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "sites"),
        sites: list,
        can_manage: access.can(Permission::ManageSites) && access.study.ensure_editable().is_ok(),
        form,
        errors: errors.clone(),
    };
    render_form(&ctx, &page, &errors)
}

pub async fn sites_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewSites>,
) -> Result<HttpResponse, PageError> {
    list_page(&req, &state, &user, access, SiteInput::default(), FieldErrors::default()).await
}

pub async fn sites_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewSites>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let list = state.db(move |c| sites::list(c, sid, true)).await?;
    csv_download(&format!("{}-sites.csv", access.study.code), &list)
}

pub async fn site_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    form: web::Form<SiteInput>,
) -> Result<HttpResponse, PageError> {
    let input = form.into_inner();
    let actor = user.actor.clone();
    let i2 = input.clone();
    let (code, a2) = (access.study.code.clone(), access.clone());
    match state.db(move |c| sites::add(c, &actor, &a2, &i2)).await {
        Ok(s) => Ok(redirect_with_flash(&format!("/studies/{code}/sites"), "ok", &format!("Site {} added.", s.code))),
        Err(Error::Invalid(errors)) => list_page(&req, &state, &user, access, input, errors).await,
        Err(e) => Err(e.into()),
    }
}

fn input_of(s: &Site) -> SiteInput {
    SiteInput {
        code: s.code.clone(),
        name: s.name.clone(),
        country: s.country.clone(),
        irb_reference: s.irb_reference.clone(),
        irb_approval_date: s.approval_date_text(),
    }
}

pub async fn site_edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, PageError> {
    let (_, id) = path.into_inner();
    let sid = access.study.id;
    let site = state.db(move |c| sites::get(c, sid, id)).await?;
    access.require(Permission::ManageSites)?;
    access.study.ensure_editable()?;
    let ctx = PageCtx::new(&req, Some(&user), format!("Edit site {}", site.code), "studies");
    let form = input_of(&site);
    render(
        &ctx,
        &SiteEditPage {
            ctx: ctx.clone(),
            nav: StudyNav::new(&access, "sites"),
            site,
            form,
            errors: FieldErrors::default(),
        },
    )
}

pub async fn site_update(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<SiteInput>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let input = form.into_inner();
    let actor = user.actor.clone();
    let (a2, i2) = (access.clone(), input.clone());
    match state.db(move |c| sites::update(c, &actor, &a2, id, &i2)).await {
        Ok(s) => Ok(redirect_with_flash(&format!("/studies/{code}/sites"), "ok", &format!("Site {} saved.", s.code))),
        Err(Error::Invalid(errors)) => {
            let sid = access.study.id;
            let site = state.db(move |c| sites::get(c, sid, id)).await?;
            let ctx = PageCtx::new(&req, Some(&user), format!("Edit site {}", site.code), "studies");
            let mut resp = render(
                &ctx,
                &SiteEditPage { ctx: ctx.clone(), nav: StudyNav::new(&access, "sites"), site, form: input, errors },
            )?;
            *resp.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn site_retire(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let actor = user.actor.clone();
    let reason = reason_of(form);
    let url = format!("/studies/{code}/sites");
    match state.db(move |c| sites::retire(c, &actor, &access, id, &reason)).await {
        Ok(s) => Ok(redirect_with_flash(&url, "ok", &format!("Site {} retired.", s.code))),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(e) => Err(e.into()),
    }
}
