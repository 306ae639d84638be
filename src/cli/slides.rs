//! `evidentia slides` (inspect, regions, de-identified ingest, list) and `evidentia synth`
//! (synthetic slides).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;

use evidentia::auth::permissions::Permission;
use evidentia::db::paging::PageRequest;
use evidentia::error::Error;
use evidentia::slides::{self, ingest, reader};

use super::{input, progress, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum SlidesCmd {
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
    /// Export slides as DICOM whole-slide images (a VL Whole Slide Microscopy Image series per
    /// slide, in a folder named by its label), for a PACS or a regulator's viewer.
    Export {
        #[arg(long)]
        study: String,
        /// The only format: dicom.
        #[arg(long)]
        format: String,
        #[arg(long)]
        out: PathBuf,
        /// A slide's label (repeat for several); default: every slide of the study.
        #[arg(long = "slide")]
        slides: Vec<String>,
    },
    /// List a study's slides.
    List {
        #[arg(long)]
        study: String,
    },
}

#[derive(Subcommand)]
pub enum SynthCmd {
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

/// A slide file, or a refusal naming it.
pub fn open_slide(file: &Path) -> Result<Box<dyn reader::SlideReader>, Failure> {
    reader::open(file).map_err(|e| Failure::Input(format!("{}: {e}", file.display())))
}

pub fn run(ctx: &Ctx, cmd: SlidesCmd) -> CliResult {
    match cmd {
        SlidesCmd::Inspect { file, json } => {
            let slide = open_slide(&file)?;
            let info = slide.info();
            if json {
                println!("{}", serde_json::to_string_pretty(info)?);
            } else {
                let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "unknown".into());
                println!("format           {}", info.format);
                println!("backend          {}", info.backend);
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
            let slide = open_slide(&file)?;
            if level >= slide.info().levels.len() {
                return Err(Failure::Input(format!(
                    "level {level} does not exist (the slide has {})",
                    slide.info().levels.len()
                )));
            }
            let img = slide
                .read_region(level, x, y, width, height)
                .map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
            let f = input::create(&out)?;
            img.write_png(std::io::BufWriter::new(f)).map_err(|e| Failure::Other(e.to_string()))?;
            println!("wrote {width} x {height} px of level {level} to {}", out.display());
        }
        SlidesCmd::Ingest { study: code, manifest, site, paths } => ingest(ctx, &code, &manifest, site, paths)?,
        SlidesCmd::Export { study: code, format, out, slides: labels } => {
            if format != "dicom" {
                return Err(Failure::Input(format!("--format {format}: the only export format is dicom")));
            }
            let (mut conn, actor) = ctx.open()?;
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewSlides)?;
            let key = evidentia::cases::deid::study_key(&mut conn, &ctx.cfg.data_dir, &access.study.code)?;
            let done = evidentia::slides::export::export_dicom(
                &mut conn,
                &actor,
                &ctx.cfg.storage,
                &key,
                &access,
                &labels,
                &out,
            )?;
            for s in &done {
                let how = s.levels.iter().map(|l| l.frames_from.as_str()).find(|f| *f != "copied").unwrap_or("copied");
                println!(
                    "{:<18} {} levels, {} frames ({how}) → {}",
                    s.label,
                    s.levels.len(),
                    s.levels.iter().map(|l| l.frames).sum::<usize>(),
                    s.dir.display()
                );
            }
            println!("{} slides exported as DICOM", done.len());
        }
        SlidesCmd::List { study: code } => {
            let (mut conn, actor) = ctx.open()?;
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewSlides)?;
            let page = slides::list(&mut conn, access.study.id, &Default::default(), PageRequest::all())?;
            evidentia::export::write_csv(std::io::stdout().lock(), &page.items)?;
        }
    }
    Ok(())
}

fn ingest(ctx: &Ctx, code: &str, manifest: &Path, site: Option<String>, paths: Vec<PathBuf>) -> CliResult {
    let (pool, mut conn, actor) = ctx.open_with_pool()?;
    let access = study(&mut conn, &actor, code)?;
    access.require(Permission::ManageSlides)?;
    let bytes = input::read(manifest)?;
    let paths = if paths.is_empty() {
        vec![manifest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()]
    } else {
        paths
    };
    let manifest_abs = std::fs::canonicalize(manifest).ok();
    let files: Vec<ingest::SourceFile> = ingest::server_files(&paths)
        .map_err(|e| Failure::Input(e.to_string()))?
        .into_iter()
        .filter(|f| std::fs::canonicalize(&f.path).ok() != manifest_abs)
        .collect();
    let key = evidentia::cases::deid::study_key(&mut conn, &ctx.cfg.data_dir, &access.study.code)?;
    let scrubber = evidentia::cases::scrub::Scrubber::new(&[], &ctx.cfg.mrn_patterns).map_err(Failure::Input)?;
    let plan = match ingest::plan(&mut conn, &access, &key, &scrubber, &bytes, &files, site.as_deref()) {
        Ok(p) => p,
        Err(Error::Invalid(errors)) => {
            for e in &errors.0 {
                eprintln!("{}", e.message);
            }
            return Err(Failure::Input(format!("{}: refused, nothing was ingested", input::name(manifest))));
        }
        Err(e) => return Err(e.into()),
    };
    drop(conn);
    // An ingest cut short earlier (its plan still waiting) goes first; this one may need its slides.
    let mut resume_failed = 0;
    for (id, resumed) in progress::resume_interrupted::<ingest::IngestParams>(&pool, &ctx.cfg, access.study.id)? {
        match resumed {
            Ok(r) => println!(
                "ingest #{} (job {id}, resumed): {} ingested, {} already there, {} failed",
                r.ingest, r.ingested, r.skipped, r.failed
            ),
            Err(Failure::Input(m) | Failure::Other(m)) => {
                resume_failed += 1;
                eprintln!("error: resuming job {id}: {m}");
            }
        }
    }
    let mut conn = pool.get().map_err(Error::from)?;
    // Created claimed by this command: its plan is on this host, where no other host's worker
    // could read it.
    let worker = progress::worker_name();
    let (_, job) =
        ingest::start(&mut conn, &actor, &access, &ctx.cfg.storage, &ctx.cfg.tmp_dir(), &plan, Some(&worker))?;
    drop(conn);
    let result = progress::run_claimed::<ingest::IngestParams>(&pool, &ctx.cfg, job)?;
    for r in &result.rows {
        println!(
            "row {:<4} {:<10} {:<9} {:<18} {}",
            r.row,
            r.case,
            r.outcome,
            r.slide.as_deref().unwrap_or("-"),
            r.message
        );
    }
    println!("{} ingested, {} already there, {} failed", result.ingested, result.skipped, result.failed);
    if resume_failed > 0 {
        return Err(Failure::Other(format!("{resume_failed} interrupted ingest(s) could not be resumed (above)")));
    }
    if result.failed > 0 {
        return Err(Failure::Input("some slides failed (listed above); the others were ingested".into()));
    }
    Ok(())
}

pub fn synth(cmd: SynthCmd) -> CliResult {
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
            let mut last = Instant::now();
            let slides = synth::write_slides(&out, n, &params, &mut |i: usize, done: u64, total: u64| {
                if last.elapsed() > Duration::from_millis(200) || done == total {
                    last = Instant::now();
                    let pct = (done * 100).checked_div(total).unwrap_or(100);
                    eprint!("\rslide {}/{n} {}", i + 1, progress::bar(pct));
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
