//! `evidentia study`: studies, sites, members, lock and signatures.

use clap::Subcommand;

use evidentia::auth::{esign, users};
use evidentia::db::paging::PageRequest;
use evidentia::db::Conn;
use evidentia::studies::{self, members, sites};

use super::{input, study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum StudyCmd {
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
        /// manager, annotator, statistician, monitor or site (site staff)
        #[arg(long)]
        role: String,
        /// Site staff: a site code whose subjects they work on (repeat for several sites)
        #[arg(long = "site")]
        sites: Vec<String>,
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

pub fn run(ctx: &Ctx, cmd: StudyCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
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
        StudyCmd::AddSite { study: code, code: site, name, country, irb_reference, irb_approval_date } => {
            let access = study(&mut conn, &actor, &code)?;
            let input = sites::SiteInput { code: site, name, country, irb_reference, irb_approval_date };
            let s = sites::add(&mut conn, &actor, &access, &input)?;
            println!("added site {} to {}", s.code, access.study.code);
        }
        StudyCmd::AddMember { study: code, username, role, sites } => {
            let access = study(&mut conn, &actor, &code)?;
            let m = members::add_to_sites(&mut conn, &actor, &access, &username, &role, &sites)?;
            println!("added {} to {} as {}", m.username, access.study.code, m.role_described());
        }
        StudyCmd::Lock { study: code, reason } => {
            let access = study(&mut conn, &actor, &code)?;
            for c in studies::lock::checklist(&mut conn, access.study.id)? {
                let mark = if c.ok {
                    "x"
                } else if c.advisory {
                    "!"
                } else {
                    " "
                };
                eprintln!("[{mark}] {} — {}", c.label, c.detail);
            }
            let s = studies::transition(&mut conn, &actor, &access, "locked", &reason)?;
            print_lock_state(&mut conn, &s)?;
        }
        StudyCmd::Sign { study: code, username, meaning, password_stdin } => {
            if !password_stdin {
                return Err(Failure::Input("give the password on stdin with --password-stdin".into()));
            }
            let password = input::password_stdin()?;
            // The signer acts, whoever runs the command: their password is checked.
            let signer = users::actor_for_username(&mut conn, &username)?;
            let access = study(&mut conn, &signer, &code)?;
            let signing = esign::Signing { password: esign::Password::Plain(&password), meaning: &meaning };
            let sig = studies::lock::sign(&mut conn, &signer, &access, signing)?;
            println!("signed by {} ({}) for {} at {} UTC", sig.full_name, sig.role, sig.meaning, sig.signed_at);
            let s = studies::get_by_code(&mut conn, &access.study.code)?;
            print_lock_state(&mut conn, &s)?;
        }
        StudyCmd::Unlock { study: code, reason } => {
            let access = study(&mut conn, &actor, &code)?;
            let s = studies::transition(&mut conn, &actor, &access, "active", &reason)?;
            println!("{} is unlocked (active); its signatures are void", s.code);
        }
        StudyCmd::SetStatus { study: code, to, reason } => {
            let access = study(&mut conn, &actor, &code)?;
            let s = studies::transition(&mut conn, &actor, &access, &to, &reason)?;
            println!("{} is now {}", s.code, s.status);
        }
    }
    Ok(())
}

/// "LUNG-IO-01 locked — awaiting 1 of 2 signatures (snapshot …)".
fn print_lock_state(conn: &mut Conn, study: &studies::Study) -> CliResult {
    match studies::lock::state(conn, study.id)? {
        Some(s) => println!("{} {} (snapshot SHA-256 {})", study.code, s.label(), s.lock.snapshot_sha256),
        None => println!("{} is {}", study.code, study.status),
    }
    Ok(())
}
