//! `evidentia dossier`: export a locked, signed study's evidence dossier; verify one.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;

use super::{study, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum DossierCmd {
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

pub fn run(ctx: &Ctx, cmd: DossierCmd) -> CliResult {
    match cmd {
        DossierCmd::Export { study: code, out } => {
            let (mut conn, actor) = ctx.open()?;
            let access = study(&mut conn, &actor, &code)?;
            let terminal = std::io::stderr().is_terminal();
            let e = evidentia::dossier::export(
                &mut conn,
                &actor,
                &ctx.cfg.data_dir,
                &access,
                &out,
                &mut |done, total, what| {
                    if terminal {
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
