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
    /// Plugins (layer and config transforms) applied on the way in, in
    /// order: the store gets the transformed image under the name.
    #[serde(default, deserialize_with = "super::one_or_many")]
    pub transform: Vec<String>,
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
    // docker stores no image whose history claims layers it does not have.
    for i in what.images() {
        i.check_history()
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
    }
    let mut names = Vec::new();
    if name.tag().is_some() {
        names.push(name.clone());
    }
    names.push(name.with_digest(digest.as_ref())?);
    let before = store
        .lookup(&name.to_string())
        .ok()
        .map(|i| i.descriptor.digest().clone());

    if !args.transform.is_empty() {
        drop(out);
        return pull_transformed(ctx, args, ui, &repo, &what, &digest, &name);
    }
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

/// A pull through transforms: each layer streams from the registry through
/// the plugins into the store; the name points at the new image (its
/// digest is not the registry's, so no `NAME@DIGEST` is recorded).
fn pull_transformed(
    ctx: &Context,
    args: &PullRequest,
    ui: &dyn Ui,
    repo: &Repository,
    what: &Copyable,
    digest: &crate::digest::Digest,
    name: &Reference,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let lines = std::sync::Arc::default();
    let transforms = ctx.transforms(&args.transform, &lines)?;
    let sink = store.sink();
    let made = crate::plugin::image::transform(store, &sink, repo, what, &transforms)?;
    let top = made_top(&made);
    let names: Vec<Reference> = name.tag().map(|_| name.clone()).into_iter().collect();
    sink.put_manifest(&top, &names)?;
    sink.commit()?;
    super::show_plugin_lines(ui, &lines);
    let mut out = ui.stdout();
    if !args.quiet {
        writeln!(out, "Digest: {digest}")?;
        writeln!(out, "Transformed: {}", top.digest)?;
        writeln!(
            out,
            "Status: Downloaded and transformed image for {}",
            name.familiar_string()
        )?;
    }
    writeln!(out, "{name}")?;
    Ok(serde_json::json!({
        "id": made_id(&made),
        "digest": top.digest.to_string(),
        "source_digest": digest.to_string(),
        "reference": name.to_string(),
    }))
}

/// The top manifest of a copyable.
pub(crate) fn made_top(what: &Copyable) -> crate::image::RawManifest {
    match what {
        Copyable::Image(i) => i.manifest().clone(),
        Copyable::Index(i, _) => i.manifest().clone(),
    }
}

/// The image ID of a copyable (an index's first image).
pub(crate) fn made_id(what: &Copyable) -> String {
    match what {
        Copyable::Image(i) => i.id().to_string(),
        Copyable::Index(_, children) => children
            .first()
            .map(|c| c.id().to_string())
            .unwrap_or_default(),
    }
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
