//! Study members and their roles. Admins appoint managers; managers add the other roles.
//! Site staff are members scoped to one or more of the study's sites (`member_sites`).
//! Members are removed by retiring the membership with a reason.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, Role, StudyAccess};
use crate::auth::users;
use crate::auth::Actor;
use crate::db::schema::{member_sites, sites, study_members, users as users_t};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::export::CsvRecord;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    pub id: i32,
    pub user_id: i32,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub retired_at: Option<NaiveDateTime>,
    pub retired_reason: Option<String>,
    pub created_at: NaiveDateTime,
    /// Site staff: the codes of their sites (empty for every other role).
    pub sites: Vec<String>,
}

impl Member {
    /// The role, with site staff's sites: "monitor", "site of SNUBH, SMC".
    pub fn role_described(&self) -> String {
        if self.sites.is_empty() {
            self.role.to_string()
        } else {
            format!("{} of {}", self.role, self.sites.join(", "))
        }
    }
}

impl CsvRecord for Member {
    const HEADER: &'static [&'static str] =
        &["username", "full_name", "role", "sites", "added_at", "removed_at", "removed_reason"];
    fn record(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            self.full_name.clone(),
            self.role.to_string(),
            self.sites.join(" "),
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
    type Row = (i32, i32, String, String, Role, Option<NaiveDateTime>, Option<String>, NaiveDateTime);
    let rows: Vec<Row> = q
        .order((study_members::role.asc(), users_t::username.asc()))
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
        .load(conn)?;
    let scoped: Vec<(i32, String)> = member_sites::table
        .inner_join(sites::table)
        .inner_join(study_members::table)
        .filter(study_members::study_id.eq(study_id))
        .order(sites::code)
        .select((member_sites::member_id, sites::code))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id, username, full_name, role, retired_at, retired_reason, created_at)| Member {
            sites: scoped.iter().filter(|(m, _)| *m == id).map(|(_, code)| code.clone()).collect(),
            id,
            user_id,
            username,
            full_name,
            role,
            retired_at,
            retired_reason,
            created_at,
        })
        .collect())
}

fn check_role_grant(access: &StudyAccess, role: Role) -> Result<()> {
    access.require(Permission::ManageMembers)?;
    if role == Role::Manager && !access.is_admin {
        return Err(Error::forbidden("only administrators appoint study managers"));
    }
    Ok(())
}

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

/// Adds a user to the study with a role that sees every site ([`add_to_sites`] for site staff).
pub fn add(conn: &mut Conn, actor: &Actor, access: &StudyAccess, username: &str, role: &str) -> Result<Member> {
    add_to_sites(conn, actor, access, username, role, &[])
}

/// The study's sites named by `codes` (site staff's scope): required for the `site` role,
/// refused for every other; an unknown or retired site is an error naming it.
fn scope_sites(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    role: Role,
    codes: &[String],
) -> Result<Vec<(i32, String)>> {
    let codes: Vec<&str> = codes.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
    if role != Role::Site {
        if !codes.is_empty() {
            return Err(Error::invalid("sites", "only site staff are scoped to sites: the other roles see every site"));
        }
        return Ok(Vec::new());
    }
    if codes.is_empty() {
        return Err(Error::invalid("sites", "choose the site or sites whose subjects this member works on"));
    }
    let known = super::sites::list(conn, study_id, false)?;
    let mut out: Vec<(i32, String)> = Vec::new();
    for code in codes {
        let site = known
            .iter()
            .find(|s| s.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| Error::invalid("sites", format!("the study has no active site '{code}'")))?;
        if !out.iter().any(|(id, _)| *id == site.id) {
            out.push((site.id, site.code.clone()));
        }
    }
    Ok(out)
}

/// Adds a user to the study with a role (or gives a retired member a role again); site staff
/// (`site`) with the codes of the sites they work for. Audited with the role and the sites.
pub fn add_to_sites(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    username: &str,
    role: &str,
    site_codes: &[String],
) -> Result<Member> {
    let role = Role::parse_input(role)?;
    check_role_grant(access, role)?;
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        if study.status() == super::StudyStatus::Archived {
            return Err(Error::Conflict(format!("study {} is archived", study.code)));
        }
        let scope = scope_sites(conn, study.id, role, site_codes)?;
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
        let (member_id, old) = match existing {
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
                // The ended membership's sites (if any) give way to the new scope; the audit
                // trail keeps both.
                diesel::delete(member_sites::table.filter(member_sites::member_id.eq(id))).execute(conn)?;
                (id, Some(json!({"role": r, "retired": true})))
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
                let id = study_members::table
                    .filter(study_members::study_id.eq(study.id))
                    .filter(study_members::user_id.eq(user.id))
                    .select(study_members::id)
                    .first(conn)?;
                (id, None)
            }
        };
        for (site_id, _) in &scope {
            diesel::insert_into(member_sites::table)
                .values((member_sites::member_id.eq(member_id), member_sites::site_id.eq(site_id)))
                .execute(conn)?;
        }
        let mut after = json!({"role": role.as_str()});
        if role == Role::Site {
            after["sites"] = json!(scope.iter().map(|(_, code)| code).collect::<Vec<_>>());
        }
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::AddMember, Entity::Member, &user.username)
                .before_opt(old)
                .after(after),
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
