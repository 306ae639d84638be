//! Route table and the handlers, one file per area.

pub mod account;
pub mod admin;
pub mod analyses;
pub mod api;
pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod cases;
pub mod events;
pub mod jobs;
pub mod members;
pub mod models;
pub mod quality;
pub mod queries;
pub mod reading;
pub mod runs;
pub mod sites;
pub mod slides;
pub mod studies;
pub mod system;
pub mod verification;

use actix_web::web;

use crate::auth::permissions::{Permission, Role, StudyAccess};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(system::index))
        .route("/healthz", web::get().to(system::healthz))
        .route("/metrics", web::get().to(system::metrics))
        .route("/static/{path:.*}", web::get().to(system::static_file))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::login_submit))
        .route("/login/sso", web::get().to(auth::sso_start))
        .route("/login/sso/callback", web::get().to(auth::sso_callback))
        .route("/login/code", web::get().to(auth::code_form))
        .route("/login/code", web::post().to(auth::code_submit))
        .route("/logout", web::post().to(auth::logout))
        .route("/account", web::get().to(account::account_show))
        .route("/account/password", web::post().to(account::password_change))
        .route("/account/mfa/start", web::post().to(account::mfa_start))
        .route("/account/mfa/confirm", web::post().to(account::mfa_confirm))
        .route("/account/mfa/recovery-codes", web::post().to(account::mfa_recovery_codes))
        .route("/account/mfa/disable", web::post().to(account::mfa_disable))
        .route("/account/tokens", web::post().to(account::token_create))
        .route("/account/tokens/{id}/revoke", web::post().to(account::token_revoke))
        .route("/admin/users", web::get().to(admin::users_list))
        .route("/admin/users.csv", web::get().to(admin::users_csv))
        .route("/admin/users/new", web::get().to(admin::user_new))
        .route("/admin/users", web::post().to(admin::user_create))
        .route("/admin/users/{id}/reset-password", web::post().to(admin::user_reset_password))
        .route("/admin/users/{id}/reset-mfa", web::post().to(admin::user_reset_mfa))
        .route("/admin/users/{id}/password-login", web::post().to(admin::user_password_login))
        .route("/admin/users/{id}/{action}", web::post().to(admin::user_account_action))
        .route("/admin/audit", web::get().to(audit::audit_global))
        .route("/admin/audit.csv", web::get().to(audit::audit_global_csv))
        .route("/admin/audit/verify", web::post().to(audit::audit_global_verify))
        .route("/admin/models", web::get().to(models::models_list))
        .route("/admin/models", web::post().to(models::model_register))
        .route("/admin/models/{key}/retire", web::post().to(models::model_retire))
        .route("/admin/jobs", web::get().to(jobs::jobs_global))
        .route("/admin/jobs/{id}", web::get().to(jobs::job_global_row))
        .route("/admin/jobs/{id}/cancel", web::post().to(jobs::job_global_cancel))
        .route("/studies", web::get().to(studies::studies_list))
        .route("/studies.csv", web::get().to(studies::studies_csv))
        .route("/studies/new", web::get().to(studies::study_new))
        .route("/studies", web::post().to(studies::study_create))
        .route("/studies/{code}", web::get().to(studies::study_show))
        .route("/studies/{code}/edit", web::get().to(studies::study_edit))
        .route("/studies/{code}/edit", web::post().to(studies::study_update))
        .route("/studies/{code}/status", web::post().to(studies::study_status))
        .route("/studies/{code}/sign", web::post().to(studies::study_sign))
        .route("/studies/{code}/dossier", web::post().to(studies::study_dossier_start))
        .route("/studies/{code}/dossier/{id}", web::get().to(studies::study_dossier_job))
        .route("/studies/{code}/dossier/{id}/download", web::get().to(studies::study_dossier_download))
        .route("/studies/{code}/sites", web::get().to(sites::sites_list))
        .route("/studies/{code}/sites.csv", web::get().to(sites::sites_csv))
        .route("/studies/{code}/sites", web::post().to(sites::site_create))
        .route("/studies/{code}/sites/{id}/edit", web::get().to(sites::site_edit))
        .route("/studies/{code}/sites/{id}/edit", web::post().to(sites::site_update))
        .route("/studies/{code}/sites/{id}/retire", web::post().to(sites::site_retire))
        .route("/studies/{code}/members", web::get().to(members::members_list))
        .route("/studies/{code}/members.csv", web::get().to(members::members_csv))
        .route("/studies/{code}/members", web::post().to(members::member_add))
        .route("/studies/{code}/members/require-mfa", web::post().to(members::require_mfa))
        .route("/studies/{code}/members/{id}/remove", web::post().to(members::member_remove))
        .route("/studies/{code}/audit", web::get().to(audit::audit_study))
        .route("/studies/{code}/audit.csv", web::get().to(audit::audit_study_csv))
        .route("/studies/{code}/audit/verify", web::post().to(audit::audit_study_verify))
        .route("/studies/{code}/dictionary", web::get().to(cases::dictionary_show))
        .route("/studies/{code}/dictionary.csv", web::get().to(cases::dictionary_csv))
        .route("/studies/{code}/dictionary/import", web::post().to(cases::dictionary_import))
        .route("/studies/{code}/dictionary/fields/{name}", web::post().to(cases::dictionary_field_update))
        .route("/studies/{code}/events", web::get().to(events::events_show))
        .route("/studies/{code}/events", web::post().to(events::events_import))
        .route("/studies/{code}/events/{file}", web::get().to(events::events_file))
        .route("/studies/{code}/records.csv", web::get().to(events::records_csv))
        .route("/studies/{code}/quality", web::get().to(quality::quality_show))
        .route("/studies/{code}/quality.csv", web::get().to(quality::quality_csv))
        .route("/studies/{code}/quality/run", web::post().to(quality::quality_run))
        .route("/studies/{code}/quality/rules", web::post().to(quality::rule_create))
        .route("/studies/{code}/quality/rules/{rule}/retire", web::post().to(quality::rule_retire))
        .route("/studies/{code}/quality/findings/{id}", web::post().to(quality::finding_status))
        .route("/studies/{code}/queries", web::get().to(queries::queries_list))
        .route("/studies/{code}/queries.csv", web::get().to(queries::queries_csv))
        .route("/studies/{code}/queries", web::post().to(queries::query_open))
        .route("/studies/{code}/queries/{id}", web::get().to(queries::query_show))
        .route("/studies/{code}/queries/{id}/{step}", web::post().to(queries::query_step))
        .route("/studies/{code}/verification", web::get().to(verification::verification_show))
        .route("/studies/{code}/verification.csv", web::get().to(verification::verification_csv))
        .route("/studies/{code}/verification/rule", web::post().to(verification::verification_rule))
        .route("/studies/{code}/cases/{display_id}/verify", web::post().to(verification::case_verify))
        .route("/studies/{code}/cases", web::get().to(cases::cases_list))
        .route("/studies/{code}/cases.csv", web::get().to(cases::cases_csv))
        .route("/studies/{code}/cases/import", web::get().to(cases::case_import_form))
        .route("/studies/{code}/cases/import", web::post().to(cases::case_import_upload))
        .route("/studies/{code}/cases/import/{token}/confirm", web::post().to(cases::case_import_confirm))
        .route("/studies/{code}/cases/{display_id}/record", web::get().to(events::case_record))
        .route("/studies/{code}/cases/{display_id}/record", web::post().to(events::case_record_save))
        .route("/studies/{code}/cases/{display_id}/logic", web::post().to(events::record_logic))
        .route("/studies/{code}/cases/{display_id}", web::get().to(cases::case_show))
        .route("/studies/{code}/cases/{display_id}/edit", web::post().to(cases::case_update))
        .route("/studies/{code}/cases/{display_id}/status", web::post().to(cases::case_status))
        .route("/studies/{code}/slides", web::get().to(slides::slides_list))
        .route("/studies/{code}/slides.csv", web::get().to(slides::slides_csv))
        .route("/studies/{code}/slides/ingest", web::get().to(slides::slide_ingest_form))
        .route("/studies/{code}/slides/ingest", web::post().to(slides::slide_ingest_upload))
        .route("/studies/{code}/slides/ingests/{id}", web::get().to(slides::slide_ingest_show))
        .route("/studies/{code}/slides/{label}", web::get().to(slides::slide_show))
        .route("/studies/{code}/slides/{label}/qc", web::post().to(slides::slide_qc))
        .route("/studies/{code}/slides/{label}/heatmap.json", web::get().to(runs::slide_heatmap))
        .route("/studies/{code}/slides/{label}/heatmap.png", web::get().to(runs::slide_heatmap_png))
        .route("/studies/{code}/slides/{label}/thumbnail.jpeg", web::get().to(slides::slide_thumbnail))
        .route("/studies/{code}/slides/{label}/dicom.zip", web::get().to(slides::slide_dicom_zip))
        .route("/studies/{code}/slides/{label}/dzi/slide.dzi", web::get().to(slides::slide_dzi))
        .route(
            "/studies/{code}/slides/{label}/dzi/slide_files/{level}/{col}_{row}.jpeg",
            web::get().to(slides::slide_tile),
        )
        .route("/studies/{code}/annotations/schema", web::get().to(campaigns::schema_show))
        .route("/studies/{code}/annotations/schema", web::post().to(campaigns::schema_update))
        .route("/studies/{code}/campaigns", web::get().to(campaigns::campaigns_list))
        .route("/studies/{code}/campaigns/new", web::get().to(campaigns::campaign_new))
        .route("/studies/{code}/campaigns", web::post().to(campaigns::campaign_create))
        .route("/studies/{code}/campaigns/{id}", web::get().to(campaigns::campaign_show))
        .route("/studies/{code}/campaigns/{id}/reads.csv", web::get().to(campaigns::campaign_reads_csv))
        .route("/studies/{code}/campaigns/{id}/progress.csv", web::get().to(campaigns::campaign_progress_csv))
        .route("/studies/{code}/campaigns/{id}/reference.csv", web::get().to(campaigns::campaign_reference_csv))
        .route("/studies/{code}/campaigns/{id}/status", web::post().to(campaigns::campaign_status))
        .route("/studies/{code}/campaigns/{id}/withdraw", web::post().to(campaigns::campaign_withdraw))
        .route("/studies/{code}/campaigns/{id}/adjudication", web::get().to(campaigns::adjudication_show))
        .route("/studies/{code}/campaigns/{id}/adjudication", web::post().to(campaigns::adjudicate))
        .route("/studies/{code}/reading", web::get().to(reading::reading_queue))
        .route("/studies/{code}/reads/{id}", web::get().to(reading::workbench))
        .route("/studies/{code}/reads/{id}/regions", web::get().to(reading::read_regions))
        .route("/studies/{code}/reads/{id}/ai.json", web::get().to(reading::read_ai))
        .route("/studies/{code}/reads/{id}/ai.png", web::get().to(reading::read_ai_png))
        .route("/studies/{code}/reads/{id}/draft", web::post().to(reading::read_draft))
        .route("/studies/{code}/reads/{id}/submit", web::post().to(reading::read_submit))
        .route("/studies/{code}/reads/{id}/reopen", web::post().to(reading::read_reopen))
        .route("/studies/{code}/reads/{id}/regions.geojson", web::get().to(reading::read_geojson))
        .route("/studies/{code}/reads/{id}/regions.geojson", web::post().to(reading::read_geojson_import))
        .route("/studies/{code}/reads/{id}/dzi/slide.dzi", web::get().to(reading::read_dzi))
        .route("/studies/{code}/reads/{id}/dzi/slide_files/{level}/{col}_{row}.jpeg", web::get().to(reading::read_tile))
        .route("/studies/{code}/runs", web::get().to(runs::runs_list))
        .route("/studies/{code}/runs", web::post().to(runs::run_start))
        .route("/studies/{code}/runs/compare", web::get().to(runs::runs_compare))
        .route("/studies/{code}/runs/compare.csv", web::get().to(runs::runs_compare_csv))
        .route("/studies/{code}/runs/{id}.csv", web::get().to(runs::run_csv))
        .route("/studies/{code}/runs/{id}", web::get().to(runs::run_show))
        .route("/studies/{code}/analyses", web::get().to(analyses::analyses_index))
        .route("/studies/{code}/analyses/new", web::get().to(analyses::analysis_new))
        .route("/studies/{code}/analyses/result", web::get().to(analyses::analysis_result))
        .route("/studies/{code}/analyses/result.csv", web::get().to(analyses::analysis_result_csv))
        .route("/studies/{code}/analyses/plot.svg", web::get().to(analyses::analysis_plot_svg))
        .route("/studies/{code}/analyses/plot.png", web::get().to(analyses::analysis_plot_png))
        .route("/studies/{code}/analyses/dataset.csv", web::get().to(analyses::analysis_dataset_csv))
        .route("/studies/{code}/analyses/saved", web::post().to(analyses::analysis_save))
        .route("/studies/{code}/analyses/saved.csv", web::get().to(analyses::saved_csv))
        .route("/studies/{code}/analyses/saved/{id}", web::get().to(analyses::saved_show))
        .route("/studies/{code}/analyses/saved/{id}/plot.svg", web::get().to(analyses::saved_plot_svg))
        .route("/studies/{code}/analyses/saved/{id}/plot.png", web::get().to(analyses::saved_plot_png))
        .route("/studies/{code}/analyses/saved/{id}/result.csv", web::get().to(analyses::saved_result_csv))
        .route("/studies/{code}/analyses/saved/{id}/retire", web::post().to(analyses::saved_retire))
        .route("/studies/{code}/analyses/plan", web::get().to(analyses::plan_show))
        .route("/studies/{code}/analyses/plan/items", web::post().to(analyses::plan_add_item))
        .route("/studies/{code}/analyses/plan/items/{key}/remove", web::post().to(analyses::plan_remove_item))
        .route("/studies/{code}/analyses/plan/sign", web::post().to(analyses::plan_sign))
        .route("/studies/{code}/analyses/plan/new-version", web::post().to(analyses::plan_new_version))
        .route("/studies/{code}/jobs", web::get().to(jobs::jobs_study))
        .route("/studies/{code}/jobs/{id}", web::get().to(jobs::job_study_row))
        .route("/studies/{code}/jobs/{id}/cancel", web::post().to(jobs::job_study_cancel))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(api::openapi))
                .route("/me", web::get().to(api::me))
                .route("/signing-key", web::get().to(api::signing_key))
                .route("/studies", web::get().to(api::studies_list))
                .route("/studies/{code}", web::get().to(api::study_get))
                .route("/studies/{code}/sites", web::get().to(api::sites_list))
                .route("/studies/{code}/members", web::get().to(api::members_list))
                .route("/studies/{code}/jobs", web::get().to(api::jobs_list))
                .route("/studies/{code}/jobs/{id}", web::get().to(api::job_get))
                .route("/studies/{code}/dictionary", web::get().to(api::dictionary_get))
                .route("/studies/{code}/cases", web::get().to(api::cases_list))
                .route("/studies/{code}/cases/{display_id}", web::get().to(api::case_get))
                .route("/studies/{code}/slides", web::get().to(api::slides_list))
                .route("/studies/{code}/slides/{label}", web::get().to(api::slide_get))
                .route("/studies/{code}/campaigns", web::get().to(api::campaigns_list))
                .route("/studies/{code}/campaigns/{id}/reads", web::get().to(api::campaign_reads))
                .route("/studies/{code}/campaigns/{id}/reference", web::get().to(api::campaign_reference))
                .route("/studies/{code}/reads/{id}", web::get().to(api::read_get))
                .route("/studies/{code}/reading", web::get().to(api::reading_queue)),
        )
        .default_service(web::to(system::not_found));
}

/// The tabs of a study's pages, showing only what the viewer's role allows.
#[derive(Debug, Clone)]
pub struct StudyNav {
    pub code: String,
    pub title: String,
    pub status: crate::studies::StudyStatus,
    pub role: String,
    pub tab: &'static str,
    pub can_members: bool,
    pub can_cases: bool,
    pub can_slides: bool,
    pub can_campaigns: bool,
    pub can_runs: bool,
    pub can_analyses: bool,
    /// Annotators (and adjudicators) work from "My reading".
    pub can_read: bool,
    pub can_audit: bool,
    pub can_jobs: bool,
    pub can_edit: bool,
}

impl StudyNav {
    pub fn new(access: &StudyAccess, tab: &'static str) -> Self {
        StudyNav {
            code: access.study.code.clone(),
            title: access.study.title.clone(),
            status: access.study.status,
            role: access.role_label().to_string(),
            tab,
            can_members: access.can(Permission::ViewMembers),
            can_cases: access.can(Permission::ViewCases),
            can_slides: access.can(Permission::ViewSlides),
            can_campaigns: access.can(Permission::ViewCampaigns),
            can_runs: access.can(Permission::ViewRuns),
            can_analyses: access.can(Permission::ViewAnalyses),
            can_read: access.role.is_some_and(|r| matches!(r, Role::Annotator | Role::Manager)),
            can_audit: access.can(Permission::ViewAudit),
            can_jobs: access.can(Permission::ViewJobs),
            can_edit: access.can(Permission::EditStudy) && access.study.ensure_editable().is_ok(),
        }
    }
}

/// Deserialises a form's reason field.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
}

/// A two-way action with its reason (exclude/include a slide, close/reopen a campaign).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub action: String,
    #[serde(flatten)]
    pub reason: ReasonForm,
}
