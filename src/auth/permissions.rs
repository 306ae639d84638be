//! Study roles and what each may do. Not a member (or an id from another study): 404.
//! A member whose role lacks the right: 403. Admins may do everything. Site staff (REDCap's
//! data access groups) are scoped to their sites: another site's subject, and everything about
//! it, is 404 to them ([`SiteScope`]).

use diesel::prelude::*;

use super::Actor;
use crate::db::schema::{member_sites, studies, study_members};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::studies::Study;

crate::db::text_enum! {
    /// A member's role in a study (administrators are not members: they may do everything).
    pub enum Role {
        Manager = "manager",
        Annotator = "annotator",
        Statistician = "statistician",
        Monitor = "monitor",
        /// Site staff (a study coordinator): their sites' subjects only.
        Site = "site",
    }
}

impl Role {
    /// The role a person typed (a form, the CLI): any letter case; an error names the field.
    pub fn parse_input(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_lowercase())
            .ok_or_else(|| Error::invalid("role", "must be one of manager, annotator, statistician, monitor, site"))
    }
}

/// Declares `Permission` and, for each variant, a marker type in `perm` (for
/// `web::extract::InStudy<perm::X>`), so the two lists cannot drift apart.
macro_rules! permissions {
    ($( $(#[$doc:meta])* $name:ident, )+) => {
        /// Things a member may do in a study.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Permission {
            $( $(#[$doc])* $name, )+
        }

        /// One type per [`Permission`], for naming it in a handler's signature.
        pub mod perm {
            $(
                #[doc = concat!("[`Permission::", stringify!($name), "`](super::Permission::", stringify!($name), ")")]
                pub struct $name;
                impl super::Needs for $name {
                    const PERMISSION: super::Permission = super::Permission::$name;
                }
            )+
        }
    };
}

/// A permission as a type: `perm::ViewCases` and the like.
pub trait Needs {
    const PERMISSION: Permission;
}

permissions! {
    View,
    ViewSites,
    ViewMembers,
    ViewAudit,
    ViewJobs,
    EditStudy,
    ChangeStatus,
    ManageSites,
    ManageMembers,
    /// Start integrity checks and other read-only jobs.
    RunChecks,
    /// Case data (annotators see none: they are blinded to it).
    ViewCases,
    /// Edit the data dictionary and the study's design; exclude data quality findings.
    ManageCases,
    /// Import cases and change their values and status (managers; site staff for their sites'
    /// subjects).
    EnterData,
    /// Slides and their viewer (annotators get theirs through reading campaigns only).
    ViewSlides,
    /// Ingest slides, exclude them from analysis.
    ManageSlides,
    /// Reading campaigns and their progress (not the reads' values).
    ViewCampaigns,
    /// The annotation schema, campaigns, reader assignments.
    ManageCampaigns,
    /// Readers' submitted values and regions (never annotators: they are blinded to each other).
    ViewReads,
    /// Agreement between readers once a campaign is complete.
    ViewAgreement,
    /// AI biomarker runs and their results (never annotators: they are blinded to the AI).
    ViewRuns,
    /// Start biomarker runs.
    ManageRuns,
    /// The study's analyses, its analysis plan and saved results (never annotators: the
    /// analyses show the AI's results and every reader's).
    ViewAnalyses,
    /// Write and sign the analysis plan; save analyses (statisticians).
    ManageAnalyses,
    /// Open, close and reopen queries on case values (monitors and managers).
    RaiseQueries,
    /// Answer queries, changing the value where asked (the data's keepers: managers and site
    /// staff).
    AnswerQueries,
    /// Mark forms source-verified (monitors: those who compare them with the source).
    VerifySource,
}

impl Permission {
    /// What annotators are blinded to: asking for it answers 404, not 403.
    fn blinds_annotators(&self) -> bool {
        use Permission::*;
        matches!(
            self,
            ViewCases
                | ViewSlides
                | ViewCampaigns
                | ViewReads
                | ViewAgreement
                | ViewRuns
                | ViewAnalyses
                | ManageAnalyses
                | RaiseQueries
                | AnswerQueries
                | VerifySource
        )
    }

    fn allowed(&self, role: Role) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            View | ViewSites => true,
            // Site staff see their sites' subjects (their scope narrows every list and lookup).
            ViewCases => matches!(role, Manager | Statistician | Monitor | Site),
            EnterData | AnswerQueries => matches!(role, Manager | Site),
            ViewMembers | ViewJobs | ViewSlides | ViewCampaigns | ViewReads | ViewRuns => {
                matches!(role, Manager | Statistician | Monitor)
            }
            // Results (agreement between readers, analyses) are for managers and statisticians;
            // monitors verify the data, not the results.
            ViewAgreement | ViewAnalyses => matches!(role, Manager | Statistician),
            ManageAnalyses => role == Statistician,
            ViewAudit | RunChecks | RaiseQueries => matches!(role, Manager | Monitor),
            VerifySource => role == Monitor,
            EditStudy | ChangeStatus | ManageSites | ManageMembers | ManageCases | ManageSlides | ManageCampaigns
            | ManageRuns => role == Manager,
        }
    }
}

/// The sites whose subjects a member sees: every site, or (site staff) only their own. Every
/// list and lookup of subjects, their records, queries, findings and verifications takes one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum SiteScope {
    #[default]
    All,
    /// Site ids; empty for site staff whose every site was taken away.
    Only(Vec<i32>),
}

impl SiteScope {
    pub fn includes(&self, site_id: i32) -> bool {
        self.ids().is_none_or(|ids| ids.contains(&site_id))
    }
    /// The site ids to filter on; `None`: every site.
    pub fn ids(&self) -> Option<&[i32]> {
        match self {
            SiteScope::All => None,
            SiteScope::Only(ids) => Some(ids),
        }
    }
}

/// A study as seen by one actor: the study plus the actor's role in it.
#[derive(Debug, Clone)]
pub struct StudyAccess {
    pub study: Study,
    pub role: Option<Role>,
    pub is_admin: bool,
    /// The sites whose subjects the actor sees.
    pub sites: SiteScope,
}

impl StudyAccess {
    /// A subject of `site_id`: 404 unless the actor's scope includes it.
    pub fn require_site(&self, site_id: i32) -> Result<()> {
        if self.sites.includes(site_id) {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
    pub fn can(&self, p: Permission) -> bool {
        self.is_admin || self.role.is_some_and(|r| p.allowed(r))
    }
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.can(p) {
            Ok(())
        } else if self.role == Some(Role::Annotator) && p.blinds_annotators() {
            // Blinding: to an annotator, case data, slides outside their queue and other
            // readers' work do not exist.
            Err(Error::NotFound)
        } else {
            Err(Error::forbidden(format!("your role in {} does not allow this", self.study.code)))
        }
    }
    pub fn role_label(&self) -> &'static str {
        match (self.role, self.is_admin) {
            (Some(r), _) => r.as_str(),
            (None, true) => "admin",
            (None, false) => "",
        }
    }
}

/// The actor's role in a study, if any (retired memberships do not count).
pub fn role_in(conn: &mut Conn, user_id: i32, study_id: crate::studies::StudyId) -> Result<Option<Role>> {
    Ok(study_members::table
        .filter(study_members::study_id.eq(study_id))
        .filter(study_members::user_id.eq(user_id))
        .filter(study_members::retired_at.is_null())
        .select(study_members::role)
        .first(conn)
        .optional()?)
}

/// Loads a study by code for an actor; 404 unless the actor is an admin or a member.
pub fn study_access(conn: &mut Conn, actor: &Actor, code: &str) -> Result<StudyAccess> {
    let study: Option<Study> =
        studies::table.filter(studies::code.eq(code)).select(Study::as_select()).first(conn).optional()?;
    let study = study.ok_or(Error::NotFound)?;
    let role = match actor.user_id {
        Some(uid) => role_in(conn, uid, study.id)?,
        None => None,
    };
    if role.is_none() && !actor.is_admin {
        return Err(Error::NotFound);
    }
    // Administrators see every site, whatever their membership.
    let sites = match (role, actor.user_id) {
        (Some(Role::Site), Some(uid)) if !actor.is_admin => SiteScope::Only(member_site_ids(conn, uid, study.id)?),
        _ => SiteScope::All,
    };
    Ok(StudyAccess { study, role, is_admin: actor.is_admin, sites })
}

/// The sites a member (site staff) is scoped to.
pub fn member_site_ids(conn: &mut Conn, user_id: i32, study_id: crate::studies::StudyId) -> Result<Vec<i32>> {
    Ok(member_sites::table
        .inner_join(study_members::table)
        .filter(study_members::study_id.eq(study_id))
        .filter(study_members::user_id.eq(user_id))
        .order(member_sites::site_id)
        .select(member_sites::site_id)
        .load(conn)?)
}
