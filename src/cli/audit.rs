//! `evidentia audit`: verify the hash chains, export the trail.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use evidentia::auth::permissions::Permission;
use evidentia::db::paging::PageRequest;
use evidentia::error::Error;
use evidentia::{audit, jobs};

use super::{input, progress, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum AuditCmd {
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

pub fn run(ctx: &Ctx, cmd: AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify => {
            let (pool, mut conn, actor) = ctx.open_with_pool()?;
            // Run as a job in this process, with the job's progress drawn in the terminal.
            let job = jobs::enqueue(&mut conn, &actor, None, &audit::job::VerifyParams::default())?;
            drop(conn);
            let reports = progress::run_job::<audit::job::VerifyParams>(&pool, &ctx.cfg, job.id)?.chains;
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
        AuditCmd::Export { study: code, out } => {
            let (mut conn, actor) = ctx.open()?;
            let study_id = match &code {
                Some(code) => {
                    let access = study(&mut conn, &actor, code)?;
                    access.require(Permission::ViewAudit)?;
                    Some(access.study.id)
                }
                None if actor.is_admin => None,
                None => return Err(Error::forbidden("only administrators export every chain").into()),
            };
            let page = audit::query::list(&mut conn, study_id, &Default::default(), PageRequest::all())?;
            let sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(input::create(p)?),
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
