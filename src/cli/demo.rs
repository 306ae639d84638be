//! `evidentia demo`: seeds a demo data dir (users for every role, a working study with slides,
//! an AI run, reads and analyses, and a locked, signed study), then serves it.

use clap::Args;

use evidentia::config::Config;
use evidentia::db::DbPool;
use evidentia::demo;
use evidentia::error::Error;
use evidentia::startup;

use super::{progress, server, CliResult, Failure, ServeArgs};

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Seed and exit.
    #[arg(long)]
    seed_only: bool,
    /// Synthetic slides drawn for the demo's first subjects (0 for none).
    #[arg(long, default_value_t = 24)]
    slides: usize,
}

pub fn run(cfg: Config, args: &DemoArgs) -> CliResult {
    let pool = startup::open_database(&cfg)?;
    for c in &seed(&pool, &cfg, args.slides)? {
        println!("seeded {c}");
    }
    drop(pool);
    if args.seed_only {
        println!("demo data dir: {}", cfg.data_dir.display());
        return Ok(());
    }
    server::serve(cfg, Some(demo::DEMO_PASSWORD))
}

/// Seeds everything the demo shows (what already exists is left as it is); what was created.
fn seed(pool: &DbPool, cfg: &Config, slides: usize) -> Result<Vec<String>, Failure> {
    let conn = || pool.get().map_err(|e| Failure::from(Error::from(e)));
    let mut created = demo::seed(&mut *conn()?, &cfg.data_dir)?;
    if slides > 0 {
        created.extend(demo::seed_locked_study_cases(&mut *conn()?, &cfg.data_dir)?);
    }
    // The working study with `slides` slides, then the locked one with up to 12.
    for (study, count) in [(&demo::FIRST, slides), (&demo::LOCKED, slides.min(demo::LOCKED_SLIDES))] {
        if count == 0 {
            continue;
        }
        created.extend(demo::slides::seed_slides(
            &mut *conn()?,
            &cfg.storage,
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
        if let Some((run, job)) = demo::runs::start_run(&mut *conn()?, study.code)? {
            eprintln!("running the demonstration model on the {} slides (run {})…", study.code, run.id);
            let summary = progress::run_job::<evidentia::biomarker::runs::RunParams>(pool, cfg, job.id)?;
            created.push(format!(
                "AI run {} of {} on {} slides ({})",
                run.id,
                run.model(),
                summary.slides,
                summary.backend
            ));
        }
        created.extend(demo::reads::seed_reads(&mut *conn()?, &cfg.data_dir, study)?);
        created.extend(demo::analyses::seed_analyses(&mut *conn()?, study.code)?);
    }
    if slides > 0 {
        created.extend(demo::lock::seed_lock(&mut *conn()?, demo::LOCKED.code)?);
    }
    Ok(created)
}
