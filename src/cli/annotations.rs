//! `evidentia annotations`: QuPath GeoJSON import into a read, export of a study's reads.

use std::path::PathBuf;

use clap::Subcommand;

use evidentia::annotations::{export, reads};
use evidentia::auth::permissions::Permission;
use evidentia::error::Error;

use super::{input, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum AnnotationsCmd {
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
        /// The GeoJSON file (`-` for standard input).
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

pub fn run(ctx: &Ctx, cmd: AnnotationsCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
    match cmd {
        AnnotationsCmd::Import { study: code, slide, reader, campaign, dry_run, file } => {
            let access = study(&mut conn, &actor, &code)?;
            if !access.can(Permission::ManageCampaigns) && actor.name != reader {
                // Another reader's reads do not exist for an annotator (not even whether they have one).
                return Err(Error::NotFound.into());
            }
            let name = input::name(&file);
            let bytes = input::read(&file)?;
            let id = reads::find(&mut conn, access.study.id, campaign.as_deref(), &slide, &reader)?;
            let saved = reads::import_regions(&mut conn, &actor, &access, id, &bytes, dry_run)
                .map_err(|e| Failure::from(e).context(&name))?;
            if dry_run {
                println!(
                    "{name}: fits; {slide} read by {reader} would have {} regions (dry run: nothing changed)",
                    saved.region_count
                );
            } else {
                println!("{name}: {slide} read by {reader} now has {} regions", saved.region_count);
            }
        }
        AnnotationsCmd::Export { study: code, format, out } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewReads)?;
            let files = export::export(&mut conn, access.study.id, &format, &out)?;
            println!("{} file(s) written to {}", files.len(), out.display());
        }
    }
    Ok(())
}
