//! The command line: argument types, one module per command, and the
//! rendering of progress and errors.

mod args;
mod docs;
mod login;
mod progress;
mod requests;
mod run;
mod ui;

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use strata::command::{self, CommandError, Context};
use strata::transport::registry::Registries;

use args::{Cli, Command, ImageCommand, SystemCommand};

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
/// command fails, 125 for usage errors (as docker), a malformed image
/// address among them.
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
        Ok(()) if ui::stdout_closed() => SIGPIPE_STATUS,
        Ok(()) => 0,
        Err(e) => {
            if let Some(Reported(code)) = e.downcast_ref::<Reported>() {
                return *code;
            }
            // The reader of our output went away: docker dies of SIGPIPE
            // there, silently, and the shell sees 128 + 13. An archive on
            // standard output is no such output: its loss is reported.
            if ui::stdout_closed() {
                return SIGPIPE_STATUS;
            }
            // Several items failed: one line each, as docker prints them.
            if let Some(CommandError::Partial(messages)) = e.downcast_ref::<CommandError>() {
                let _ = io::stdout().flush();
                for m in messages {
                    eprintln!("Error: {}", m.replace(['\n', '\r'], " "));
                }
                return 1;
            }
            let _ = io::stdout().flush();
            // A malformed address is a usage error, as a bad flag is.
            if let Some(e @ CommandError::Address(_)) = e.downcast_ref::<CommandError>() {
                eprintln!("Error: {}", e.to_string().replace(['\n', '\r'], " "));
                return 125;
            }
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

/// The status a shell shows for a process killed by SIGPIPE.
const SIGPIPE_STATUS: i32 = 128 + libc::SIGPIPE;

/// docker's confirmation: the question and ` [y/N] ` on standard output,
/// then one answer from standard input; only `y` or `Y` goes on (no input
/// at all is a no).
fn confirm(message: &str) -> anyhow::Result<bool> {
    let mut out = io::stdout();
    write!(out, "{message} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
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
    // Neither needs a store (nor a home directory to find one in).
    match &cli.command {
        Command::Completion(a) => return docs::completion(a),
        Command::Man(a) => return docs::man(a),
        _ => {}
    }
    let root = match cli.root {
        Some(r) => r,
        None => default_root()?,
    };
    let registries = Registries::new(&cli.insecure_registries);
    let ui = ui::Terminal::new();
    if let Command::Run(a) = cli.command {
        return run::run(root, registries, &ui, a);
    }
    let ctx = Context::new(root, registries);
    // `docker inspect` speaks of objects, `docker image inspect` of images.
    let image_noun = matches!(cli.command, Command::Image(_));
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
            ImageCommand::Prune(a) => {
                let request: command::prune::ImagePruneRequest = a.into();
                let warning = if request.all {
                    command::prune::ALL_WARNING
                } else {
                    command::prune::DANGLING_WARNING
                };
                if request.force || confirm(warning)? {
                    command::prune::run(&ctx, &request, &ui)?;
                }
                return Ok(());
            }
        },
        Command::System(sub) => {
            match sub {
                SystemCommand::Df(a) => command::system::df(&ctx, &a.into(), &ui)?,
                SystemCommand::Check(a) => command::system::check(&ctx, &a.into(), &ui)?,
                SystemCommand::Prune(a) => {
                    let request: command::system::SystemPruneRequest = a.into();
                    if !request.force && !confirm(&command::system::prune_warning(request.all))? {
                        return Ok(());
                    }
                    command::system::prune(&ctx, &request, &ui)?
                }
            };
            return Ok(());
        }
        other => other,
    };
    let _outputs = match command {
        Command::Images(a) => command::images::run(&ctx, &a.into(), &ui)?,
        Command::Tag(a) => command::tag::run(&ctx, &a.into(), &ui)?,
        Command::History(a) => command::history::run(&ctx, &a.into(), &ui)?,
        Command::Inspect(a) => command::inspect::run(&ctx, &a.into_request(image_noun), &ui)?,
        Command::Rmi(a) => command::rmi::run(&ctx, &a.into(), &ui)?,
        Command::Save(a) => command::save::run(&ctx, &a.into(), &ui)?,
        Command::Load(a) => command::load::run(&ctx, &a.into(), &ui)?,
        Command::Pull(a) => command::pull::run(&ctx, &a.into(), &ui)?,
        Command::Push(a) => command::push::run(&ctx, &a.into(), &ui)?,
        Command::Copy(a) => command::copy::run(&ctx, &a.into(), &ui)?,
        Command::Search(a) => command::search::run(&ctx, &a.into(), &ui)?,
        Command::Login(a) => command::login::login(&ctx, &login::request(a)?, &ui)?,
        Command::Logout(a) => command::login::logout(&ctx, &a.into(), &ui)?,
        Command::Mount(a) => command::mount::mount(&ctx, &a.into(), &ui)?,
        Command::Umount(a) => command::mount::umount(&ctx, &a.into(), &ui)?,
        Command::Plugin(args::PluginCommand::Inspect(a)) => {
            command::plugin::inspect(&ctx, &a.into(), &ui)?
        }
        Command::Plugin(args::PluginCommand::Run(a)) => command::plugin::run(&ctx, &a.into(), &ui)?,
        Command::Plugin(args::PluginCommand::Push(a)) => {
            command::plugin::push(&ctx, &a.into(), &ui)?
        }
        Command::Image(_)
        | Command::Run(_)
        | Command::System(_)
        | Command::Completion(_)
        | Command::Man(_) => {
            unreachable!("handled above")
        }
    };
    Ok(())
}
