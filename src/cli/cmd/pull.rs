//! `strata pull NAME[:TAG|@DIGEST]`

use std::io::Write;

use anyhow::{Context, anyhow};

use strata::copy::{self, CopyOptions};
use strata::image::Platform;
use strata::progress::{Progress, Silent};
use strata::reference::Reference;
use strata::transport::Sink;
use strata::transport::registry::{PlatformChoice, Repository};
use strata::transport::store::Store;

use crate::cli::args::PullArgs;
use crate::cli::cmd::registry::Registries;
use crate::cli::progress::{Mode, Transfer, stdout_is_terminal};

/// Runs `pull`: the image (or, with `--all-platforms`, the whole index)
/// into the store, named by its tag and its digest, with docker's output.
pub fn run(store: &Store, registries: &Registries, args: &PullArgs) -> anyhow::Result<()> {
    let parsed = Reference::parse(&args.name)?;
    let mut out = std::io::stdout().lock();
    if parsed.is_name_only() && !args.quiet {
        writeln!(out, "Using default tag: latest")?;
    }
    let name = parsed.with_default_tag();
    let choice = if args.all_platforms {
        PlatformChoice::All
    } else {
        match &args.platform {
            Some(p) => PlatformChoice::One(
                Platform::parse(p)
                    .ok_or_else(|| anyhow!("invalid platform {p:?}: use os/arch[/variant]"))?,
            ),
            None => PlatformChoice::One(Platform::host()),
        }
    };
    let client = registries.client(name.domain())?;
    let repo = Repository::new(client, name.path());
    let wanted = name.digest().or(name.tag()).unwrap_or("latest").to_string();
    if !args.quiet {
        let shown = if name.digest().is_some() {
            name.to_string()
        } else {
            wanted.clone()
        };
        writeln!(out, "{shown}: Pulling from {}", name.path())?;
        out.flush()?;
    }
    let (what, digest) = repo
        .fetch(&wanted, &choice)
        .map_err(|e| not_found(e, &name))?;
    let mut names = Vec::new();
    if name.tag().is_some() {
        names.push(name.clone());
    }
    names.push(name.with_digest(digest.as_ref())?);
    let before = store
        .lookup(&name.to_string())
        .ok()
        .map(|i| i.descriptor.digest().clone());

    let transfer = (!args.quiet).then(|| Transfer::new(Mode::Pull, stdout_is_terminal()));
    let progress: &dyn Progress = match &transfer {
        Some(t) => t,
        None => &Silent,
    };
    drop(out);
    let sink = store.sink().defer_compressed_scans();
    let options = CopyOptions {
        parallelism: args.max_concurrent_downloads.max(1),
        ..CopyOptions::default()
    };
    let report = copy::copy(&repo, &sink, &what, &names, &options, progress)?;
    sink.commit()?;
    if let Some(t) = &transfer {
        t.finish();
    }
    let source = format!("{}/{}", name.domain(), name.path());
    for image in what.images() {
        for layer in image.layers() {
            store
                .add_layer_source(layer.descriptor.digest(), &source)
                .context("recording where layers came from")?;
        }
    }
    let mut out = std::io::stdout().lock();
    if !args.quiet {
        writeln!(out, "Digest: {digest}")?;
        let up_to_date = report.copied.is_empty() && before.as_ref() == Some(what.digest());
        let status = if up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        writeln!(out, "Status: {status} {}", name.familiar_string())?;
    }
    writeln!(out, "{name}")?;
    Ok(())
}

/// docker's wording for a missing manifest.
fn not_found(e: strata::transport::TransportError, name: &Reference) -> anyhow::Error {
    if let strata::transport::TransportError::Registry(r) = &e
        && r.is_not_found()
    {
        return anyhow!("manifest for {name} not found: manifest unknown: manifest unknown");
    }
    e.into()
}
