//! `strata completion SHELL` and `strata man`: shell completion scripts and
//! manual pages generated from the clap definitions, so they cannot drift
//! from the commands. `build.rs` writes the same files at build time.

use std::io::Write;

use anyhow::Context as _;
use clap::CommandFactory;

use super::args::{Cli, CompletionArgs, ManArgs};

/// Prints the completion script for a shell.
pub fn completion(args: &CompletionArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "strata", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

/// Prints strata.1, or writes every command's page into `--dir`.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write manual pages to {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
            Ok(())
        }
    }
}
