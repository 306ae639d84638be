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
        /// Choice labels instead of raw codes (the `evidentia` format).
        #[arg(long)]
        labels: bool,
        /// `evidentia`: one row per subject with its status; `redcap`: REDCap's flat record
        /// export, one row per record (event, repeating instance), which REDCap imports.
        #[arg(long, default_value = "evidentia")]
        format: String,
    },
    /// A longitudinal study's design in REDCap's files: arms, events, instrument designation,
    /// repeating instruments and events.
    #[command(subcommand)]
    Events(EventsCmd),
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Set the design from REDCap's CSV files; a file left out keeps what the study has.
    Import {
        #[arg(long)]
        study: String,
        /// Arms: `arm_num,name`.
        #[arg(long)]
        arms: Option<PathBuf>,
        /// Events: `event_name,arm_num[,day_offset][,unique_event_name]`.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Instrument designation: `arm_num,unique_event_name,form`.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Repeating instruments and events: `event_name,form_name,custom_form_label`.
        #[arg(long)]
        repeating: Option<PathBuf>,
    },
    /// Write the design's four REDCap files (arms.csv, events.csv, mapping.csv, repeating.csv)
    /// into a directory.
    Export {
        #[arg(long)]
        study: String,
        #[arg(long)]
        out: PathBuf,
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
            access.require(Permission::EnterData)?;
            let encoding = match encoding {
                None => None,
                Some(e) => Some(
                    Encoding::parse_name(&e)
                        .ok_or_else(|| Failure::Input(format!("unknown encoding '{e}' (utf-8, cp949, latin-1)")))?,
                ),
            };
            let fields = dict::load(&mut conn, access.study.id)?;
            let design = evidentia::cases::events::load(&mut conn, access.study.id)?;
            let sites = studies::sites::list(&mut conn, access.study.id, true)?;
            let key = evidentia::cases::deid::study_key(&mut conn, &ctx.cfg.data_dir, &access.study.code)?;
            let mut opts = import::ImportOptions {
                site,
                encoding,
                mrn_patterns: ctx.cfg.mrn_patterns.clone(),
                scope: access.sites.clone(),
                ..Default::default()
            };
            opts.limits.max_bytes = ctx.cfg.max_upload_bytes;
            let name = input::name(&file);
            let bytes = input::read(&file)?;
            let prepared = import::prepare(access.study.id, &fields, &design, &sites, &key, &name, &bytes, &opts);
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
            println!("import {}: {}", s.import_id, s.sentence());
            println!("{}", s.quality.sentence());
            // The import is committed and durable; copy it from the WAL into the database file
            // before exiting (whatever a running server's readers hold back, a later checkpoint does).
            if let Err(e) = evidentia::db::checkpoint(&mut conn) {
                eprintln!("note: the checkpoint after the import failed ({e}); a later one will copy it");
            }
        }
        CasesCmd::Export { format, labels: true, .. } if format == "redcap" => {
            return Err(Failure::Input(
                "--labels: REDCap's flat export holds raw codes, as REDCap imports them".into(),
            ));
        }
        CasesCmd::Export { study: code, out, format, .. } if format == "redcap" => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let (bytes, rows) = cases::export::redcap_flat(&mut conn, access.study.id, &access.sites)?;
            std::fs::write(&out, bytes).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            println!("wrote {rows} records to {}", out.display());
        }
        CasesCmd::Export { format, .. } if format != "evidentia" => {
            return Err(Failure::Input(format!("unknown format '{format}' (evidentia, redcap)")));
        }
        CasesCmd::Events(cmd) => events(&mut conn, &actor, cmd)?,
        CasesCmd::Export { study: code, out, labels, .. } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let fields = dict::load(&mut conn, access.study.id)?;
            let page = cases::list(
                &mut conn,
                &cases::ListCache::default(),
                access.study.id,
                &access.sites,
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

fn events(conn: &mut evidentia::db::Conn, actor: &evidentia::auth::Actor, cmd: EventsCmd) -> CliResult {
    use evidentia::cases::events::{self, DesignFiles};
    match cmd {
        EventsCmd::Import { study: code, arms, events: events_file, mapping, repeating } => {
            let access = study(conn, actor, &code)?;
            access.require(Permission::EditStudy)?;
            let current = events::load(conn, access.study.id)?;
            let read = |p: &Option<PathBuf>| p.as_ref().map(|p| input::read(p)).transpose();
            let (arms, events_b, mapping, repeating) =
                (read(&arms)?, read(&events_file)?, read(&mapping)?, read(&repeating)?);
            if arms.is_none() && events_b.is_none() && mapping.is_none() && repeating.is_none() {
                return Err(Failure::Input("give at least one of --arms, --events, --mapping, --repeating".into()));
            }
            let given = DesignFiles {
                arms: arms.as_deref(),
                events: events_b.as_deref(),
                mapping: mapping.as_deref(),
                repeating: repeating.as_deref(),
            };
            let forms = evidentia::quality::sdv::forms(&dict::load(conn, access.study.id)?);
            let design = events::parse_keeping(&current, &given, &forms).map_err(|e| {
                Failure::Input(e.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("\n"))
            })?;
            events::replace(conn, actor, &access, &design)?;
            println!("design saved: {}", design.summary());
        }
        EventsCmd::Export { study: code, out } => {
            let access = study(conn, actor, &code)?;
            access.require(Permission::ViewCases)?;
            let design = events::load(conn, access.study.id)?;
            std::fs::create_dir_all(&out).map_err(|e| Failure::Input(format!("{}: {e}", out.display())))?;
            for (name, write) in events::FILES {
                let path = out.join(name);
                std::fs::write(&path, write(&design)?)
                    .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
            }
            println!("wrote arms.csv, events.csv, mapping.csv and repeating.csv to {}", out.display());
        }
    }
    Ok(())
}
