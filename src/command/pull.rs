//! `strata pull NAME[:TAG|@DIGEST]`

use std::io::Write;

use serde::Deserialize;

use crate::copy::{self, Copyable};
use crate::image::Platform;
use crate::reference::Reference;
use crate::transport::registry::{PlatformChoice, Repository};
use crate::transport::{Sink, TransportError};

use super::{CommandError, Context, TransferMode, Ui};

/// `pull [OPTIONS] NAME[:TAG|@DIGEST]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The image.
    pub image: String,
    /// Download all platforms of a multi-platform image, keeping its index.
    #[serde(default)]
    pub all_platforms: bool,
    /// Pull this platform (os/arch[/variant]) instead of the host's.
    #[serde(default)]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[serde(default)]
    pub quiet: bool,
    /// Layers downloaded at once.
    #[serde(default = "default_downloads")]
    pub max_concurrent_downloads: usize,
}

fn default_downloads() -> usize {
    3
}

/// Parses `--platform`, or gives the host's.
pub fn platform_choice(all: bool, platform: Option<&str>) -> Result<PlatformChoice, CommandError> {
    if all {
        return Ok(PlatformChoice::All);
    }
    Ok(match platform {
        Some(p) => PlatformChoice::One(Platform::parse(p).ok_or_else(|| {
            CommandError::Invalid(format!("invalid platform {p:?}: use os/arch[/variant]"))
        })?),
        None => PlatformChoice::One(Platform::host()),
    })
}

/// Runs `pull`: the image (or, with `--all-platforms`, the whole index)
/// into the store, named by its tag and its digest, with docker's output.
/// The outputs: `id` (the image ID), `digest`, `reference`.
pub fn run(
    ctx: &Context,
    args: &PullRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let parsed = Reference::parse(&args.image)?;
    let mut out = ui.stdout();
    if parsed.is_name_only() && !args.quiet {
        writeln!(out, "Using default tag: latest")?;
    }
    let name = parsed.with_default_tag();
    let choice = platform_choice(args.all_platforms, args.platform.as_deref())?;
    let client = ctx.registries().client(name.domain())?;
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

    let transfer = ui.transfer(TransferMode::Pull, !args.quiet);
    let progress = transfer.as_ref();
    drop(out);
    let sink = store.sink().defer_compressed_scans();
    let options = ctx.copy_options(args.max_concurrent_downloads);
    let report = copy::copy(&repo, &sink, &what, &names, &options, progress)?;
    sink.commit()?;
    transfer.finish();
    let source = format!("{}/{}", name.domain(), name.path());
    for image in what.images() {
        for layer in image.layers() {
            store.add_layer_source(layer.descriptor.digest(), &source)?;
        }
    }
    let mut out = ui.stdout();
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
    let id = match &what {
        Copyable::Image(i) => i.id().to_string(),
        Copyable::Index(_, children) => children
            .first()
            .map(|c| c.id().to_string())
            .unwrap_or_default(),
    };
    Ok(serde_json::json!({
        "id": id,
        "digest": digest.to_string(),
        "reference": name.to_string(),
    }))
}

/// docker's wording for a missing manifest.
fn not_found(e: TransportError, name: &Reference) -> CommandError {
    if let TransportError::Registry(r) = &e
        && r.is_not_found()
    {
        return CommandError::NotFound(format!(
            "manifest for {name} not found: manifest unknown: manifest unknown"
        ));
    }
    e.into()
}
