//! `evidentia docs cli`: the CLI reference (`docs/cli.md`), generated from the clap definitions
//! so it cannot drift from them (a test compares it with the committed file).

use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};

use super::{input, Cli, CliResult, Failure};

#[derive(Subcommand)]
pub enum DocsCmd {
    /// Write the CLI reference in Markdown (to stdout, or --out FILE).
    Cli {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: DocsCmd) -> CliResult {
    match cmd {
        DocsCmd::Cli { out: None } => print!("{}", markdown()),
        DocsCmd::Cli { out: Some(path) } => {
            std::fs::write(&path, markdown()).map_err(|e| Failure::Input(format!("{}: {e}", input::name(&path))))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The reference: a contents list, then every (visible) command's `--help`, depth first.
pub fn markdown() -> String {
    // Environment values would make the text depend on who generates it.
    let mut root = Cli::command().mut_args(|a| a.hide_env_values(true));
    root.build();
    let mut commands = Vec::new();
    collect(&root, &mut commands);
    let mut md = String::from(
        "# Command-line reference\n\n\
         Generated from the program by `evidentia docs cli --out docs/cli.md`; a test checks that \
         this file is current. Every command that works on a data dir takes `--data-dir DIR` \
         (default `data`, or `demo-data` for `demo`; env `EVIDENTIA_DATA_DIR`) and `--as USER` \
         (act as that user, whose roles are checked; without it, the local operator with \
         administrator rights). An input file whose help says so may be given as `-`, standard \
         input. Exit status: 0 done, 2 bad input (the message names the file, row or field), 1 anything else.\n\n",
    );
    for (path, _) in &commands {
        let anchor = path.replace(' ', "-");
        md.push_str(&format!("- [`{path}`](#{anchor})\n"));
    }
    for (path, help) in &commands {
        let help: Vec<&str> = help.trim_end().lines().map(str::trim_end).collect();
        md.push_str(&format!("\n## `{path}`\n\n```text\n{}\n```\n", help.join("\n")));
    }
    md
}

fn collect(cmd: &clap::Command, out: &mut Vec<(String, String)>) {
    let path = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    out.push((path, cmd.clone().render_long_help().to_string()));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        collect(sub, out);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_cli_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::markdown(),
            "docs/cli.md is not what the program's clap definitions give: run \
             `cargo run -- docs cli --out docs/cli.md` and commit it"
        );
    }
}
