//! The `evidentia` command line: the server, the demo, and admin tasks. Every command calls the
//! same domain functions as the web pages.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use evidentia::auth::permissions::study_access;
use evidentia::auth::{passwords, users, Actor};
use evidentia::config::Config;
use evidentia::db::paging::PageRequest;
use evidentia::error::Error;
use evidentia::startup::{self, Application};
use evidentia::studies::{self, members, sites};
use evidentia::{audit, backup, demo, jobs, telemetry};

#[derive(Parser)]
#[command(
    name = "evidentia",
    version,
    about = "Clinical studies of AI pathology biomarkers, from cases to the signed dossier"
)]
struct Cli {
    /// Data directory (database, slides, models, exports).
    #[arg(long, global = true, env = "EVIDENTIA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Act as this user (their roles are checked); without it, the local operator with admin rights.
    #[arg(long = "as", global = true)]
    as_user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (and job workers).
    Serve(ServeArgs),
    /// Seed a demo data dir (users for every role, a study with sites), then serve it.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed and exit.
        #[arg(long)]
        seed_only: bool,
        /// Synthetic slides drawn for the demo's first subjects (0 for none).
        #[arg(long, default_value_t = 24)]
        slides: usize,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run job workers only (no web server).
    Worker {
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Write a backup archive (database + data dir files) while the server runs.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup archive into a new or empty --data-dir.
    Restore { file: PathBuf },
    /// User accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Studies, sites and members.
    #[command(subcommand)]
    Study(StudyCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// A study's data dictionary (REDCap CSV).
    #[command(subcommand)]
    Dictionary(DictionaryCmd),
    /// Case data: de-identified import and export.
    #[command(subcommand)]
    Cases(CasesCmd),
    /// Whole-slide images: inspect, read regions, de-identified ingest, list.
    #[command(subcommand)]
    Slides(SlidesCmd),
    /// Reader annotations: QuPath GeoJSON import, CSV / GeoJSON export of reads.
    #[command(subcommand)]
    Annotations(AnnotationsCmd),
    /// The model registry: ONNX models with their model cards (administrators).
    #[command(subcommand)]
    Model(ModelCmd),
    /// The AI biomarker (tumour-immune phenotype) on slides.
    #[command(subcommand)]
    Biomarker(BiomarkerCmd),
    /// Synthetic data for demos, tests, training and benchmarks.
    #[command(subcommand)]
    Synth(SynthCmd),
    /// Statistics on any CSV file: one JSON object on stdout (the dossier's numbers, re-computable).
    Stats(StatsArgs),
    /// The evidence dossier of a locked, signed study: export and verify.
    #[command(subcommand)]
    Dossier(DossierCmd),
}

#[derive(Subcommand)]
enum DossierCmd {
    /// Write the dossier zip (deterministic: the same study gives the same bytes).
    Export {
        #[arg(long)]
        study: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a dossier: manifest signature, every file's hash, the signatures' snapshot, and every
    /// statistic re-computed from its datasets. Exit 1 naming each file that fails.
    Verify {
        file: PathBuf,
        /// The installation's public key (hex), as printed by `export` and served at
        /// /api/v1/signing-key; without it, the key in the manifest (integrity, not origin).
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Args)]
struct StatsArgs {
    #[command(subcommand)]
    analysis: StatsCmd,
    /// The CSV file (header row; comma-separated).
    #[arg(long, global = true)]
    input: Option<PathBuf>,
    /// Confidence level of every interval, a proportion in (0, 1).
    #[arg(long, global = true, default_value_t = 0.95)]
    level: f64,
}

/// Column names separated by commas.
fn comma_list(s: &str) -> Vec<String> {
    s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

#[derive(Subcommand)]
enum StatsCmd {
    /// Cohen's kappa between two raters.
    Kappa {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        #[arg(long, value_enum, default_value = "none")]
        weights: WeightsArg,
    },
    /// Fleiss' kappa for several raters (one column per rater).
    Fleiss {
        /// Rater columns, separated by commas.
        #[arg(long)]
        raters: String,
    },
    /// The six Shrout & Fleiss intraclass correlations (one column per rater).
    Icc {
        /// Rater columns, separated by commas.
        #[arg(long)]
        raters: String,
    },
    /// Sensitivity, specificity, PPV, NPV, accuracy (and PPA/NPA/OPA) of a test against a reference.
    Diagnostic {
        #[arg(long)]
        test: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
        /// The test is numeric and value >= X is positive.
        #[arg(long)]
        test_cutoff: Option<f64>,
        /// The reference is numeric and value >= X is positive.
        #[arg(long)]
        reference_cutoff: Option<f64>,
    },
    /// ROC curve: AUC with DeLong SE and CI, Youden cut-off.
    Roc {
        #[arg(long)]
        score: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
    },
    /// DeLong's test of two paired AUCs.
    RocCompare {
        #[arg(long)]
        score_a: String,
        #[arg(long)]
        score_b: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
    },
    /// Kaplan-Meier medians; with --group the log-rank test and Cox hazard ratios.
    Survival {
        #[arg(long)]
        time: String,
        #[arg(long)]
        event: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        reference_group: Option<String>,
    },
    /// Cox proportional hazards with numeric covariates (Efron ties).
    Cox {
        #[arg(long)]
        time: String,
        #[arg(long)]
        event: String,
        /// Numeric covariate columns, separated by commas.
        #[arg(long)]
        covariates: String,
    },
    /// Bland-Altman bias and limits, Pearson, Spearman, Lin's CCC.
    BlandAltman {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
    },
    /// Baseline characteristics ("Table 1") by group.
    Table1 {
        #[arg(long)]
        group: String,
        /// Continuous variables, separated by commas.
        #[arg(long)]
        continuous: Option<String>,
        /// Categorical variables, separated by commas.
        #[arg(long)]
        categorical: Option<String>,
    },
    /// Agreement of two paired reads (e.g. unaided and AI-assisted) with a reference.
    PairedAgreement {
        #[arg(long)]
        reference: String,
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WeightsArg {
    None,
    Linear,
    Quadratic,
}

impl From<StatsCmd> for evidentia::stats::analysis::Analysis {
    fn from(cmd: StatsCmd) -> Self {
        use evidentia::stats::agreement::Weights;
        use evidentia::stats::analysis::Analysis as A;
        match cmd {
            StatsCmd::Kappa { a, b, weights } => A::Kappa {
                a,
                b,
                weights: match weights {
                    WeightsArg::None => Weights::None,
                    WeightsArg::Linear => Weights::Linear,
                    WeightsArg::Quadratic => Weights::Quadratic,
                },
            },
            StatsCmd::Fleiss { raters } => A::Fleiss { raters: comma_list(&raters) },
            StatsCmd::Icc { raters } => A::Icc { raters: comma_list(&raters) },
            StatsCmd::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff } => {
                A::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff }
            }
            StatsCmd::Roc { score, reference, positive } => A::Roc { score, reference, positive },
            StatsCmd::RocCompare { score_a, score_b, reference, positive } => {
                A::RocCompare { score_a, score_b, reference, positive }
            }
            StatsCmd::Survival { time, event, group, reference_group } => {
                A::Survival { time, event, group, reference_group }
            }
            StatsCmd::Cox { time, event, covariates } => A::Cox { time, event, covariates: comma_list(&covariates) },
            StatsCmd::BlandAltman { a, b } => A::BlandAltman { a, b },
            StatsCmd::Table1 { group, continuous, categorical } => A::Table1 {
                group,
                continuous: continuous.as_deref().map(comma_list).unwrap_or_default(),
                categorical: categorical.as_deref().map(comma_list).unwrap_or_default(),
            },
            StatsCmd::PairedAgreement { reference, a, b } => A::PairedAgreement { reference, a, b },
        }
    }
}

#[derive(Subcommand)]
enum BiomarkerCmd {
    /// Run a registered model over a study's slides (enrolled cases, not excluded; optionally one
    /// site or stain) as a job with progress here; results per slide as CSV on stdout.
    Run {
        #[arg(long)]
        study: String,
        /// NAME@VERSION of a registered, active model.
        #[arg(long)]
        model: String,
        #[arg(long, default_value = "")]
        site: String,
        #[arg(long, default_value = "")]
        stain: String,
    },
    /// Compare two runs of a study (change control): phenotype agreement (confusion matrix, percent
    /// agreement, Cohen's kappa) and per slide what changed; CSV of the slides on stdout.
    Compare {
        #[arg(long)]
        study: String,
        /// Run A (rows of the matrix), e.g. the current model's run.
        a: i32,
        /// Run B (columns), e.g. the candidate model's run.
        b: i32,
        /// Print the whole comparison as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a registered model on one slide file (no study): phenotype, shares, densities, flags.
    RunFile {
        slide: PathBuf,
        /// NAME@VERSION of a registered model.
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Register an ONNX model with its model card (JSON): it must load on this machine's backend
    /// and its inputs and outputs must match the card. Versions never change.
    Register {
        file: PathBuf,
        #[arg(long)]
        card: PathBuf,
    },
    /// List registered models.
    List,
    /// Retire NAME@VERSION (it stays, with its runs; no new run uses it).
    Retire {
        key: String,
        #[arg(long)]
        reason: String,
    },
    /// Load a model with its card and run the check batch on this machine's backend (or the one
    /// EVIDENTIA_INFERENCE_BACKEND forces); print the backend and a summary of each output.
    Check {
        file: PathBuf,
        #[arg(long)]
        card: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AnnotationsCmd {
    /// Add the regions of a QuPath GeoJSON file to a reader's read of a slide (their open read, or
    /// the one in --campaign). All or nothing: a bad file names the feature and changes nothing.
    Import {
        #[arg(long)]
        study: String,
        #[arg(long)]
        slide: String,
        #[arg(long)]
        reader: String,
        #[arg(long)]
        campaign: Option<String>,
        /// Check the file against the slide and the schema and say what would be added; change nothing.
        #[arg(long)]
        dry_run: bool,
        file: PathBuf,
    },
    /// Export every read of a study: `reads.csv` (one row per read with every slide-level field)
    /// or one GeoJSON file per slide per reader (`<campaign>/<slide>/<reader>.geojson`).
    Export {
        #[arg(long)]
        study: String,
        #[arg(long, value_parser = ["csv", "geojson"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum SlidesCmd {
    /// Print a slide's format, size, levels, resolution and associated images.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a region as PNG (x, y in level-0 pixels; width, height in pixels of the level).
    Region {
        file: PathBuf,
        #[arg(long, default_value_t = 0)]
        level: usize,
        #[arg(long)]
        x: i64,
        #[arg(long)]
        y: i64,
        #[arg(long)]
        width: u32,
        #[arg(long)]
        height: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// De-identify and ingest the slides a manifest names (columns file, subject_id, stain;
    /// optional site, block, scanner, …) from files or folders on this machine.
    Ingest {
        #[arg(long)]
        study: String,
        #[arg(long)]
        manifest: PathBuf,
        /// The site of every row, for a manifest without a `site` column.
        #[arg(long)]
        site: Option<String>,
        /// Slide files or folders (searched recursively); default: the manifest's folder.
        paths: Vec<PathBuf>,
    },
    /// List a study's slides.
    List {
        #[arg(long)]
        study: String,
    },
}

#[derive(Subcommand)]
enum SynthCmd {
    /// Write synthetic H&E slides (pyramidal JPEG TIFF, Aperio style, with a fake label and
    /// metadata) and their ground truth.
    Slides {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        n: usize,
        /// inflamed, excluded, desert or mixed
        #[arg(long, default_value = "mixed")]
        phenotype: String,
        /// WIDTHxHEIGHT in pixels
        #[arg(long, default_value = "8000x6000")]
        size: String,
        #[arg(long, default_value_t = 0.5)]
        mpp: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write each slide's tissue classes (0 glass, 1 stroma, 2 epithelium) as
        /// `<name>.classes.pgm`, one value per N×N level-0 pixels (training labels).
        #[arg(long, value_name = "N")]
        class_map_step: Option<u32>,
    },
}

#[derive(Subcommand)]
enum DictionaryCmd {
    /// Import a REDCap data dictionary (fields added or updated by name, missing ones retired).
    Import {
        #[arg(long)]
        study: String,
        file: PathBuf,
        /// Show what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go ahead even if stored values no longer validate (they are listed).
        #[arg(long)]
        accept_invalidated: bool,
    },
    Export {
        #[arg(long)]
        study: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum CasesCmd {
    /// Import a site spreadsheet: validated and de-identified before anything is stored; all or nothing.
    Import {
        #[arg(long)]
        study: String,
        file: PathBuf,
        /// Check and de-identify, print the report, store nothing.
        #[arg(long)]
        dry_run: bool,
        /// utf-8, cp949 (euc-kr) or latin-1; detected when absent.
        #[arg(long)]
        encoding: Option<String>,
        /// The site of every row, for a file without a `site` column.
        #[arg(long)]
        site: Option<String>,
    },
    /// Export the de-identified case dataset.
    Export {
        #[arg(long)]
        study: String,
        #[arg(long)]
        out: PathBuf,
        /// Choice labels instead of raw codes.
        #[arg(long)]
        labels: bool,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EVIDENTIA_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Job worker threads inside the server.
    #[arg(long, env = "EVIDENTIA_JOB_WORKERS", default_value_t = 2)]
    job_workers: usize,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        full_name: String,
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (else one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    Deactivate {
        username: String,
    },
    Reactivate {
        username: String,
    },
    Unlock {
        username: String,
    },
    /// Set a new password (generated and printed, or read with --password-stdin).
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum StudyCmd {
    Create {
        #[arg(long)]
        code: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        indication: String,
        #[arg(long, default_value = "")]
        biomarker: String,
        /// retrospective, prospective or reader_study
        #[arg(long, default_value = "retrospective")]
        study_type: String,
        #[arg(long, default_value = "")]
        protocol_version: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        /// Include archived studies.
        #[arg(long)]
        archived: bool,
    },
    AddSite {
        #[arg(long)]
        study: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        country: String,
        #[arg(long, default_value = "")]
        irb_reference: String,
        /// YYYY-MM-DD
        #[arg(long, default_value = "")]
        irb_approval_date: String,
    },
    AddMember {
        #[arg(long)]
        study: String,
        #[arg(long)]
        username: String,
        /// manager, annotator, statistician or monitor
        #[arg(long)]
        role: String,
    },
    /// Lock an active study: freezes it and records the SHA-256 of its data's snapshot.
    Lock {
        #[arg(long)]
        study: String,
        /// Required (administrators) when the pre-lock checklist has open items.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Sign a locked study (electronic signature): the user's password on stdin.
    Sign {
        #[arg(long)]
        study: String,
        #[arg(long)]
        username: String,
        /// authorship, review, approval or responsibility.
        #[arg(long)]
        meaning: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Unlock a locked study (administrators, with a reason): voids its signatures.
    Unlock {
        #[arg(long)]
        study: String,
        #[arg(long)]
        reason: String,
    },
    /// Move a study along draft → active → locked → archived (unlock: --to active, admin, --reason).
    SetStatus {
        #[arg(long)]
        study: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute every hash chain; exit 1 naming the first broken event.
    Verify,
    /// Export a study's audit trail (or, without --study, every chain) as CSV.
    Export {
        #[arg(long)]
        study: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A failed command: bad input exits 2, anything else 1.
enum Failure {
    Input(String),
    Other(String),
}

impl Failure {
    /// Prefixes the message with what it is about (a file name).
    fn context(self, what: &str) -> Failure {
        match self {
            Failure::Input(m) => Failure::Input(format!("{what}: {m}")),
            Failure::Other(m) => Failure::Other(format!("{what}: {m}")),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        if e.is_user_error() {
            Failure::Input(e.to_string())
        } else {
            Failure::Other(e.to_string())
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(format!("{e:#}"))
    }
}

type CliResult = Result<(), Failure>;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Other(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

fn config_for(data_dir: PathBuf, serve: Option<&ServeArgs>) -> Config {
    let bind = serve.map(|s| s.bind.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let mut cfg = Config::from_env(bind, data_dir);
    if let Some(s) = serve {
        cfg.job_workers = s.job_workers;
    }
    cfg
}

fn run(cli: Cli) -> CliResult {
    let default_dir = match &cli.command {
        Command::Demo { .. } => PathBuf::from("demo-data"),
        _ => PathBuf::from("data"),
    };
    let data_dir = cli.data_dir.clone().unwrap_or(default_dir);
    match cli.command {
        Command::Serve(args) => serve(config_for(data_dir, Some(&args)), None),
        Command::Demo { serve: args, seed_only, slides } => {
            let cfg = config_for(data_dir, Some(&args));
            let pool = startup::open_database(&cfg)?;
            let mut created = demo::seed(&mut *pool.get().map_err(Error::from)?, &cfg.data_dir)?;
            if slides > 0 {
                created.extend(demo::seed_locked_study_cases(&mut *pool.get().map_err(Error::from)?, &cfg.data_dir)?);
            }
            // The working study with `slides` slides, then the locked one with up to 12.
            for (study, count) in [(&demo::FIRST, slides), (&demo::LOCKED, slides.min(demo::LOCKED_SLIDES))] {
                if count == 0 {
                    continue;
                }
                created.extend(demo::slides::seed_slides(
                    &mut *pool.get().map_err(Error::from)?,
                    &cfg.data_dir,
                    study,
                    count,
                    &mut |done, total| {
                        if done < total {
                            eprint!("\rdrawing demo slide {}/{total} of {}…", done + 1, study.code);
                        } else {
                            eprintln!("\rdrew {total} demo slides of {}.          ", study.code);
                        }
                    },
                )?);
                if let Some((run, job)) = demo::runs::start_run(&mut *pool.get().map_err(Error::from)?, study.code)? {
                    eprintln!("running the demonstration model on the {} slides (run {})…", study.code, run.id);
                    let summary = run_job_in_foreground(&pool, &cfg, job.id)?;
                    created.push(format!(
                        "AI run {} of {} on {} slides ({})",
                        run.id,
                        run.model(),
                        summary["slides"],
                        summary["backend"].as_str().unwrap_or("?")
                    ));
                }
                created.extend(demo::reads::seed_reads(&mut *pool.get().map_err(Error::from)?, &cfg.data_dir, study)?);
                created.extend(demo::analyses::seed_analyses(&mut *pool.get().map_err(Error::from)?, study.code)?);
            }
            if slides > 0 {
                created.extend(demo::lock::seed_lock(&mut *pool.get().map_err(Error::from)?, demo::LOCKED.code)?);
            }
            for c in &created {
                println!("seeded {c}");
            }
            drop(pool);
            if seed_only {
                println!("demo data dir: {}", cfg.data_dir.display());
                return Ok(());
            }
            serve(cfg, Some(demo::DEMO_PASSWORD))
        }
        Command::Migrate => {
            let cfg = config_for(data_dir, None);
            startup::open_database(&cfg)?;
            println!("database at {} is up to date", cfg.data_dir.join(evidentia::db::DB_FILE).display());
            Ok(())
        }
        Command::Worker { threads } => {
            let cfg = config_for(data_dir, None);
            let pool = startup::open_database(&cfg)?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            println!("running {threads} job workers on {}; Ctrl-C to stop", cfg.data_dir.display());
            for h in jobs::worker::spawn(pool, cfg, threads, stop) {
                let _ = h.join();
            }
            Ok(())
        }
        Command::Backup { out } => {
            let cfg = config_for(data_dir, None);
            let pool = startup::open_database(&cfg)?;
            let n = backup::create(&pool, &cfg.data_dir, &out)?;
            println!("backup written to {} ({n} files)", out.display());
            Ok(())
        }
        Command::Restore { file } => {
            if cli.data_dir.is_none() {
                return Err(Failure::Input("restore needs --data-dir DIR (a new or empty directory)".into()));
            }
            let n = backup::restore(&file, &data_dir).map_err(|e| Failure::Input(format!("{e:#}")))?;
            println!("restored {n} files into {}", data_dir.display());
            Ok(())
        }
        Command::User(cmd) => user_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Study(cmd) => study_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Audit(cmd) => audit_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Dictionary(cmd) => dictionary_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Cases(cmd) => cases_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Slides(cmd) => slides_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Annotations(cmd) => annotations_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Model(cmd) => model_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Biomarker(cmd) => biomarker_cmd(config_for(data_dir, None), cli.as_user, cmd),
        Command::Synth(cmd) => synth_cmd(cmd),
        Command::Stats(args) => stats_cmd(args),
        Command::Dossier(cmd) => dossier_cmd(config_for(data_dir, None), cli.as_user, cmd),
    }
}

fn dossier_cmd(cfg: Config, as_user: Option<String>, cmd: DossierCmd) -> CliResult {
    match cmd {
        DossierCmd::Export { study, out } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let e = evidentia::dossier::export(
                &mut conn,
                &actor,
                &cfg.data_dir,
                &access,
                &out,
                &mut |done, total, what| {
                    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                        eprint!("\r\x1b[Kexporting {done}/{total}: {what}");
                        if done == total {
                            eprintln!();
                        }
                    }
                    Ok(())
                },
            )?;
            println!("wrote {} ({} files, {} bytes)", out.display(), e.files, e.bytes);
            println!("manifest SHA-256 {}", e.manifest_sha256);
            println!("signing public key (Ed25519) {}", e.public_key);
            Ok(())
        }
        DossierCmd::Verify { file, public_key } => {
            let problems = evidentia::dossier::verify(&file, public_key.as_deref())
                .map_err(|e| Failure::Input(format!("{}: {e:#}", file.display())))?;
            if problems.is_empty() {
                println!("{}: the dossier holds (signature, every file, every statistic)", file.display());
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("{}: {}", p.file, p.message);
                }
                Err(Failure::Other(format!("{}: {} problem(s)", file.display(), problems.len())))
            }
        }
    }
}

/// `evidentia stats`: the contract of shared/STATS_CLI.md — one JSON object on stdout, exit 0;
/// bad input exit 2 with a one-line message naming the column and row.
fn stats_cmd(args: StatsArgs) -> CliResult {
    use evidentia::stats::{analysis, frame};
    let input = args.input.ok_or_else(|| Failure::Input("--input FILE.csv is required".into()))?;
    let level = frame::check_level(args.level).map_err(|e| Failure::Input(e.0))?;
    let df = frame::read_csv(&input).map_err(|e| Failure::Input(e.0))?;
    let outcome = analysis::run(&df, &args.analysis.into(), level).map_err(|e| Failure::Input(e.0))?;
    let text = serde_json::to_string_pretty(&outcome).map_err(|e| Failure::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn serve(cfg: Config, demo_password: Option<&str>) -> CliResult {
    let bind = cfg.bind.clone();
    let data_dir = cfg.data_dir.clone();
    let sys = actix_web::rt::System::new();
    sys.block_on(async move {
        let app = Application::build(cfg)?;
        let host = bind.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
        println!("Evidentia is serving {} at http://{host}:{}/", data_dir.display(), app.port());
        if let Some(pw) = &app.initial_admin_password {
            println!("First start: created user 'admin' with password  {pw}  (shown once; change it under My account)");
        }
        if let Some(pw) = demo_password {
            println!("Demo users (password '{pw}'):");
            for (u, name, _, role) in demo::DEMO_USERS {
                println!("  {u:<13} {name:<22} {}", role.unwrap_or("administrator"));
            }
        }
        app.run_until_stopped().await.map_err(|e| Failure::Other(e.to_string()))
    })
}

fn open(cfg: &Config, as_user: Option<String>) -> Result<(evidentia::db::PooledConn, Actor), Failure> {
    let pool = startup::open_database(cfg)?;
    let mut conn = pool.get().map_err(Error::from)?;
    let actor = match as_user {
        Some(u) => users::actor_for_username(&mut conn, &u)?,
        None => Actor::cli_operator(),
    };
    Ok((conn, actor))
}

fn read_password_stdin() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Input(format!("reading stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn user_cmd(cfg: Config, as_user: Option<String>, cmd: UserCmd) -> CliResult {
    let (mut conn, actor) = open(&cfg, as_user)?;
    let find = |conn: &mut evidentia::db::Conn, name: &str| -> Result<users::User, Failure> {
        users::find_by_username(conn, name)?.ok_or_else(|| Failure::Input(format!("no user '{name}'")))
    };
    match cmd {
        UserCmd::Add { username, full_name, admin, password_stdin } => {
            if !actor.is_admin {
                return Err(Error::forbidden("only administrators create users").into());
            }
            let (pw, show) =
                if password_stdin { (read_password_stdin()?, false) } else { (passwords::generate(), true) };
            passwords::check_policy("password", &pw)?;
            let input = users::NewUserInput { username, full_name, is_admin: admin };
            let u = users::create(&mut conn, &actor, &input, &passwords::hash(&pw)?)?;
            println!("created user {}", u.username);
            if show {
                println!("password: {pw}");
            }
        }
        UserCmd::List => {
            let t = evidentia::db::now();
            for u in users::list(&mut conn, "", PageRequest::all())?.items {
                let state = if !u.active {
                    "deactivated"
                } else if u.is_locked(t) {
                    "locked"
                } else {
                    "active"
                };
                println!("{:<20} {:<30} {:<6} {state}", u.username, u.full_name, if u.is_admin { "admin" } else { "" });
            }
        }
        UserCmd::Deactivate { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Deactivate)?;
            println!("{username} deactivated");
        }
        UserCmd::Reactivate { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Reactivate)?;
            println!("{username} reactivated");
        }
        UserCmd::Unlock { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Unlock)?;
            println!("{username} unlocked");
        }
        UserCmd::ResetPassword { username, password_stdin } => {
            let u = find(&mut conn, &username)?;
            let (pw, show) =
                if password_stdin { (read_password_stdin()?, false) } else { (passwords::generate(), true) };
            passwords::check_policy("password", &pw)?;
            users::set_password(&mut conn, &actor, u.id, &passwords::hash(&pw)?, true)?;
            println!("password of {username} reset");
            if show {
                println!("password: {pw}");
            }
        }
    }
    Ok(())
}

fn study_cmd(cfg: Config, as_user: Option<String>, cmd: StudyCmd) -> CliResult {
    let (mut conn, actor) = open(&cfg, as_user)?;
    match cmd {
        StudyCmd::Create { code, title, indication, biomarker, study_type, protocol_version, description } => {
            let input =
                studies::StudyInput { code, title, indication, biomarker, study_type, protocol_version, description };
            let s = studies::create(&mut conn, &actor, &input)?;
            println!("created study {} (draft)", s.code);
        }
        StudyCmd::List { archived } => {
            let q = studies::StudyListQuery { archived: archived.then(|| "1".to_string()), ..Default::default() };
            for s in studies::list_visible(&mut conn, &actor, &q, PageRequest::all())?.items {
                println!("{:<16} {:<9} {}", s.code, s.status, s.title);
            }
        }
        StudyCmd::AddSite { study, code, name, country, irb_reference, irb_approval_date } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let input = sites::SiteInput { code, name, country, irb_reference, irb_approval_date };
            let s = sites::add(&mut conn, &actor, &access, &input)?;
            println!("added site {} to {}", s.code, access.study.code);
        }
        StudyCmd::AddMember { study, username, role } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let m = members::add(&mut conn, &actor, &access, &username, &role)?;
            println!("added {} to {} as {}", m.username, access.study.code, m.role);
        }
        StudyCmd::Lock { study, reason } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            for c in studies::lock::checklist(&mut conn, access.study.id)? {
                eprintln!("[{}] {} — {}", if c.ok { "x" } else { " " }, c.label, c.detail);
            }
            let s = studies::transition(&mut conn, &actor, &access, "locked", &reason)?;
            print_lock_state(&mut conn, &s)?;
        }
        StudyCmd::Sign { study, username, meaning, password_stdin } => {
            if !password_stdin {
                return Err(Failure::Input("give the password on stdin with --password-stdin".into()));
            }
            let password = read_password_stdin()?;
            let signer = users::actor_for_username(&mut conn, &username)?;
            let access = study_access(&mut conn, &signer, &study.to_uppercase())?;
            let sig = studies::lock::sign(&mut conn, &signer, &access, &password, &meaning)?;
            println!("signed by {} ({}) for {} at {} UTC", sig.full_name, sig.role, sig.meaning, sig.signed_at);
            let s = studies::get_by_code(&mut conn, &access.study.code)?;
            print_lock_state(&mut conn, &s)?;
        }
        StudyCmd::Unlock { study, reason } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let s = studies::transition(&mut conn, &actor, &access, "active", &reason)?;
            println!("{} is unlocked (active); its signatures are void", s.code);
        }
        StudyCmd::SetStatus { study, to, reason } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let s = studies::transition(&mut conn, &actor, &access, &to, &reason)?;
            println!("{} is now {}", s.code, s.status);
        }
    }
    Ok(())
}

/// "LUNG-IO-01 locked — awaiting 1 of 2 signatures (snapshot …)".
fn print_lock_state(conn: &mut evidentia::db::Conn, study: &studies::Study) -> CliResult {
    match studies::lock::state(conn, study.id)? {
        Some(s) => println!("{} {} (snapshot SHA-256 {})", study.code, s.label(), s.lock.snapshot_sha256),
        None => println!("{} is {}", study.code, study.status),
    }
    Ok(())
}

fn audit_cmd(cfg: Config, as_user: Option<String>, cmd: AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify => {
            let pool = startup::open_database(&cfg)?;
            let actor = match as_user {
                Some(u) => users::actor_for_username(&mut *pool.get().map_err(Error::from)?, &u)?,
                None => Actor::cli_operator(),
            };
            // Run as a job in this process, with the job's progress drawn in the terminal.
            let job = jobs::enqueue(&mut *pool.get().map_err(Error::from)?, &actor, None, audit::job::KIND, json!({}))?;
            let result = run_job_in_foreground(&pool, &cfg, job.id)?;
            let reports: Vec<audit::verify::ChainReport> =
                serde_json::from_value(result["chains"].clone()).map_err(|e| Failure::Other(e.to_string()))?;
            let mut broken = None;
            for r in &reports {
                match &r.broken {
                    None => println!("ok      {:<24} {} events", r.chain, r.events),
                    Some(b) => {
                        println!(
                            "BROKEN  {:<24} at event #{} (seq {}): {}",
                            r.chain,
                            b.event_id.map(|i| i.to_string()).unwrap_or("-".into()),
                            b.seq,
                            b.problem
                        );
                        broken.get_or_insert_with(|| {
                            format!("chain {} is broken at seq {}: {}", r.chain, b.seq, b.problem)
                        });
                    }
                }
            }
            match broken {
                None => Ok(()),
                Some(m) => Err(Failure::Other(m)),
            }
        }
        AuditCmd::Export { study, out } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let study_id = match &study {
                Some(code) => {
                    let access = study_access(&mut conn, &actor, &code.to_uppercase())?;
                    access.require(evidentia::auth::permissions::Permission::ViewAudit)?;
                    Some(access.study.id)
                }
                None if actor.is_admin => None,
                None => return Err(Error::forbidden("only administrators export every chain").into()),
            };
            let page = audit::query::list(&mut conn, study_id, &Default::default(), PageRequest::all())?;
            let sink: Box<dyn Write> = match &out {
                Some(p) => {
                    Box::new(std::fs::File::create(p).map_err(|e| Failure::Input(format!("{}: {e}", p.display())))?)
                }
                None => Box::new(std::io::stdout()),
            };
            evidentia::export::write_csv(sink, page.items.iter().rev())?;
            if let Some(p) = out {
                eprintln!("wrote {} events to {}", page.total, p.display());
            }
            Ok(())
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

fn dictionary_cmd(cfg: Config, as_user: Option<String>, cmd: DictionaryCmd) -> CliResult {
    use evidentia::cases::dictionary;
    let (mut conn, actor) = open(&cfg, as_user)?;
    match cmd {
        DictionaryCmd::Import { study, file, dry_run, accept_invalidated } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let name = file.display().to_string();
            let parsed = dictionary::parse_redcap(&name, &read_file(&file)?).map_err(|problems| {
                Failure::Input(problems.iter().map(|p| format!("{name}: {p}")).collect::<Vec<_>>().join("\n"))
            })?;
            let change = dictionary::replace(&mut conn, &actor, &access, &parsed.fields, accept_invalidated, dry_run)?;
            println!(
                "{}{} fields: {} added, {} changed, {} retired",
                if dry_run { "dry run: " } else { "" },
                parsed.fields.len(),
                change.added.len(),
                change.changed.len(),
                change.retired.len()
            );
            for i in &change.invalidated {
                println!("no longer validates: {} {} = {}", i.case, i.field, i.value);
            }
            if !parsed.ignored_columns.is_empty() {
                println!("kept but not used by Evidentia: {}", parsed.ignored_columns.join(", "));
            }
        }
        DictionaryCmd::Export { study, out } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(evidentia::auth::permissions::Permission::ViewCases)?;
            let fields = dictionary::load(&mut conn, access.study.id)?;
            std::fs::write(&out, dictionary::to_redcap_csv(&fields)?)
                .map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            println!("wrote {} fields to {}", fields.len(), out.display());
        }
    }
    Ok(())
}

fn cases_cmd(cfg: Config, as_user: Option<String>, cmd: CasesCmd) -> CliResult {
    use evidentia::auth::permissions::Permission;
    use evidentia::cases::{self, decode::Encoding, deid::StudyKey, dictionary, import};
    let (mut conn, actor) = open(&cfg, as_user)?;
    match cmd {
        CasesCmd::Import { study, file, dry_run, encoding, site } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(Permission::ManageCases)?;
            let encoding = match encoding {
                None => None,
                Some(e) => Some(
                    Encoding::parse(&e)
                        .ok_or_else(|| Failure::Input(format!("unknown encoding '{e}' (utf-8, cp949, latin-1)")))?,
                ),
            };
            let fields = dictionary::load(&mut conn, access.study.id)?;
            let sites = studies::sites::list(&mut conn, access.study.id, true)?;
            let key = StudyKey::load_or_create(&cfg.data_dir, &access.study.code)?;
            let mut opts =
                import::ImportOptions { site, encoding, mrn_patterns: cfg.mrn_patterns.clone(), ..Default::default() };
            opts.limits.max_bytes = cfg.max_upload_bytes;
            let name = file.display().to_string();
            let bytes = read_file(&file)?;
            let prepared = import::prepare(access.study.id, &fields, &sites, &key, &name, &bytes, &opts);
            drop(bytes);
            if !prepared.ok() {
                let lines: Vec<String> = prepared.problems.iter().map(|p| format!("{name}: {p}")).collect();
                return Err(Failure::Input(format!(
                    "the file was refused, nothing was imported:\n{}",
                    lines.join("\n")
                )));
            }
            println!(
                "{} rows read ({}, delimiter {}), {} values de-identified",
                prepared.report.rows_read,
                prepared.report.encoding,
                prepared.report.delimiter,
                prepared.report.total()
            );
            for (field, rules) in &prepared.report.fields {
                for (rule, n) in rules {
                    println!("  {field:<24} {rule:<16} {n}");
                }
            }
            if dry_run {
                println!("dry run: nothing was stored");
                return Ok(());
            }
            let s = import::commit(&mut conn, &actor, &access, &prepared)?;
            println!("import {}: {} created, {} updated, {} unchanged", s.import_id, s.created, s.updated, s.unchanged);
            // The import is committed and durable; copy it from the WAL into the database file
            // before exiting (whatever a running server's readers hold back, a later checkpoint does).
            if let Err(e) = evidentia::db::checkpoint(&mut conn) {
                eprintln!("note: the checkpoint after the import failed ({e}); a later one will copy it");
            }
        }
        CasesCmd::Export { study, out, labels } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(Permission::ViewCases)?;
            let fields = dictionary::load(&mut conn, access.study.id)?;
            let page = cases::list(&mut conn, access.study.id, &fields, &Default::default(), PageRequest::all())?;
            let file = std::fs::File::create(&out).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            cases::export::write(std::io::BufWriter::new(file), &fields, &page.items, labels)?;
            println!("wrote {} cases to {}", page.total, out.display());
        }
    }
    Ok(())
}

/// Claims job `id` and runs it here, drawing its progress on stderr until it ends.
fn run_job_in_foreground(pool: &evidentia::db::DbPool, cfg: &Config, id: i32) -> Result<serde_json::Value, Failure> {
    let job = jobs::claim(&mut *pool.get().map_err(Error::from)?, id, "cli")?
        .ok_or_else(|| Failure::Other(format!("job {id} was taken by another worker")))?;
    let (pool2, cfg2) = (pool.clone(), cfg.clone());
    let handle = std::thread::spawn(move || jobs::worker::run_job(&pool2, &cfg2, job));
    loop {
        let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
        let width = 30;
        let filled = (j.percent() as usize * width) / 100;
        eprint!("\r[{}{}] {:>3}% {:<50}", "#".repeat(filled), " ".repeat(width - filled), j.percent(), j.message);
        if j.is_finished() || handle.is_finished() {
            let _ = handle.join();
            let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
            eprintln!();
            return match j.status.as_str() {
                "succeeded" => Ok(j.result.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default()),
                s => Err(Failure::Other(format!("job {id} {s}: {}", j.error.unwrap_or_default()))),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn slides_cmd(cfg: Config, as_user: Option<String>, cmd: SlidesCmd) -> CliResult {
    use evidentia::auth::permissions::Permission;
    use evidentia::cases::deid::StudyKey;
    use evidentia::slides::{self, ingest, reader};
    let unreadable = |file: &std::path::Path, e: reader::SlideError| Failure::Input(format!("{}: {e}", file.display()));
    match cmd {
        SlidesCmd::Inspect { file, json } => {
            let slide = reader::open(&file).map_err(|e| unreadable(&file, e))?;
            let info = slide.info();
            if json {
                println!("{}", serde_json::to_string_pretty(info).map_err(|e| Failure::Other(e.to_string()))?);
            } else {
                let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "unknown".into());
                println!("format           {}", info.format);
                println!("size             {} x {}", info.width, info.height);
                for (i, l) in info.levels.iter().enumerate() {
                    println!("level {i:<10} {} x {} (downsample {:.3})", l.width, l.height, l.downsample);
                }
                println!("mpp              {} x {}", opt(info.mpp_x), opt(info.mpp_y));
                println!("objective power  {}", opt(info.objective_power));
                println!(
                    "associated       {}",
                    if info.associated.is_empty() { "none".into() } else { info.associated.join(", ") }
                );
            }
        }
        SlidesCmd::Region { file, level, x, y, width, height, out } => {
            let slide = reader::open(&file).map_err(|e| unreadable(&file, e))?;
            if level >= slide.info().levels.len() {
                return Err(Failure::Input(format!(
                    "level {level} does not exist (the slide has {})",
                    slide.info().levels.len()
                )));
            }
            let img = slide.read_region(level, x, y, width, height).map_err(|e| unreadable(&file, e))?;
            let f = std::fs::File::create(&out).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            img.write_png(std::io::BufWriter::new(f)).map_err(|e| Failure::Other(e.to_string()))?;
            println!("wrote {width} x {height} px of level {level} to {}", out.display());
        }
        SlidesCmd::Ingest { study, manifest, site, paths } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(Permission::ManageSlides)?;
            let bytes = std::fs::read(&manifest).map_err(|e| Failure::Input(format!("{}: {e}", manifest.display())))?;
            let paths = if paths.is_empty() {
                vec![manifest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf()]
            } else {
                paths
            };
            let manifest_abs = std::fs::canonicalize(&manifest).ok();
            let files: Vec<ingest::SourceFile> = ingest::server_files(&paths)
                .map_err(|e| Failure::Input(e.to_string()))?
                .into_iter()
                .filter(|f| std::fs::canonicalize(&f.path).ok() != manifest_abs)
                .collect();
            let key = StudyKey::load_or_create(&cfg.data_dir, &access.study.code)?;
            let plan = match ingest::plan(&mut conn, &access, &key, &bytes, &files, site.as_deref()) {
                Ok(p) => p,
                Err(Error::Invalid(errors)) => {
                    for e in &errors.0 {
                        eprintln!("{}", e.message);
                    }
                    return Err(Failure::Input(format!("{}: refused, nothing was ingested", manifest.display())));
                }
                Err(e) => return Err(e.into()),
            };
            let pool = startup::open_database(&cfg)?;
            let (_, job) = ingest::start(&mut conn, &actor, &access, &cfg.tmp_dir(), &plan)?;
            drop(conn);
            let result = run_job_in_foreground(&pool, &cfg, job.id)?;
            let rows: Vec<ingest::RowOutcome> = serde_json::from_value(result["rows"].clone()).unwrap_or_default();
            for r in &rows {
                println!(
                    "row {:<4} {:<10} {:<9} {:<18} {}",
                    r.row,
                    r.case,
                    r.outcome,
                    r.slide.as_deref().unwrap_or("-"),
                    r.message
                );
            }
            println!(
                "{} ingested, {} already there, {} failed",
                result["ingested"], result["skipped"], result["failed"]
            );
            if rows.iter().any(|r| r.outcome == "failed") {
                return Err(Failure::Input("some slides failed (listed above); the others were ingested".into()));
            }
        }
        SlidesCmd::List { study } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(Permission::ViewSlides)?;
            let page = slides::list(
                &mut conn,
                access.study.id,
                &Default::default(),
                evidentia::db::paging::PageRequest::all(),
            )?;
            evidentia::export::write_csv(std::io::stdout().lock(), &page.items)?;
        }
    }
    Ok(())
}

fn annotations_cmd(cfg: Config, as_user: Option<String>, cmd: AnnotationsCmd) -> CliResult {
    use evidentia::annotations::{export, reads};
    use evidentia::auth::permissions::Permission;
    let (mut conn, actor) = open(&cfg, as_user)?;
    match cmd {
        AnnotationsCmd::Import { study, slide, reader, campaign, dry_run, file } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            if !access.can(Permission::ManageCampaigns) && actor.name != reader {
                // Another reader's reads do not exist for an annotator (not even whether they have one).
                return Err(Error::NotFound.into());
            }
            let bytes = std::fs::read(&file).map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
            let id = reads::find(&mut conn, access.study.id, campaign.as_deref(), &slide, &reader)?;
            let saved = reads::import_regions(&mut conn, &actor, &access, id, &bytes, dry_run)
                .map_err(|e| Failure::from(e).context(&file.display().to_string()))?;
            if dry_run {
                println!(
                    "{}: fits; {slide} read by {reader} would have {} regions (dry run: nothing changed)",
                    file.display(),
                    saved.region_count
                );
            } else {
                println!("{}: {slide} read by {reader} now has {} regions", file.display(), saved.region_count);
            }
        }
        AnnotationsCmd::Export { study, format, out } => {
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            access.require(Permission::ViewReads)?;
            let files = export::export(&mut conn, access.study.id, &format, &out)?;
            println!("{} file(s) written to {}", files.len(), out.display());
        }
    }
    Ok(())
}

fn biomarker_cmd(cfg: Config, as_user: Option<String>, cmd: BiomarkerCmd) -> CliResult {
    use evidentia::biomarker::{engine, pipeline, registry};
    match cmd {
        BiomarkerCmd::Run { study, model, site, stain } => {
            let pool = startup::open_database(&cfg)?;
            let mut conn = pool.get().map_err(Error::from)?;
            let actor = match as_user {
                Some(u) => users::actor_for_username(&mut conn, &u)?,
                None => Actor::cli_operator(),
            };
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let (run, job) = evidentia::biomarker::runs::start(&mut conn, &actor, &access, &model, &site, &stain)?;
            drop(conn);
            let summary = run_job_in_foreground(&pool, &cfg, job.id)?;
            let rows = evidentia::biomarker::runs::results(&mut *pool.get().map_err(Error::from)?, run.id)?;
            evidentia::export::write_csv(std::io::stdout().lock(), &rows)?;
            eprintln!(
                "run {} of {}: {} slides, {} failed, on {}",
                run.id,
                run.model(),
                summary["slides"],
                summary["failed"],
                summary["backend"].as_str().unwrap_or("?")
            );
        }
        BiomarkerCmd::Compare { study, a, b, json } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let access = study_access(&mut conn, &actor, &study.to_uppercase())?;
            let c = evidentia::biomarker::compare::compare(&mut conn, &access, a, b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c).map_err(|e| Failure::Other(e.to_string()))?);
            } else {
                let rows: Vec<_> = c.slides.iter().map(evidentia::biomarker::compare::CompareRow).collect();
                evidentia::export::write_csv(std::io::stdout().lock(), &rows)?;
                let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into());
                eprintln!(
                    "run {} ({}) vs run {} ({}): {} slides compared, {} changed, {} not comparable; \
                     agreement {}, kappa {} (95 % CI {} to {})",
                    c.run_a.id,
                    c.run_a.model(),
                    c.run_b.id,
                    c.run_b.model(),
                    c.kappa.n,
                    c.changed,
                    c.not_comparable,
                    f(c.percent_agreement),
                    f(c.kappa.kappa),
                    f(c.kappa.ci_low),
                    f(c.kappa.ci_high)
                );
            }
        }
        BiomarkerCmd::RunFile { slide, model, batch, json } => {
            let (mut conn, _) = open(&cfg, as_user)?;
            let record = registry::get(&mut conn, &model)?;
            if record.status == "retired" {
                return Err(Failure::Input(format!("{model} is retired: use another version")));
            }
            let card = record.card()?;
            let mut sessions = pipeline::sessions(&record.path(&cfg.data_dir)).map_err(Failure::Other)?;
            let backend = engine::backend().map_err(Failure::Other)?;
            if let Some(w) = backend.warning() {
                eprintln!("warning: {w}");
            }
            let reader = evidentia::slides::reader::open(&slide)
                .map_err(|e| Failure::Input(format!("{}: {e}", slide.display())))?;
            let started = std::time::Instant::now();
            let opts = pipeline::Options { batch_size: batch, ..Default::default() };
            let result = pipeline::analyse(reader.as_ref(), &mut sessions, &card, opts, &mut |done, total| {
                if !json {
                    eprint!("\r{done}/{total} tiles");
                }
            })
            .map_err(|e| Failure::Input(format!("{}: {e}", slide.display())))?;
            let secs = started.elapsed().as_secs_f64();
            let out = serde_json::json!({
                "phenotype": result.phenotype,
                "inflamed_share": result.inflamed_share,
                "excluded_share": result.excluded_share,
                "desert_share": result.desert_share,
                "itil_density_median": result.itil_density_median,
                "stil_density_median": result.stil_density_median,
                "grid_cells_scored": result.grid_cells_scored,
                "tiles": result.tiles,
                "flags": result.flags,
                "backend": backend.kind.as_str(),
                "model": record.key(),
                "model_sha256": record.sha256,
            });
            if json {
                println!("{out}");
            } else {
                eprintln!();
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                println!("{:.1} tiles/s", f64::from(result.tiles) / secs.max(1e-9));
            }
        }
    }
    Ok(())
}

fn model_cmd(cfg: Config, as_user: Option<String>, cmd: ModelCmd) -> CliResult {
    use evidentia::biomarker::{card::ModelCard, engine, registry};
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| Failure::Input(format!("{}: {e}", p.display())));
    match cmd {
        ModelCmd::Check { file, card, json } => {
            let card =
                ModelCard::parse(&read(&card)?).map_err(|e| Failure::from(e).context(&card.display().to_string()))?;
            let mut model =
                registry::check(&file, &card).map_err(|e| Failure::from(e).context(&file.display().to_string()))?;
            let backend = engine::backend().map_err(Failure::Other)?;
            let outputs = model.run(&card.input.name, engine::check_batch(&card)).map_err(Failure::Other)?;
            let summaries: serde_json::Map<String, serde_json::Value> = outputs
                .iter()
                .map(|(name, a)| (name.clone(), serde_json::to_value(engine::summarise(a)).unwrap_or_default()))
                .collect();
            if json {
                let out = serde_json::json!({"backend": backend, "model": card.key(), "outputs": summaries});
                println!("{out}");
            } else {
                println!("{} loads and runs on {} ({})", card.key(), backend.kind.as_str(), backend.detail);
                for (name, a) in &outputs {
                    let s = engine::summarise(a);
                    println!("  {name}: shape {:?}, sum {:.6}, min {:.6}, max {:.6}", s.shape, s.sum, s.min, s.max);
                }
                if let Some(w) = backend.warning() {
                    eprintln!("warning: {w}");
                }
            }
        }
        ModelCmd::Register { file, card } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let card_bytes = read(&card)?;
            ModelCard::parse(&card_bytes).map_err(|e| Failure::from(e).context(&card.display().to_string()))?;
            let m = registry::register(&mut conn, &actor, &cfg.data_dir, &file, &card_bytes)
                .map_err(|e| Failure::from(e).context(&file.display().to_string()))?;
            println!("registered {} (sha256 {}, checked on {})", m.key(), m.sha256, m.checked_backend);
        }
        ModelCmd::List => {
            let (mut conn, _) = open(&cfg, as_user)?;
            println!("{:<28} {:<10} {:<17} {:<12} registered", "model", "status", "sha256", "checked on");
            for m in registry::list(&mut conn)? {
                println!(
                    "{:<28} {:<10} {:<17} {:<12} {} by {}",
                    m.key(),
                    m.status,
                    m.short_sha(),
                    m.checked_backend,
                    m.created_at.format("%Y-%m-%d %H:%M"),
                    m.registered_by
                );
            }
        }
        ModelCmd::Retire { key, reason } => {
            let (mut conn, actor) = open(&cfg, as_user)?;
            let m = registry::retire(&mut conn, &actor, &key, &reason)?;
            println!("{} is retired", m.key());
        }
    }
    Ok(())
}

fn synth_cmd(cmd: SynthCmd) -> CliResult {
    use evidentia::slides::synth::{self, Phenotype, SynthParams};
    match cmd {
        SynthCmd::Slides { out, n, phenotype, size, mpp, seed, class_map_step } => {
            let phenotype: Phenotype = phenotype.parse().map_err(|_| {
                Failure::Input(format!("unknown phenotype '{phenotype}' (inflamed, excluded, desert, mixed)"))
            })?;
            let (w, h) = size
                .split_once(['x', 'X'])
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                .filter(|(w, h)| *w >= 256 && *h >= 256 && *w <= 200_000 && *h <= 200_000)
                .ok_or_else(|| {
                    Failure::Input(format!("--size {size}: give WIDTHxHEIGHT, each 256 to 200000 pixels"))
                })?;
            if !(0.05..=10.0).contains(&mpp) {
                return Err(Failure::Input(format!("--mpp {mpp}: give microns per pixel between 0.05 and 10")));
            }
            if class_map_step == Some(0) {
                return Err(Failure::Input("--class-map-step 0: give a step of at least one pixel".into()));
            }
            std::fs::create_dir_all(&out).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            let params = SynthParams::new(w, h, mpp, phenotype, seed);
            let mut last = std::time::Instant::now();
            let slides = synth::write_slides(&out, n, &params, &mut |i: usize, done: u64, total: u64| {
                if last.elapsed() > Duration::from_millis(200) || done == total {
                    last = std::time::Instant::now();
                    let pct = (done * 100).checked_div(total).unwrap_or(100);
                    eprint!("\rslide {}/{n} [{:<30}] {pct:>3}%", i + 1, "#".repeat((pct as usize * 30) / 100));
                }
            })?;
            eprintln!();
            for s in &slides {
                if let Some(step) = class_map_step {
                    let params = SynthParams { seed: s.truth.seed, ..params.clone() };
                    synth::write_class_map(&s.path, &params, step).map_err(|e| Failure::Input(format!("{e:#}")))?;
                }
                println!("{}  {:?}", s.path.display(), s.truth.phenotype);
            }
        }
    }
    Ok(())
}
