//! Study members and their roles. Admins appoint managers; managers add the other roles.
//! Members are removed by retiring the membership with a reason.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, Role, StudyAccess};
use crate::auth::users;
use crate::auth::Actor;
use crate::db::schema::{study_members, users as users_t};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::export::CsvRecord;

#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct Member {
    pub id: i32,
    pub user_id: i32,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub retired_at: Option<NaiveDateTime>,
    pub retired_reason: Option<String>,
    pub created_at: NaiveDateTime,
}

impl CsvRecord for Member {
    const HEADER: &'static [&'static str] =
        &["username", "full_name", "role", "added_at", "removed_at", "removed_reason"];
    fn record(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            self.full_name.clone(),
            self.role.to_string(),
            self.created_at.to_string(),
            self.retired_at.map(|t| t.to_string()).unwrap_or_default(),
            self.retired_reason.clone().unwrap_or_default(),
        ]
    }
}

pub fn list(conn: &mut Conn, study_id: crate::studies::StudyId, include_retired: bool) -> Result<Vec<Member>> {
    let mut q =
        study_members::table.inner_join(users_t::table).filter(study_members::study_id.eq(study_id)).into_boxed();
    if !include_retired {
        q = q.filter(study_members::retired_at.is_null());
    }
    Ok(q.order((study_members::role.asc(), users_t::username.asc()))
        .select((
            study_members::id,
            study_members::user_id,
            users_t::username,
            users_t::full_name,
            study_members::role,
            study_members::retired_at,
            study_members::retired_reason,
            study_members::created_at,
        ))
        .load(conn)?)
}

fn check_role_grant(access: &StudyAccess, role: Role) -> Result<()> {
    access.require(Permission::ManageMembers)?;
    if role == Role::Manager && !access.is_admin {
        return Err(Error::forbidden("only administrators appoint study managers"));
    }
    Ok(())
}

/// Adds a user to the study with a role (or gives a retired member a role again).
/// Where a user lands after signing in: a reader (whose every membership is as annotator) lands
/// on their reading queue — in the first study, by code, where a read is waiting, else the first
/// study; everyone else on the studies list.
pub fn landing(conn: &mut Conn, user_id: i32) -> Result<String> {
    use crate::db::schema::studies;
    let memberships: Vec<(crate::studies::StudyId, String, Role)> = study_members::table
        .inner_join(studies::table)
        .filter(study_members::user_id.eq(user_id))
        .filter(study_members::retired_at.is_null())
        .order(studies::code.asc())
        .select((studies::id, studies::code, study_members::role))
        .load(conn)?;
    if memberships.is_empty() || memberships.iter().any(|(_, _, r)| *r != Role::Annotator) {
        return Ok("/studies".into());
    }
    for (sid, code, _) in &memberships {
        let waiting = crate::annotations::reads::queue(conn, *sid, user_id)?.iter().any(|i| i.to_read());
        if waiting {
            return Ok(format!("/studies/{code}/reading"));
        }
    }
    Ok(format!("/studies/{}/reading", memberships[0].1))
}

pub fn add(conn: &mut Conn, actor: &Actor, access: &StudyAccess, username: &str, role: &str) -> Result<Member> {
    let role = Role::parse_input(role)?;
    check_role_grant(access, role)?;
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        if study.status() == super::StudyStatus::Archived {
            return Err(Error::Conflict(format!("study {} is archived", study.code)));
        }
        let user = users::find_by_username(conn, username)?
            .ok_or_else(|| Error::invalid("username", format!("no user '{}'", username.trim())))?;
        if !user.active {
            return Err(Error::invalid("username", format!("user '{}' is deactivated", user.username)));
        }
        let existing: Option<(i32, String, Option<NaiveDateTime>)> = study_members::table
            .filter(study_members::study_id.eq(study.id))
            .filter(study_members::user_id.eq(user.id))
            .select((study_members::id, study_members::role, study_members::retired_at))
            .first(conn)
            .optional()?;
        let old = match existing {
            Some((_, r, None)) => {
                return Err(Error::invalid("username", format!("{} is already a member ({r})", user.username)));
            }
            Some((id, r, Some(_))) => {
                diesel::update(study_members::table.find(id))
                    .set((
                        study_members::role.eq(role.as_str()),
                        study_members::retired_at.eq(None::<NaiveDateTime>),
                        study_members::retired_reason.eq(None::<String>),
                    ))
                    .execute(conn)?;
                Some(json!({"role": r, "retired": true}))
            }
            None => {
                diesel::insert_into(study_members::table)
                    .values((
                        study_members::study_id.eq(study.id),
                        study_members::user_id.eq(user.id),
                        study_members::role.eq(role.as_str()),
                        study_members::created_at.eq(now()),
                    ))
                    .execute(conn)?;
                None
            }
        };
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::AddMember, Entity::Member, &user.username)
                .before_opt(old)
                .after(json!({"role": role.as_str()})),
        )?;
        list(conn, study.id, false)?.into_iter().find(|m| m.user_id == user.id).ok_or(Error::NotFound)
    })
}

/// Retires a membership with a reason.
pub fn remove(conn: &mut Conn, actor: &Actor, access: &StudyAccess, member_id: i32, reason: &str) -> Result<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the member is removed"));
    }
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        let (user_id, role, retired): (i32, Role, Option<NaiveDateTime>) = study_members::table
            .filter(study_members::study_id.eq(study.id))
            .filter(study_members::id.eq(member_id))
            .select((study_members::user_id, study_members::role, study_members::retired_at))
            .first(conn)
            .or_not_found()?;
        check_role_grant(access, role)?;
        if retired.is_some() {
            return Err(Error::Conflict("this membership is already ended".into()));
        }
        let user = users::get(conn, user_id)?;
        diesel::update(study_members::table.find(member_id))
            .set((study_members::retired_at.eq(Some(now())), study_members::retired_reason.eq(Some(reason))))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::RemoveMember, Entity::Member, user.username)
                .before(json!({"role": role}))
                .because(reason),
        )?;
        Ok(())
    })
}
