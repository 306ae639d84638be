//! `evidentia model` (the registry of ONNX models with their cards) and `evidentia biomarker`
//! (AI runs over a study's slides, run comparison, one slide file).

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use evidentia::biomarker::{card::ModelCard, compare, engine, pipeline, registry, runs};
use evidentia::error::Error;

use super::{input, progress, slides::open_slide, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum BiomarkerCmd {
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
pub enum ModelCmd {
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

pub fn biomarker(ctx: &Ctx, cmd: BiomarkerCmd) -> CliResult {
    match cmd {
        BiomarkerCmd::Run { study: code, model, site, stain } => {
            let (pool, mut conn, actor) = ctx.open_with_pool()?;
            let access = study(&mut conn, &actor, &code)?;
            let (run, job) = runs::start(&mut conn, &actor, &access, &model, &site, &stain)?;
            drop(conn);
            let summary = progress::run_job::<runs::RunParams>(&pool, &ctx.cfg, job.id)?;
            let rows = runs::results(&mut *pool.get().map_err(Error::from)?, run.id)?;
            evidentia::export::write_csv(std::io::stdout().lock(), &rows)?;
            eprintln!(
                "run {} of {}: {} slides, {} failed, on {}",
                run.id,
                run.model(),
                summary.slides,
                summary.failed,
                summary.backend
            );
        }
        BiomarkerCmd::Compare { study: code, a, b, json } => {
            let (mut conn, actor) = ctx.open()?;
            let access = study(&mut conn, &actor, &code)?;
            let c = compare::compare(&mut conn, &access, a, b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                let rows: Vec<_> = c.slides.iter().map(compare::CompareRow).collect();
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
            let (mut conn, _) = ctx.open()?;
            let record = registry::get(&mut conn, &model)?;
            if record.status == registry::ModelStatus::Retired {
                return Err(Failure::Input(format!("{model} is retired: use another version")));
            }
            let card = record.card()?;
            let mut sessions =
                pipeline::sessions(&record.file(&ctx.cfg.storage).map_err(|e| Failure::Other(e.to_string()))?)
                    .map_err(Failure::Other)?;
            let backend = engine::backend().map_err(Failure::Other)?;
            if let Some(w) = backend.warning() {
                eprintln!("warning: {w}");
            }
            let reader = open_slide(&slide)?;
            let started = Instant::now();
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
                "provider": sessions.first().map(|m| m.provider.as_str()),
                "model": record.key(),
                "model_sha256": record.sha256,
            });
            if json {
                println!("{out}");
            } else {
                eprintln!();
                println!("{}", serde_json::to_string_pretty(&out)?);
                println!("{:.1} tiles/s", f64::from(result.tiles) / secs.max(1e-9));
            }
        }
    }
    Ok(())
}

/// A model card file, parsed; errors name the file.
fn read_card(path: &std::path::Path) -> Result<(Vec<u8>, ModelCard), Failure> {
    let bytes = input::read(path)?;
    let card = ModelCard::parse(&bytes)
        .map_err(|e| Failure::from(evidentia::error::Error::from(e)).context(&input::name(path)))?;
    Ok((bytes, card))
}

pub fn model(ctx: &Ctx, cmd: ModelCmd) -> CliResult {
    match cmd {
        ModelCmd::Check { file, card, json } => {
            let (_, card) = read_card(&card)?;
            let mut model =
                registry::check(&file, &card).map_err(|e| Failure::from(e).context(&file.display().to_string()))?;
            let backend = engine::backend().map_err(Failure::Other)?;
            let outputs = model.run(&card.input.name, engine::check_batch(&card)).map_err(Failure::Other)?;
            if json {
                let summaries: serde_json::Map<String, serde_json::Value> = outputs
                    .iter()
                    .map(|(name, a)| Ok((name.clone(), serde_json::to_value(engine::summarise(a))?)))
                    .collect::<Result<_, serde_json::Error>>()?;
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
            let (mut conn, actor) = ctx.open()?;
            let (card_bytes, _) = read_card(&card)?;
            let m = registry::register(&mut conn, &actor, &ctx.cfg.storage, &file, &card_bytes)
                .map_err(|e| Failure::from(e).context(&file.display().to_string()))?;
            println!("registered {} (sha256 {}, checked on {})", m.key(), m.sha256, m.checked_backend);
        }
        ModelCmd::List => {
            let (mut conn, _) = ctx.open()?;
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
            let (mut conn, actor) = ctx.open()?;
            let m = registry::retire(&mut conn, &actor, &key, &reason)?;
            println!("{} is retired", m.key());
        }
    }
    Ok(())
}
