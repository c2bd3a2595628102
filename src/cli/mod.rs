//! The command line: argument types, one module per command, and the
//! rendering of progress and errors.

mod args;
mod cmd;
mod progress;

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use strata::transport::store::Store;

use args::{Cli, Command, ImageCommand};

/// An error that has already been reported to the user; only the exit
/// code remains to be given.
#[derive(Debug)]
pub struct Reported(pub i32);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Reported {}

/// Runs strata and returns the process exit code: 0 on success, 1 when a
/// command fails, 125 for usage errors (as docker).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(Reported(code)) = e.downcast_ref::<Reported>() {
                return *code;
            }
            if is_broken_pipe(&e) {
                return 0;
            }
            let _ = io::stdout().flush();
            // One line, whatever a cause quotes.
            eprintln!("Error: {}", chain(&e).replace(['\n', '\r'], " "));
            1
        }
    }
}

/// The error and its causes on one line, each cause once.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = without_os_error(&cause.to_string());
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Drops Rust's " (os error N)" suffix: the text before it already says it.
fn without_os_error(text: &str) -> String {
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text.to_string(),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn default_root() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("strata"));
    }
    let home = std::env::var_os("HOME")
        .context("neither --root, STRATA_ROOT, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/strata"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = match cli.root {
        Some(r) => r,
        None => default_root()?,
    };
    let store = || {
        Store::open(&root)
            .with_context(|| format!("cannot open the image store at {}", root.display()))
    };
    let registries = cmd::registry::Registries::new(&cli.insecure_registries);
    // `docker inspect` speaks of objects, `docker image inspect` of images.
    let inspect_noun = if matches!(cli.command, Command::Image(_)) {
        "image"
    } else {
        "object"
    };
    let command = match cli.command {
        Command::Image(sub) => match sub {
            ImageCommand::Ls(a) => Command::Images(a),
            ImageCommand::Tag(a) => Command::Tag(a),
            ImageCommand::History(a) => Command::History(a),
            ImageCommand::Inspect(a) => Command::Inspect(a),
            ImageCommand::Rm(a) => Command::Rmi(a),
            ImageCommand::Save(a) => Command::Save(a),
            ImageCommand::Load(a) => Command::Load(a),
            ImageCommand::Pull(a) => Command::Pull(a),
            ImageCommand::Push(a) => Command::Push(a),
            ImageCommand::Mount(a) => Command::Mount(a),
            ImageCommand::Umount(a) => Command::Umount(a),
        },
        other => other,
    };
    match command {
        Command::Images(a) => cmd::images::run(&store()?, &a),
        Command::Tag(a) => cmd::tag::run(&store()?, &a),
        Command::History(a) => cmd::history::run(&store()?, &a),
        Command::Inspect(a) => cmd::inspect::run(&store()?, &a, inspect_noun),
        Command::Rmi(a) => cmd::rmi::run(&store()?, &a),
        Command::Save(a) => cmd::save::run(&store()?, &a),
        Command::Load(a) => cmd::load::run(&store()?, &a),
        Command::Pull(a) => cmd::pull::run(&store()?, &registries, &a),
        Command::Push(a) => cmd::push::run(&store()?, &registries, &a),
        Command::Search(a) => cmd::search::run(&registries, &a),
        Command::Login(a) => cmd::login::login(&registries, &a),
        Command::Logout(a) => cmd::login::logout(&a),
        Command::Mount(a) => cmd::mount::mount(&store()?, &a),
        Command::Umount(a) => cmd::mount::umount(&store()?, &a),
        Command::Image(_) => unreachable!("image subcommands are mapped above"),
    }
}
