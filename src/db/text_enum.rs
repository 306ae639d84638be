//! Stored states as types: `text_enum!` declares an enum whose every variant maps to the text
//! stored for it, in one place. It reads from a TEXT column and writes to one; a stored value
//! that is not one of the variants is an error when the row is read (never a default), and the
//! migrations refuse such values when they are written (`studies_status_check` and the like).
//!
//! ```ignore
//! text_enum! {
//!     /// Where a study is in its life.
//!     pub enum StudyStatus { Draft = "draft", Active = "active" }
//! }
//! ```

/// See the module documentation.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$( $text ),+].len()] = [$( $name::$variant ),+];

            /// The stored text.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The variant stored as `s` (surrounding blanks ignored), if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s.trim() {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: `{:<9}` and the like still line up in listings.
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&text),
                        &concat!("one of: ", $( $text, " " ),+).trim_end(),
                    )
                })
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(value: <DB as diesel::backend::Backend>::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(value)?;
                $name::parse(&text).ok_or_else(|| {
                    format!("the database holds '{text}', which is not a {}", stringify!($name)).into()
                })
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(self.as_str(), out)
            }
        }
    };
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel_migrations::MigrationHarness;

    use crate::analyses::{plan::PlanStatus, saved::SavedStatus};
    use crate::annotations::campaigns::{Assistance, CampaignPurpose, CampaignStatus};
    use crate::annotations::reads::ReadStatus;
    use crate::audit::{Action, Entity};
    use crate::auth::esign::Meaning;
    use crate::auth::permissions::Role;
    use crate::biomarker::registry::ModelStatus;
    use crate::biomarker::runs::{Phenotype, ResultStatus};
    use crate::biomarker::Backend;
    use crate::cases::decode::Encoding;
    use crate::cases::dictionary::{DeidAction, FieldType};
    use crate::cases::CaseStatus;
    use crate::db::Conn;
    use crate::jobs::{JobKind, JobStatus};
    use crate::slides::{SlideFormat, SlideStatus};
    use crate::studies::{StudyStatus, StudyType};

    #[derive(QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }

    /// The values a migration's check trigger allows (its `NOT IN (...)` list).
    fn allowed(conn: &mut Conn, trigger: &str) -> Vec<String> {
        let rows: Vec<Sql> = diesel::sql_query("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?")
            .bind::<diesel::sql_types::Text, _>(trigger)
            .load(conn)
            .unwrap();
        let sql = &rows.first().unwrap_or_else(|| panic!("no trigger {trigger}")).sql;
        let list = sql.split("NOT IN (").nth(1).and_then(|r| r.split(')').next()).unwrap();
        list.split(',').map(|v| v.trim().trim_matches('\'').to_string()).collect()
    }

    #[test]
    fn every_check_allows_exactly_its_enums_values() {
        fn texts<T: Copy, const N: usize>(all: [T; N], f: fn(&T) -> &'static str) -> Vec<String> {
            all.iter().map(|v| f(v).to_string()).collect()
        }
        let mut conn = Conn::establish(":memory:").unwrap();
        conn.run_pending_migrations(crate::db::MIGRATIONS).unwrap();
        let checks = [
            ("studies_status", texts(StudyStatus::ALL, StudyStatus::as_str)),
            ("studies_study_type", texts(StudyType::ALL, StudyType::as_str)),
            ("jobs_status", texts(JobStatus::ALL, JobStatus::as_str)),
            ("models_status", texts(ModelStatus::ALL, ModelStatus::as_str)),
            ("analysis_plans_status", texts(PlanStatus::ALL, PlanStatus::as_str)),
            ("saved_analyses_status", texts(SavedStatus::ALL, SavedStatus::as_str)),
            ("slides_status", texts(SlideStatus::ALL, SlideStatus::as_str)),
            ("campaigns_status", texts(CampaignStatus::ALL, CampaignStatus::as_str)),
            ("campaigns_purpose", texts(CampaignPurpose::ALL, CampaignPurpose::as_str)),
            ("reads_status", texts(ReadStatus::ALL, ReadStatus::as_str)),
            ("cases_status", texts(CaseStatus::ALL, CaseStatus::as_str)),
            ("study_members_role", texts(Role::ALL, Role::as_str)),
            ("biomarker_results_status", texts(ResultStatus::ALL, ResultStatus::as_str)),
            ("jobs_kind", texts(JobKind::ALL, JobKind::as_str)),
            ("reads_assistance", texts(Assistance::ALL, Assistance::as_str)),
            ("study_signatures_role", texts(Role::ALL, Role::as_str)),
            ("study_signatures_meaning", texts(Meaning::ALL, Meaning::as_str)),
            ("analysis_plans_signed_meaning", texts(Meaning::ALL, Meaning::as_str)),
            ("slides_format", texts(SlideFormat::ALL, SlideFormat::as_str)),
            ("models_checked_backend", texts(Backend::ALL, Backend::as_str)),
            ("biomarker_runs_backend", texts(Backend::ALL, Backend::as_str)),
            ("biomarker_results_phenotype", texts(Phenotype::ALL, Phenotype::as_str)),
            ("dictionary_fields_field_type", texts(FieldType::ALL, FieldType::as_str)),
            ("dictionary_fields_deid_action", texts(DeidAction::ALL, DeidAction::as_str)),
            ("case_imports_encoding", texts(Encoding::ALL, Encoding::as_str)),
            ("audit_events_entity", texts(Entity::ALL, Entity::as_str)),
            ("audit_events_action", texts(Action::ALL, Action::as_str)),
            ("saved_analyses_analysis", crate::stats::describe::forms().iter().map(|f| f.name.clone()).collect()),
        ];
        for (column, values) in checks {
            for event in ["insert", "update"] {
                assert_eq!(allowed(&mut conn, &format!("{column}_check_{event}")), values, "{column} ({event})");
            }
        }
    }

    #[test]
    fn json_reads_a_state_by_its_text_and_refuses_any_other() {
        assert_eq!(serde_json::from_str::<Meaning>("\"approval\"").unwrap(), Meaning::Approval);
        assert_eq!(serde_json::to_string(&Meaning::Approval).unwrap(), "\"approval\"");
        let err = serde_json::from_str::<Meaning>("\"Approved\"").unwrap_err().to_string();
        assert!(err.contains("one of: authorship review approval responsibility"), "{err}");
    }
}
