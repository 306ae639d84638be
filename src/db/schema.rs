//! Diesel table definitions, kept in step with `migrations/sqlite/` by hand (`db::drift`'s test
//! compares the two).

diesel::table! {
    users (id) {
        id -> Integer,
        username -> Text,
        full_name -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        active -> Bool,
        failed_logins -> Integer,
        first_failed_at -> Nullable<Timestamp>,
        locked_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        locked_client -> Nullable<Text>,
        totp_secret -> Nullable<Text>,
        totp_pending_secret -> Nullable<Text>,
        totp_enabled_at -> Nullable<Timestamp>,
        totp_last_step -> Nullable<BigInt>,
        sso_subject -> Nullable<Text>,
        password_login -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Integer,
        token_hash -> Text,
        user_id -> Integer,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        awaiting_second_factor -> Bool,
        first_signed_at -> Nullable<Timestamp>,
        reauthenticated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_locks (id) {
        id -> Integer,
        user_id -> Integer,
        client -> Nullable<Text>,
        locked_at -> Timestamp,
        locked_until -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Integer,
        user_id -> Integer,
        code_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Integer,
        user_id -> Integer,
        name -> Text,
        token_hash -> Text,
        token_prefix -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        scope -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    studies (id) {
        id -> Integer,
        code -> Text,
        title -> Text,
        indication -> Text,
        biomarker -> Text,
        study_type -> Text,
        protocol_version -> Text,
        description -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        require_mfa -> Bool,
    }
}

diesel::table! {
    sites (id) {
        id -> Integer,
        study_id -> Integer,
        code -> Text,
        name -> Text,
        country -> Text,
        irb_reference -> Text,
        irb_approval_date -> Nullable<Date>,
        retired_at -> Nullable<Timestamp>,
        retired_reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    study_members (id) {
        id -> Integer,
        study_id -> Integer,
        user_id -> Integer,
        role -> Text,
        retired_at -> Nullable<Timestamp>,
        retired_reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Integer,
        chain -> Text,
        seq -> BigInt,
        study_id -> Nullable<Integer>,
        at -> Text,
        actor -> Text,
        action -> Text,
        entity -> Text,
        entity_id -> Text,
        old_value -> Nullable<Text>,
        new_value -> Nullable<Text>,
        reason -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_heads (chain) {
        chain -> Text,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> Integer,
        study_id -> Nullable<Integer>,
        kind -> Text,
        params -> Text,
        owner -> Text,
        status -> Text,
        progress_done -> BigInt,
        progress_total -> BigInt,
        message -> Text,
        checkpoint -> Nullable<Text>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        attempts -> Integer,
        max_attempts -> Integer,
        worker -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamp>,
        cancel_requested -> Bool,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_items (id) {
        id -> Integer,
        job_id -> Integer,
        item -> Integer,
        status -> Text,
        worker -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamp>,
        attempts -> Integer,
        error -> Nullable<Text>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(job_items -> jobs (job_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(login_locks -> users (user_id));
diesel::joinable!(sites -> studies (study_id));
diesel::joinable!(study_members -> studies (study_id));
diesel::joinable!(study_members -> users (user_id));
diesel::joinable!(jobs -> studies (study_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    login_locks,
    recovery_codes,
    api_tokens,
    studies,
    sites,
    study_members,
    audit_events,
    audit_heads,
    jobs,
    job_items,
    dictionary_fields,
    cases,
    case_imports,
    slides,
    slide_ingests,
    annotation_schemas,
    campaigns,
    reads,
    adjudications,
    models,
    biomarker_runs,
    biomarker_results,
    analysis_plans,
    saved_analyses,
    study_locks,
    study_signatures,
    quality_rules,
    quality_findings,
    queries,
    query_messages,
    verifications,
    monitoring_plans,
    study_designs,
    case_records,
    member_sites,
);

diesel::table! {
    dictionary_fields (id) {
        id -> Integer,
        study_id -> Integer,
        position -> Integer,
        name -> Text,
        form_name -> Text,
        section_header -> Text,
        field_type -> Text,
        label -> Text,
        choices -> Text,
        field_note -> Text,
        validation -> Text,
        validation_min -> Text,
        validation_max -> Text,
        identifier -> Bool,
        branching_logic -> Text,
        required -> Bool,
        extra -> Text,
        deid_action -> Text,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    cases (id) {
        id -> Integer,
        study_id -> Integer,
        site_id -> Integer,
        subject_key -> Text,
        display_id -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        status_date -> Nullable<Date>,
        data -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        form_status -> Nullable<Text>,
    }
}

diesel::table! {
    case_imports (id) {
        id -> Integer,
        study_id -> Integer,
        actor -> Text,
        file_sha256 -> Text,
        file_size -> BigInt,
        encoding -> Text,
        rows_read -> Integer,
        rows_created -> Integer,
        rows_updated -> Integer,
        rows_unchanged -> Integer,
        report -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(dictionary_fields -> studies (study_id));
diesel::joinable!(cases -> studies (study_id));
diesel::joinable!(cases -> sites (site_id));
diesel::joinable!(case_imports -> studies (study_id));

diesel::table! {
    slides (id) {
        id -> Integer,
        study_id -> Integer,
        case_id -> Integer,
        label -> Text,
        stain -> Text,
        attributes -> Text,
        sha256 -> Text,
        source_sha256 -> Text,
        file_size -> BigInt,
        format -> Text,
        width -> BigInt,
        height -> BigInt,
        info -> Text,
        mpp_x -> Nullable<Double>,
        mpp_y -> Nullable<Double>,
        status -> Text,
        status_reason -> Nullable<Text>,
        ingest_id -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    slide_ingests (id) {
        id -> Integer,
        study_id -> Integer,
        actor -> Text,
        job_id -> Nullable<Integer>,
        files_total -> Integer,
        files_ingested -> Integer,
        files_skipped -> Integer,
        files_failed -> Integer,
        report -> Text,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(slides -> studies (study_id));
diesel::joinable!(slides -> cases (case_id));
diesel::joinable!(slide_ingests -> studies (study_id));

diesel::table! {
    annotation_schemas (id) {
        id -> Integer,
        study_id -> Integer,
        version -> Integer,
        definition -> Text,
        reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Integer,
        study_id -> Integer,
        name -> Text,
        parent_id -> Nullable<Integer>,
        washout_days -> Integer,
        blind_case_data -> Bool,
        case_fields -> Text,
        seed -> BigInt,
        tolerances -> Text,
        adjudicator_id -> Nullable<Integer>,
        status -> Text,
        status_reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        ai_run_id -> Nullable<Integer>,
        purpose -> Nullable<Text>,
    }
}

diesel::table! {
    reads (id) {
        id -> Integer,
        campaign_id -> Integer,
        slide_id -> Integer,
        reader_id -> Integer,
        position -> Integer,
        status -> Text,
        withdrawn_reason -> Nullable<Text>,
        schema_version -> Nullable<Integer>,
        field_values -> Text,
        regions -> Text,
        region_count -> Integer,
        started_at -> Nullable<Timestamp>,
        submitted_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        assistance -> Text,
    }
}

diesel::table! {
    adjudications (id) {
        id -> Integer,
        campaign_id -> Integer,
        slide_id -> Integer,
        field -> Text,
        value -> Text,
        reads_values -> Text,
        adjudicator -> Text,
        note -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(annotation_schemas -> studies (study_id));
diesel::joinable!(campaigns -> studies (study_id));
diesel::joinable!(reads -> campaigns (campaign_id));
diesel::joinable!(reads -> slides (slide_id));
diesel::joinable!(reads -> users (reader_id));
diesel::joinable!(adjudications -> campaigns (campaign_id));

diesel::table! {
    models (id) {
        id -> Integer,
        name -> Text,
        version -> Text,
        sha256 -> Text,
        file_size -> BigInt,
        card -> Text,
        checked_backend -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        registered_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    biomarker_runs (id) {
        id -> Integer,
        study_id -> Integer,
        model_id -> Integer,
        model_sha256 -> Text,
        backend -> Nullable<Text>,
        params -> Text,
        slide_ids -> Text,
        job_id -> Nullable<Integer>,
        created_by -> Text,
        created_at -> Timestamp,
        provider -> Nullable<Text>,
    }
}

diesel::table! {
    biomarker_results (id) {
        id -> Integer,
        run_id -> Integer,
        slide_id -> Integer,
        status -> Text,
        reason -> Nullable<Text>,
        phenotype -> Nullable<Text>,
        inflamed_share -> Nullable<Double>,
        excluded_share -> Nullable<Double>,
        desert_share -> Nullable<Double>,
        itil_density_median -> Nullable<Double>,
        stil_density_median -> Nullable<Double>,
        grid_cells_scored -> Nullable<Integer>,
        tiles -> Nullable<Integer>,
        flags -> Text,
        cells -> Text,
        seconds -> Double,
        created_at -> Timestamp,
        provider -> Nullable<Text>,
    }
}

diesel::joinable!(biomarker_runs -> models (model_id));
diesel::joinable!(biomarker_results -> biomarker_runs (run_id));
diesel::joinable!(biomarker_results -> slides (slide_id));

diesel::table! {
    analysis_plans (id) {
        id -> Integer,
        study_id -> Integer,
        version -> Integer,
        items -> Text,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        signed_by -> Nullable<Text>,
        signed_name -> Nullable<Text>,
        signed_meaning -> Nullable<Text>,
        signed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    saved_analyses (id) {
        id -> Integer,
        study_id -> Integer,
        title -> Text,
        analysis -> Text,
        query -> Text,
        plan_id -> Nullable<Integer>,
        plan_item -> Nullable<Text>,
        input_sha256 -> Text,
        input_rows -> Integer,
        result -> Text,
        plot_svg -> Text,
        software_version -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        superseded_by -> Nullable<Integer>,
    }
}

diesel::joinable!(analysis_plans -> studies (study_id));
diesel::joinable!(saved_analyses -> studies (study_id));

diesel::table! {
    study_locks (id) {
        id -> Integer,
        study_id -> Integer,
        snapshot_sha256 -> Text,
        row_counts -> Text,
        locked_by -> Text,
        locked_at -> Timestamp,
        unlocked_by -> Nullable<Text>,
        unlocked_at -> Nullable<Timestamp>,
        unlock_reason -> Nullable<Text>,
        snapshot_version -> Integer,
        legacy_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    study_signatures (id) {
        id -> Integer,
        lock_id -> Integer,
        study_id -> Integer,
        username -> Text,
        full_name -> Text,
        role -> Text,
        meaning -> Text,
        snapshot_sha256 -> Text,
        signed_at -> Timestamp,
        voided_at -> Nullable<Timestamp>,
        void_reason -> Nullable<Text>,
    }
}

diesel::joinable!(study_locks -> studies (study_id));
diesel::joinable!(study_signatures -> study_locks (lock_id));
diesel::joinable!(adjudications -> slides (slide_id));
diesel::joinable!(audit_events -> studies (study_id));
diesel::joinable!(biomarker_runs -> jobs (job_id));
diesel::joinable!(biomarker_runs -> studies (study_id));
diesel::joinable!(campaigns -> biomarker_runs (ai_run_id));
diesel::joinable!(campaigns -> users (adjudicator_id));
diesel::joinable!(saved_analyses -> analysis_plans (plan_id));
diesel::joinable!(slide_ingests -> jobs (job_id));
diesel::joinable!(slides -> slide_ingests (ingest_id));
diesel::joinable!(study_signatures -> studies (study_id));

diesel::table! {
    case_versions (study_id) {
        study_id -> Integer,
        version -> BigInt,
    }
}

diesel::joinable!(case_versions -> studies (study_id));

diesel::table! {
    key_fingerprints (name) {
        name -> Text,
        fingerprint -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    quality_rules (id) {
        id -> Integer,
        study_id -> Integer,
        code -> Text,
        name -> Text,
        logic -> Text,
        severity -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    quality_findings (id) {
        id -> Integer,
        study_id -> Integer,
        rule_code -> Text,
        case_id -> Integer,
        event -> Text,
        instance -> Integer,
        field -> Text,
        value -> Text,
        severity -> Text,
        detail -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        status_by -> Nullable<Text>,
        status_at -> Nullable<Timestamp>,
        first_found_at -> Timestamp,
        last_found_at -> Timestamp,
    }
}

diesel::joinable!(quality_rules -> studies (study_id));
diesel::joinable!(quality_findings -> studies (study_id));
diesel::joinable!(quality_findings -> cases (case_id));

diesel::table! {
    queries (id) {
        id -> Integer,
        study_id -> Integer,
        case_id -> Integer,
        event -> Text,
        instance -> Integer,
        field -> Text,
        finding_id -> Nullable<Integer>,
        status -> Text,
        requires_change -> Bool,
        value_at_open -> Text,
        opened_by -> Text,
        opened_at -> Timestamp,
        updated_at -> Timestamp,
        closed_by -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    query_messages (id) {
        id -> Integer,
        query_id -> Integer,
        step -> Text,
        body -> Text,
        value -> Nullable<Text>,
        actor -> Text,
        at -> Timestamp,
    }
}

diesel::joinable!(queries -> studies (study_id));
diesel::joinable!(queries -> cases (case_id));
diesel::joinable!(queries -> quality_findings (finding_id));
diesel::joinable!(query_messages -> queries (query_id));

diesel::table! {
    verifications (id) {
        id -> Integer,
        study_id -> Integer,
        case_id -> Integer,
        event -> Text,
        form -> Text,
        status -> Text,
        verified_by -> Text,
        verified_at -> Timestamp,
        cleared_by -> Nullable<Text>,
        cleared_at -> Nullable<Timestamp>,
        cleared_reason -> Nullable<Text>,
    }
}

diesel::table! {
    monitoring_plans (study_id) {
        study_id -> Integer,
        sdv -> Text,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(verifications -> studies (study_id));
diesel::joinable!(verifications -> cases (case_id));
diesel::joinable!(monitoring_plans -> studies (study_id));

diesel::table! {
    study_designs (id) {
        id -> Integer,
        study_id -> Integer,
        design -> Text,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    case_records (id) {
        id -> Integer,
        study_id -> Integer,
        case_id -> Integer,
        event -> Text,
        instrument -> Text,
        instance -> Integer,
        data -> Text,
        form_status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(case_records -> cases (case_id));
diesel::joinable!(case_records -> studies (study_id));
diesel::joinable!(study_designs -> studies (study_id));

diesel::table! {
    member_sites (id) {
        id -> Integer,
        member_id -> Integer,
        site_id -> Integer,
    }
}

diesel::joinable!(member_sites -> study_members (member_id));
diesel::joinable!(member_sites -> sites (site_id));
