//! `strata load [-i FILE]`

use std::io::{IsTerminal, Write};

use anyhow::bail;

use strata::copy::{self, CopyOptions, Copyable};
use strata::progress::{Progress, Silent};
use strata::transport::Sink;
use strata::transport::archive::{ArchiveSource, Input};
use strata::transport::store::Store;

use crate::cli::args::LoadArgs;
use crate::cli::progress::{Mode, Transfer, stdout_is_terminal};

/// Runs `load`: every image of the archive goes into the store in one
/// transaction, then docker's `Loaded image` lines are printed.
pub fn run(store: &Store, args: &LoadArgs) -> anyhow::Result<()> {
    let input = match &args.input {
        Some(p) => Input::Path(p.clone()),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Input::Stdin
        }
    };
    let source = ArchiveSource::open(&input, &store.ingest_dir())?;
    let bars = (!args.quiet && stdout_is_terminal()).then(|| Transfer::new(Mode::Load, true));
    let progress: &dyn Progress = match &bars {
        Some(b) => b,
        None => &Silent,
    };
    let sink = store.sink();
    let options = CopyOptions::default();
    for image in source.images() {
        copy::copy(
            &source,
            &sink,
            &image.what,
            &image.names,
            &options,
            progress,
        )?;
    }
    sink.commit()?;
    if let Some(b) = &bars {
        b.finish();
    }
    let changes = sink.name_changes();
    let mut out = std::io::stdout().lock();
    for image in source.images() {
        let id = match &image.what {
            Copyable::Image(i) => i.id().clone(),
            Copyable::Index(_, children) => match children.first() {
                Some(c) => c.id().clone(),
                None => continue,
            },
        };
        if image.names.is_empty() {
            writeln!(out, "Loaded image ID: {id}")?;
            continue;
        }
        for name in &image.names {
            let previous = changes
                .iter()
                .find(|c| &c.name == name)
                .and_then(|c| c.previous.clone());
            if let Some(prev) = previous
                && let Some(prev_id) = store.image_id_of(&prev)
                && prev_id != id
            {
                writeln!(
                    out,
                    "The image {} already exists, renaming the old one with ID {prev_id} to empty string",
                    name.familiar_string()
                )?;
            }
            writeln!(out, "Loaded image: {}", name.familiar_string())?;
        }
    }
    out.flush()?;
    Ok(())
}
