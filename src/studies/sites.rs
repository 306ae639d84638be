//! Sites of a study: code, name, country, ethics (IRB) reference and approval date.
//! Sites are retired with a reason, never deleted.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::sites;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, OptionalExt, Result};
use crate::export::CsvRecord;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = sites)]
pub struct Site {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub code: String,
    pub name: String,
    pub country: String,
    pub irb_reference: String,
    pub irb_approval_date: Option<NaiveDate>,
    pub retired_at: Option<NaiveDateTime>,
    pub retired_reason: Option<String>,
    pub created_at: NaiveDateTime,
}

impl CsvRecord for Site {
    const HEADER: &'static [&'static str] =
        &["code", "name", "country", "irb_reference", "irb_approval_date", "retired_at", "retired_reason"];
    fn record(&self) -> Vec<String> {
        vec![
            self.code.clone(),
            self.name.clone(),
            self.country.clone(),
            self.irb_reference.clone(),
            self.approval_date_text(),
            self.retired_at.map(|t| t.to_string()).unwrap_or_default(),
            self.retired_reason.clone().unwrap_or_default(),
        ]
    }
}

impl Site {
    fn json(&self) -> serde_json::Value {
        json!({
            "code": self.code, "name": self.name, "country": self.country,
            "irb_reference": self.irb_reference,
            "irb_approval_date": self.irb_approval_date.map(|d| d.to_string()),
        })
    }
    pub fn approval_date_text(&self) -> String {
        self.irb_approval_date.map(|d| d.to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct SiteInput {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub irb_reference: String,
    /// `YYYY-MM-DD` or empty.
    #[serde(default)]
    pub irb_approval_date: String,
}

struct ValidSite {
    code: String,
    approval: Option<NaiveDate>,
}

/// The editable columns, shared by add and update.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = sites, treat_none_as_null = true)]
struct SiteDetails<'a> {
    name: &'a str,
    country: &'a str,
    irb_reference: &'a str,
    irb_approval_date: Option<NaiveDate>,
}

impl SiteInput {
    fn details(&self, approval: Option<NaiveDate>) -> SiteDetails<'_> {
        SiteDetails {
            name: self.name.trim(),
            country: self.country.trim(),
            irb_reference: self.irb_reference.trim(),
            irb_approval_date: approval,
        }
    }

    fn validate(&self) -> Result<ValidSite> {
        let mut errors = FieldErrors::default();
        let code = self.code.trim().to_uppercase();
        if !(2..=16).contains(&code.len())
            || !code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        {
            errors.add("code", "2–16 characters: capital letters, digits and '-' (e.g. SNUBH)");
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            errors.add("name", "required, at most 200 characters");
        }
        if self.country.chars().count() > 100 {
            errors.add("country", "at most 100 characters");
        }
        if self.irb_reference.chars().count() > 100 {
            errors.add("irb_reference", "at most 100 characters");
        }
        let approval = match self.irb_approval_date.trim() {
            "" => None,
            s => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.add("irb_approval_date", format!("'{s}' is not a date (YYYY-MM-DD)"));
                    None
                }
            },
        };
        errors.into_result()?;
        Ok(ValidSite { code, approval })
    }
}

pub fn list(conn: &mut Conn, study_id: crate::studies::StudyId, include_retired: bool) -> Result<Vec<Site>> {
    let mut q = sites::table.filter(sites::study_id.eq(study_id)).into_boxed();
    if !include_retired {
        q = q.filter(sites::retired_at.is_null());
    }
    Ok(q.order(sites::code.asc()).select(Site::as_select()).load(conn)?)
}

/// The codes of the study's sites (retired ones too) within `scope`: a list's site filter.
pub fn codes_in(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    scope: &crate::auth::permissions::SiteScope,
) -> Result<Vec<String>> {
    Ok(list(conn, study_id, true)?.into_iter().filter(|s| scope.includes(s.id)).map(|s| s.code).collect())
}

/// A site of this study; 404 for another study's site.
pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, site_id: i32) -> Result<Site> {
    sites::table
        .filter(sites::study_id.eq(study_id))
        .filter(sites::id.eq(site_id))
        .select(Site::as_select())
        .first(conn)
        .or_not_found()
}

pub fn add(conn: &mut Conn, actor: &Actor, access: &StudyAccess, input: &SiteInput) -> Result<Site> {
    access.require(Permission::ManageSites)?;
    let v = input.validate()?;
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let exists: i64 = sites::table
            .filter(sites::study_id.eq(study.id))
            .filter(sites::code.eq(&v.code))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(Error::invalid("code", format!("site {} already exists in {}", v.code, study.code)));
        }
        diesel::insert_into(sites::table)
            .values((
                sites::study_id.eq(study.id),
                sites::code.eq(&v.code),
                input.details(v.approval),
                sites::created_at.eq(now()),
            ))
            .execute(conn)?;
        let site: Site = sites::table
            .filter(sites::study_id.eq(study.id))
            .filter(sites::code.eq(&v.code))
            .select(Site::as_select())
            .first(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Create, Entity::Site, &site.code).after(site.json()),
        )?;
        Ok(site)
    })
}

/// Edits a site's details (its code stays).
pub fn update(conn: &mut Conn, actor: &Actor, access: &StudyAccess, site_id: i32, input: &SiteInput) -> Result<Site> {
    access.require(Permission::ManageSites)?;
    let mut input = input.clone();
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let before = get(conn, study.id, site_id)?;
        input.code = before.code.clone();
        let v = input.validate()?;
        diesel::update(sites::table.find(before.id)).set(input.details(v.approval)).execute(conn)?;
        let after = get(conn, study.id, site_id)?;
        let (old, new) = audit::diff(&before.json(), &after.json());
        if new.as_object().is_some_and(|m| !m.is_empty()) {
            audit::record(
                conn,
                Change::new(study.chain(), &actor.name, Action::Update, Entity::Site, &after.code)
                    .before(old)
                    .after(new),
            )?;
        }
        Ok(after)
    })
}

/// Retires a site with a reason; it stays on record.
pub fn retire(conn: &mut Conn, actor: &Actor, access: &StudyAccess, site_id: i32, reason: &str) -> Result<Site> {
    access.require(Permission::ManageSites)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the site is retired"));
    }
    write_tx(conn, |conn| {
        let study = super::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let site = get(conn, study.id, site_id)?;
        if site.retired_at.is_some() {
            return Err(Error::Conflict(format!("site {} is already retired", site.code)));
        }
        diesel::update(sites::table.find(site.id))
            .set((sites::retired_at.eq(Some(now())), sites::retired_reason.eq(Some(reason))))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Retire, Entity::Site, &site.code)
                .before(json!({"retired": false}))
                .after(json!({"retired": true}))
                .because(reason),
        )?;
        get(conn, study.id, site_id)
    })
}
