//! Administration of user accounts (admins only: others get 403).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::account::SecretPage;
use crate::auth::passwords;
use crate::auth::users::{self, AccountAction, NewUserInput, User};
use crate::db::paging::PageRequest;
use crate::error::{Error, FieldErrors};
use crate::web::error::PageError;
use crate::web::extract::{redirect_with_flash, CurrentUser, PageCtx};
use crate::web::{csv_download, render, render_form, AppState, Pager};

#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct UsersListPage {
    pub ctx: PageCtx,
    pub users: Vec<User>,
    pub q: String,
    pub pager: Pager,
    pub now: chrono::NaiveDateTime,
}

#[derive(Template)]
#[template(path = "admin/user_new.html")]
pub struct UserNewPage {
    pub ctx: PageCtx,
    pub form: NewUserForm,
    pub errors: FieldErrors,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    pub q: String,
    pub page: Option<i64>,
}

pub async fn users_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    q: web::Query<UsersQuery>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let q = q.into_inner();
    let search = q.q.clone();
    let page = state.db(move |c| users::list(c, &search, PageRequest::new(q.page, None))).await?;
    let pager = Pager::new(&page, "/admin/users", &[("q", &q.q)]);
    let ctx = PageCtx::new(&req, Some(&user), "Users", "users");
    render(&ctx, &UsersListPage { ctx: ctx.clone(), users: page.items, q: q.q, pager, now: crate::db::now() })
}

pub async fn users_csv(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let page = state.db(|c| users::list(c, "", PageRequest::all())).await?;
    csv_download("users.csv", &page.items)
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    pub is_admin: Option<String>,
}

pub async fn user_new(req: HttpRequest, user: CurrentUser) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let ctx = PageCtx::new(&req, Some(&user), "New user", "users");
    render(&ctx, &UserNewPage { ctx: ctx.clone(), form: NewUserForm::default(), errors: FieldErrors::default() })
}

/// Creates the account with a generated password, shown once.
pub async fn user_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    form: web::Form<NewUserForm>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let form = form.into_inner();
    let input = NewUserInput {
        username: form.username.clone(),
        full_name: form.full_name.clone(),
        is_admin: form.is_admin.is_some(),
    };
    let actor = user.actor.clone();
    let password = passwords::generate();
    let pw = password.clone();
    let result = state
        .db(move |c| {
            let h = passwords::hash(&pw)?;
            users::create(c, &actor, &input, &h)
        })
        .await;
    match result {
        Ok(created) => {
            let ctx = PageCtx::new(&req, Some(&user), "User created", "users");
            render(
                &ctx,
                &SecretPage {
                    ctx: ctx.clone(),
                    heading: format!("Account {} created", created.username),
                    explanation: format!(
                        "Give this password to {} through a safe channel. It is shown only once; they can change it under My account.",
                        created.full_name
                    ),
                    secret: password,
                    back: "/admin/users".into(),
                },
            )
        }
        Err(Error::Invalid(errors)) => {
            let ctx = PageCtx::new(&req, Some(&user), "New user", "users");
            render_form(&ctx, &UserNewPage { ctx: ctx.clone(), form, errors: errors.clone() }, &errors)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn user_account_action(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(i32, String)>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let (id, action) = path.into_inner();
    let action = match action.as_str() {
        "deactivate" => AccountAction::Deactivate,
        "reactivate" => AccountAction::Reactivate,
        "unlock" => AccountAction::Unlock,
        _ => return Err(Error::NotFound.into()),
    };
    let actor = user.actor.clone();
    let u = state.db(move |c| users::apply_account_action(c, &actor, id, action)).await?;
    let verb = match action {
        AccountAction::Deactivate => "deactivated",
        AccountAction::Reactivate => "reactivated",
        AccountAction::Unlock => "unlocked",
    };
    Ok(redirect_with_flash("/admin/users", "ok", &format!("{} was {verb}.", u.username)))
}

#[derive(serde::Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
}

/// Resets someone's two-factor sign-in (a lost phone), with a reason.
pub async fn user_reset_mfa(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
    form: web::Form<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let id = path.into_inner();
    let actor = user.actor.clone();
    let reason = form.into_inner().reason;
    match state.db(move |c| crate::auth::mfa::reset(c, &actor, id, &reason)).await {
        Ok(u) => Ok(redirect_with_flash(
            "/admin/users",
            "ok",
            &format!("The two-factor sign-in of {} was reset; their sessions ended.", u.username),
        )),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            Ok(redirect_with_flash("/admin/users", "error", &format!("Nothing was reset: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct OnOffForm {
    #[serde(default)]
    pub on: String,
}

/// Turns an account's local password sign-in on or off (single sign-on only).
pub async fn user_password_login(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
    form: web::Form<OnOffForm>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let id = path.into_inner();
    let on = match form.on.as_str() {
        "1" => true,
        "0" => false,
        _ => return Err(Error::invalid("on", "1 or 0").into()),
    };
    let actor = user.actor.clone();
    match state.db(move |c| crate::auth::sso::set_password_login(c, &actor, id, on)).await {
        Ok(u) => Ok(redirect_with_flash(
            "/admin/users",
            "ok",
            &if on {
                format!("{} may sign in with a password again.", u.username)
            } else {
                format!("{} signs in by single sign-on only.", u.username)
            },
        )),
        Err(e @ Error::Conflict(_)) => Ok(redirect_with_flash("/admin/users", "error", &e.to_string())),
        Err(e) => Err(e.into()),
    }
}

pub async fn user_reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    user.require_admin()?;
    let id = path.into_inner();
    let actor = user.actor.clone();
    let password = passwords::generate();
    let pw = password.clone();
    let h = state.hash_work(move || passwords::hash(&pw)).await??;
    let target = state
        .db(move |c| {
            users::set_password(c, &actor, id, &h, true, None)?;
            users::get(c, id)
        })
        .await?;
    let ctx = PageCtx::new(&req, Some(&user), "Password reset", "users");
    render(
        &ctx,
        &SecretPage {
            ctx: ctx.clone(),
            heading: format!("New password for {}", target.username),
            explanation: "Shown only once. Their sessions were ended and their API tokens revoked.".into(),
            secret: password,
            back: "/admin/users".into(),
        },
    )
}
