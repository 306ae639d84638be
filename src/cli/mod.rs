//! The `evidentia` command line: the server, the demo, and admin tasks. Every command calls the
//! same domain functions as the web pages; this module only parses arguments, resolves who acts,
//! reads input files and prints results.
//!
//! One file per command group. Shared by all of them: [`Ctx`] (the data dir and who acts,
//! `--as`), [`input`] (the one way to read an input file, `-` for standard input), and
//! [`progress`] (jobs run in the foreground with a progress bar).

mod annotations;
mod audit;
mod cases;
mod demo;
mod dossier;
mod input;
mod models;
mod progress;
mod quality;
mod reference;
mod server;
mod slides;
mod stats;
mod studies;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use evidentia::auth::permissions::{study_access, StudyAccess};
use evidentia::auth::{users as accounts, Actor};
use evidentia::config::Config;
use evidentia::db::{Conn, DbPool, PooledConn};
use evidentia::error::Error;
use evidentia::{startup, telemetry};

#[derive(Parser)]
#[command(
    name = "evidentia",
    version,
    about = "Clinical studies of AI pathology biomarkers, from cases to the signed dossier"
)]
pub struct Cli {
    /// Data directory (database, slides, models, exports).
    #[arg(long, global = true, env = "EVIDENTIA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (default: the SQLite file
    /// `evidentia.db` in the data dir). The data dir still holds the files.
    #[arg(long, global = true, env = "EVIDENTIA_DATABASE_URL")]
    database_url: Option<String>,
    /// Where slides, models and dossiers are stored: `file:///PATH` or `s3://BUCKET/PREFIX` on
    /// an S3-compatible object store (endpoint, region and keys from `AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; `AWS_ALLOW_HTTP=true` without
    /// TLS). Default: the data dir.
    #[arg(long, global = true, env = "EVIDENTIA_STORAGE")]
    storage: Option<String>,
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
    Demo(demo::DemoArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy this SQLite installation into an empty PostgreSQL database, then check the copy:
    /// every audit chain verifies and every lock's snapshot hash is the one signed. The files
    /// stay in the data dir. Stop the server and workers first (a write meanwhile waits and fails).
    MigrateData {
        /// The target, an empty database: postgres://USER@HOST/DB (its schema is created). From
        /// the environment, a password in it stays out of the process list.
        #[arg(long, env = "EVIDENTIA_MIGRATE_TO")]
        to: String,
        /// Also copy the files (slides, models, dossiers) into this storage: s3://BUCKET/PREFIX
        /// (keys from the `AWS_*` variables, as for `--storage`). It may hold only files of
        /// this installation (a copy cut short resumes: files there whole are kept).
        #[arg(long = "to-storage", env = "EVIDENTIA_MIGRATE_TO_STORAGE")]
        to_storage: Option<String>,
    },
    /// Run job workers only (no web server).
    Worker {
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Write a backup archive (database + data dir files) while the server runs.
    Backup {
        #[arg(long)]
        out: PathBuf,
        /// Encrypt the archive to this age X25519 recipient (age1…; repeat for several): only
        /// the matching identity can restore it (`evidentia backup-key` makes a pair).
        #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
        encrypt_to: Vec<String>,
    },
    /// Make an age key pair for encrypted backups: the identity into FILE (readable by its
    /// owner only; keep it away from the backups), the recipient printed for --encrypt-to.
    BackupKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup archive into a new or empty --data-dir.
    Restore {
        file: PathBuf,
        /// The age identity file of an encrypted backup.
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// User accounts.
    #[command(subcommand)]
    User(users::UserCmd),
    /// Studies, sites and members.
    #[command(subcommand)]
    Study(studies::StudyCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// A study's data dictionary (REDCap CSV).
    #[command(subcommand)]
    Dictionary(cases::DictionaryCmd),
    /// Case data: de-identified import and export.
    #[command(subcommand)]
    Cases(cases::CasesCmd),
    /// Data quality: built-in and custom rules over the case data, and their findings.
    #[command(subcommand)]
    Quality(quality::QualityCmd),
    /// Whole-slide images: inspect, read regions, de-identified ingest, list.
    #[command(subcommand)]
    Slides(slides::SlidesCmd),
    /// Reader annotations: QuPath GeoJSON import, CSV / GeoJSON export of reads.
    #[command(subcommand)]
    Annotations(annotations::AnnotationsCmd),
    /// The model registry: ONNX models with their model cards (administrators).
    #[command(subcommand)]
    Model(models::ModelCmd),
    /// The AI biomarker (tumour-immune phenotype) on slides.
    #[command(subcommand)]
    Biomarker(models::BiomarkerCmd),
    /// Synthetic data for demos, tests, training and benchmarks.
    #[command(subcommand)]
    Synth(slides::SynthCmd),
    /// Statistics on any CSV file: one JSON object on stdout (the dossier's numbers, re-computable).
    Stats(stats::StatsArgs),
    /// The evidence dossier of a locked, signed study: export and verify.
    #[command(subcommand)]
    Dossier(dossier::DossierCmd),
    /// Documentation generated from this program (the CLI reference in docs/cli.md).
    #[command(subcommand, hide = true)]
    Docs(reference::DocsCmd),
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EVIDENTIA_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Job worker threads inside the server.
    #[arg(long, env = "EVIDENTIA_JOB_WORKERS", default_value_t = 2)]
    job_workers: usize,
}

/// A failed command: bad input exits 2, anything else 1.
pub enum Failure {
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

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

type CliResult = Result<(), Failure>;

/// What every command that touches a data dir starts from: its configuration and who acts.
pub struct Ctx {
    cfg: Config,
    as_user: Option<String>,
}

impl Ctx {
    fn pool(&self) -> Result<DbPool, Failure> {
        Ok(startup::open_database(&self.cfg)?)
    }

    /// Who acts: the `--as` user, whose roles are checked like on the web; without `--as`, the
    /// local operator (administrator rights: whoever runs the binary owns the data dir).
    fn actor(&self, conn: &mut Conn) -> Result<Actor, Failure> {
        Ok(match &self.as_user {
            Some(u) => accounts::actor_for_username(conn, u)?,
            None => Actor::cli_operator(),
        })
    }

    /// A connection and who acts on it.
    fn open(&self) -> Result<(PooledConn, Actor), Failure> {
        let (_, conn, actor) = self.open_with_pool()?;
        Ok((conn, actor))
    }

    /// The pool too, for commands that run a job in the foreground.
    fn open_with_pool(&self) -> Result<(DbPool, PooledConn, Actor), Failure> {
        let pool = self.pool()?;
        let mut conn = pool.get().map_err(Error::from)?;
        let actor = self.actor(&mut conn)?;
        Ok((pool, conn, actor))
    }
}

/// The study a `--study CODE` names, with the actor's access to it (codes are upper case).
fn study(conn: &mut Conn, actor: &Actor, code: &str) -> Result<StudyAccess, Failure> {
    Ok(study_access(conn, actor, &code.to_uppercase())?)
}

fn config_for(
    data_dir: PathBuf,
    database_url: Option<&str>,
    storage: &evidentia::storage::Storage,
    serve: Option<&ServeArgs>,
) -> Config {
    let bind = serve.map(|s| s.bind.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let mut cfg = Config::from_env(bind, data_dir);
    if let Some(url) = database_url {
        cfg.database_url = Some(url.to_string());
    }
    cfg.storage = storage.clone();
    if let Some(s) = serve {
        cfg.job_workers = s.job_workers;
    }
    // Reasons typed on the command line are scrubbed with the installation's patterns (an
    // invalid pattern is reported where the patterns are used).
    if let Ok(scrubber) = evidentia::cases::scrub::Scrubber::new(&[], &cfg.mrn_patterns) {
        evidentia::audit::scrub_reasons_with(std::sync::Arc::new(scrubber));
    }
    cfg
}

pub fn main() -> ExitCode {
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

fn run(cli: Cli) -> CliResult {
    let default_dir = match &cli.command {
        Command::Demo(_) => PathBuf::from("demo-data"),
        _ => PathBuf::from("data"),
    };
    let data_dir = cli.data_dir.clone().unwrap_or(default_dir);
    let storage = evidentia::storage::Storage::parse(cli.storage.as_deref(), &data_dir)
        .map_err(|e| Failure::Input(format!("--storage / EVIDENTIA_STORAGE: {e}")))?;
    let ctx = |serve: Option<&ServeArgs>| Ctx {
        cfg: config_for(data_dir.clone(), cli.database_url.as_deref(), &storage, serve),
        as_user: cli.as_user.clone(),
    };
    match cli.command {
        Command::Serve(args) => server::serve(ctx(Some(&args)).cfg, None),
        Command::Demo(args) => demo::run(ctx(Some(&args.serve)).cfg, &args),
        Command::Migrate => server::migrate(&ctx(None).cfg),
        Command::MigrateData { to, to_storage } => server::migrate_data(&ctx(None).cfg, &to, to_storage.as_deref()),
        Command::Worker { threads } => server::worker(ctx(None).cfg, threads),
        Command::Backup { out, encrypt_to } => server::backup(&ctx(None).cfg, &out, &encrypt_to),
        Command::BackupKey { out } => server::backup_key(&out),
        Command::Restore { file, identity } => server::restore(&file, identity.as_deref(), cli.data_dir.as_deref()),
        Command::User(cmd) => users::run(&ctx(None), cmd),
        Command::Study(cmd) => studies::run(&ctx(None), cmd),
        Command::Audit(cmd) => audit::run(&ctx(None), cmd),
        Command::Dictionary(cmd) => cases::dictionary(&ctx(None), cmd),
        Command::Cases(cmd) => cases::run(&ctx(None), cmd),
        Command::Quality(cmd) => quality::run(&ctx(None), cmd),
        Command::Slides(cmd) => slides::run(&ctx(None), cmd),
        Command::Annotations(cmd) => annotations::run(&ctx(None), cmd),
        Command::Model(cmd) => models::model(&ctx(None), cmd),
        Command::Biomarker(cmd) => models::biomarker(&ctx(None), cmd),
        Command::Synth(cmd) => slides::synth(cmd),
        Command::Stats(args) => stats::run(args),
        Command::Dossier(cmd) => dossier::run(&ctx(None), cmd),
        Command::Docs(cmd) => reference::run(cmd),
    }
}
