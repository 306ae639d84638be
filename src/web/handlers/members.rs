//! A study's members: list, add with a role, remove with a reason, CSV.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::studies::reason_of;
use super::{ReasonForm, StudyNav};
use crate::auth::permissions::{Permission, Role, StudyAccess};
use crate::error::{Error, FieldErrors};
use crate::studies::members::{self, Member};
use crate::web::error::PageError;
use crate::web::extract::{perm, redirect_with_flash, CurrentUser, InStudy, PageCtx};
use crate::web::{csv_download, render_form, AppState};

#[derive(Template)]
#[template(path = "members/list.html")]
pub struct MembersListPage {
    pub ctx: PageCtx,
    pub nav: StudyNav,
    pub members: Vec<Member>,
    pub can_manage: bool,
    /// Members must sign in with two factors.
    pub require_mfa: bool,
    pub roles: Vec<&'static str>,
    /// The study's active sites, to scope site staff to.
    pub sites: Vec<String>,
    pub form: MemberForm,
    pub errors: FieldErrors,
}

#[derive(Debug, Clone, Default)]
pub struct MemberForm {
    pub username: String,
    pub role: String,
    /// Site staff's sites (the form's ticked `sites` boxes).
    pub sites: Vec<String>,
}

impl MemberForm {
    /// From the form's pairs: `sites` may come once per ticked site.
    fn from_pairs(pairs: Vec<(String, String)>) -> MemberForm {
        let mut form = MemberForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "username" => form.username = v,
                "role" => form.role = v,
                "sites" => form.sites.push(v),
                _ => {}
            }
        }
        form
    }
    pub fn ticked(&self, site: &str) -> bool {
        self.sites.iter().any(|s| s == site)
    }
}

async fn list_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    access: StudyAccess,
    form: MemberForm,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    // The page needs more than the right that the form's handler checked.
    access.require(Permission::ViewMembers)?;
    let sid = access.study.id;
    let (list, sites) = state
        .db(move |c| {
            let sites = crate::studies::sites::list(c, sid, false)?.into_iter().map(|s| s.code).collect();
            Ok((members::list(c, sid, true)?, sites))
        })
        .await?;
    let roles = Role::ALL.iter().filter(|r| **r != Role::Manager || access.is_admin).map(|r| r.as_str()).collect();
    let ctx = PageCtx::new(req, Some(user), format!("Members · {}", access.study.code), "studies");
    let page = MembersListPage {
        ctx: ctx.clone(),
        nav: StudyNav::new(&access, "members"),
        members: list,
        can_manage: access.can(Permission::ManageMembers),
        require_mfa: access.study.require_mfa,
        roles,
        sites,
        form,
        errors: errors.clone(),
    };
    render_form(&ctx, &page, &errors)
}

pub async fn members_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ViewMembers>,
) -> Result<HttpResponse, PageError> {
    list_page(&req, &state, &user, access, MemberForm::default(), FieldErrors::default()).await
}

pub async fn members_csv(
    state: web::Data<AppState>,
    InStudy { access, .. }: InStudy<perm::ViewMembers>,
) -> Result<HttpResponse, PageError> {
    let sid = access.study.id;
    let list = state.db(move |c| members::list(c, sid, true)).await?;
    csv_download(&format!("{}-members.csv", access.study.code), &list)
}

pub async fn member_add(
    req: HttpRequest,
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = MemberForm::from_pairs(form.into_inner());
    let actor = user.actor.clone();
    let f2 = form.clone();
    let (code, a2) = (access.study.code.clone(), access.clone());
    match state.db(move |c| members::add_to_sites(c, &actor, &a2, &f2.username, &f2.role, &f2.sites)).await {
        Ok(m) => Ok(redirect_with_flash(
            &format!("/studies/{code}/members"),
            "ok",
            &format!("{} added as {}.", m.username, m.role_described()),
        )),
        Err(Error::Invalid(errors)) => list_page(&req, &state, &user, access, form, errors).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn member_remove(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::View>,
    path: web::Path<(String, i32)>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let (code, id) = path.into_inner();
    let actor = user.actor.clone();
    let reason = reason_of(form);
    let url = format!("/studies/{code}/members");
    match state.db(move |c| members::remove(c, &actor, &access, id, &reason)).await {
        Ok(()) => Ok(redirect_with_flash(&url, "ok", "Member removed.")),
        Err(Error::Invalid(e)) => Ok(redirect_with_flash(&url, "error", &e.to_string())),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct MfaForm {
    /// `on` or `off`.
    #[serde(default)]
    pub require_mfa: String,
}

/// Requires two-factor sign-in of the members, or no longer.
pub async fn require_mfa(
    state: web::Data<AppState>,
    InStudy { user, access, .. }: InStudy<perm::ManageMembers>,
    form: web::Form<MfaForm>,
) -> Result<HttpResponse, PageError> {
    let on = match form.require_mfa.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(Error::invalid("require_mfa", "on or off").into()),
    };
    let (actor, code) = (user.actor.clone(), access.study.code.clone());
    state.db(move |c| crate::studies::set_require_mfa(c, &actor, &access, on)).await?;
    let message = if on {
        "Members now reach this study only when they sign in with two factors."
    } else {
        "Members no longer need two-factor sign-in for this study."
    };
    Ok(redirect_with_flash(&format!("/studies/{code}/members"), "ok", message))
}
