//! `evidentia dictionary` and `evidentia cases`: the data dictionary and de-identified case data.

use std::path::PathBuf;

use clap::Subcommand;

use evidentia::auth::permissions::Permission;
use evidentia::cases::{self, decode::Encoding, dictionary as dict, import};
use evidentia::db::paging::PageRequest;
use evidentia::studies;

use super::{input, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum DictionaryCmd {
    /// Import a REDCap data dictionary (fields added or updated by name, missing ones retired).
    Import {
        #[arg(long)]
        study: String,
        /// The dictionary CSV (`-` for standard input).
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
pub enum CasesCmd {
    /// Import a site spreadsheet: validated and de-identified before anything is stored; all or nothing.
    Import {
        #[arg(long)]
        study: String,
        /// The CSV file (`-` for standard input).
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

pub fn dictionary(ctx: &Ctx, cmd: DictionaryCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
    match cmd {
        DictionaryCmd::Import { study: code, file, dry_run, accept_invalidated } => {
            let access = study(&mut conn, &actor, &code)?;
            let name = input::name(&file);
            let parsed = dict::parse_redcap(&name, &input::read(&file)?).map_err(|problems| {
                Failure::Input(problems.iter().map(|p| format!("{name}: {p}")).collect::<Vec<_>>().join("\n"))
            })?;
            let change = dict::replace(&mut conn, &actor, &access, &parsed.fields, accept_invalidated, dry_run)?;
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
        DictionaryCmd::Export { study: code, out } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let fields = dict::load(&mut conn, access.study.id)?;
            std::fs::write(&out, dict::to_redcap_csv(&fields)?)
                .map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            println!("wrote {} fields to {}", fields.len(), out.display());
        }
    }
    Ok(())
}

pub fn run(ctx: &Ctx, cmd: CasesCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
    match cmd {
        CasesCmd::Import { study: code, file, dry_run, encoding, site } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ManageCases)?;
            let encoding = match encoding {
                None => None,
                Some(e) => Some(
                    Encoding::parse_name(&e)
                        .ok_or_else(|| Failure::Input(format!("unknown encoding '{e}' (utf-8, cp949, latin-1)")))?,
                ),
            };
            let fields = dict::load(&mut conn, access.study.id)?;
            let sites = studies::sites::list(&mut conn, access.study.id, true)?;
            let key = evidentia::cases::deid::study_key(&mut conn, &ctx.cfg.data_dir, &access.study.code)?;
            let mut opts = import::ImportOptions {
                site,
                encoding,
                mrn_patterns: ctx.cfg.mrn_patterns.clone(),
                ..Default::default()
            };
            opts.limits.max_bytes = ctx.cfg.max_upload_bytes;
            let name = input::name(&file);
            let bytes = input::read(&file)?;
            let prepared = import::prepare(access.study.id, &fields, &sites, &key, &name, &bytes, &opts);
            drop(bytes);
            if !prepared.ok() {
                let (shown, more) = prepared.shown_problems();
                let mut lines: Vec<String> = shown.iter().map(|p| format!("{name}: {p}")).collect();
                if more > 0 {
                    lines.push(format!("{name}: … and {more} more problems"));
                }
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
            println!("{}", s.quality.sentence());
            // The import is committed and durable; copy it from the WAL into the database file
            // before exiting (whatever a running server's readers hold back, a later checkpoint does).
            if let Err(e) = evidentia::db::checkpoint(&mut conn) {
                eprintln!("note: the checkpoint after the import failed ({e}); a later one will copy it");
            }
        }
        CasesCmd::Export { study: code, out, labels } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let fields = dict::load(&mut conn, access.study.id)?;
            let page = cases::list(
                &mut conn,
                &cases::ListCache::default(),
                access.study.id,
                &fields,
                &Default::default(),
                PageRequest::all(),
            )?;
            let file = input::create(&out)?;
            cases::export::write(std::io::BufWriter::new(file), &fields, &page.items, labels)?;
            println!("wrote {} cases to {}", page.total, out.display());
        }
    }
    Ok(())
}
