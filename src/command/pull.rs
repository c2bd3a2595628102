//! `strata pull NAME[:TAG|@DIGEST]`

use std::io::Write;

use serde::Deserialize;

use crate::copy::{self, Copyable};
use crate::image::Platform;
use crate::reference::Reference;
use crate::transport::registry::{PlatformChoice, RegistryError, Repository};
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
    /// Download all tagged images in the repository.
    #[serde(default)]
    pub all_tags: bool,
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
/// into the store, named by its tag and its digest, with docker's output;
/// with `--all-tags`, every tag of the repository.
/// The outputs: `id` (the image ID), `digest`, `reference` (of the last
/// tag for `--all-tags`, which adds `pulled`: each tag's).
pub fn run(
    ctx: &Context,
    args: &PullRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    // Files a killed writer left behind go before this one adds its own.
    ctx.store_for_writing()?;
    let parsed = Reference::parse(&args.image)?;
    if args.all_tags {
        return pull_all_tags(ctx, args, ui, &parsed);
    }
    let mut out = ui.stdout();
    if parsed.is_name_only() && !args.quiet {
        writeln!(out, "Using default tag: latest")?;
    }
    drop(out);
    let name = parsed.with_default_tag();
    let choice = platform_choice(args.all_platforms, args.platform.as_deref())?;
    let client = ctx.registries().client(name.domain())?;
    let repo = Repository::new(client, name.path());
    if !args.transform.is_empty() {
        let (what, digest) = fetch(args, ui, &repo, &name, &choice)?;
        return pull_transformed(ctx, args, ui, &repo, &what, &digest, &name);
    }
    let pulled = pull_one(ctx, args, ui, &repo, &name, &choice)?;
    let mut out = ui.stdout();
    if !args.quiet {
        writeln!(
            out,
            "Status: {} {}",
            status(pulled.up_to_date),
            name.familiar_string()
        )?;
    }
    writeln!(out, "{name}")?;
    let mut outputs = pulled.outputs.clone();
    outputs["pulled"] = serde_json::json!([pulled.outputs]);
    Ok(outputs)
}

/// docker's last line but one, after all tags pulled.
fn status(up_to_date: bool) -> &'static str {
    if up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    }
}

/// `pull --all-tags REPOSITORY`: each tag in the registry's order, as
/// docker does, then one status line for the repository.
fn pull_all_tags(
    ctx: &Context,
    args: &PullRequest,
    ui: &dyn Ui,
    parsed: &Reference,
) -> Result<serde_json::Value, CommandError> {
    if !parsed.is_name_only() {
        return Err(CommandError::Invalid(
            "tag can't be used with --all-tags/-a".into(),
        ));
    }
    if !args.transform.is_empty() {
        return Err(CommandError::Invalid(
            "--all-tags cannot be used with --transform: pull each tag through the transforms by name".into(),
        ));
    }
    let choice = platform_choice(args.all_platforms, args.platform.as_deref())?;
    let client = ctx.registries().client(parsed.domain())?;
    let repo = Repository::new(client, parsed.path());
    let repository = parsed.without_tag_or_digest();
    let tags = repo
        .tags()
        .map_err(|e| repository_not_found(e, &repository))?;
    let mut pulled = Vec::with_capacity(tags.len());
    let mut up_to_date = true;
    for tag in &tags {
        let name = parsed.with_tag(tag)?;
        let one = pull_one(ctx, args, ui, &repo, &name, &choice)?;
        up_to_date &= one.up_to_date;
        pulled.push(one.outputs);
    }
    let mut out = ui.stdout();
    if !args.quiet {
        writeln!(
            out,
            "Status: {} {}",
            status(up_to_date),
            repository.familiar_string()
        )?;
    }
    writeln!(out, "{repository}")?;
    let mut outputs = pulled.last().cloned().unwrap_or_default();
    outputs["pulled"] = serde_json::Value::Array(pulled);
    Ok(outputs)
}

/// What one tag's pull did.
struct Pulled {
    /// Nothing was downloaded and the name already named this image.
    up_to_date: bool,
    /// `id`, `digest` and `reference`.
    outputs: serde_json::Value,
}

/// Says which tag is pulled from where, then resolves it to an image (or
/// index) and checks it is one docker would store.
fn fetch(
    args: &PullRequest,
    ui: &dyn Ui,
    repo: &Repository,
    name: &Reference,
    choice: &PlatformChoice,
) -> Result<(Copyable, crate::digest::Digest), CommandError> {
    let wanted = name.digest().or(name.tag()).unwrap_or("latest").to_string();
    if !args.quiet {
        let shown = if name.digest().is_some() {
            name.to_string()
        } else {
            wanted.clone()
        };
        let mut out = ui.stdout();
        writeln!(out, "{shown}: Pulling from {}", name.path())?;
        out.flush()?;
    }
    let (what, digest) = repo
        .fetch(&wanted, choice)
        .map_err(|e| not_found(e, name))?;
    if let (Some(_), PlatformChoice::One(want), Copyable::Image(image)) =
        (&args.platform, choice, &what)
    {
        refuse_other_platform(name, want, &image.platform())?;
    }
    // docker stores no image whose history claims layers it does not have.
    for i in what.images() {
        i.check_history()
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
    }
    Ok((what, digest))
}

/// One tag or digest into the store, named by it and by its digest: from
/// "Pulling from" to "Digest:".
fn pull_one(
    ctx: &Context,
    args: &PullRequest,
    ui: &dyn Ui,
    repo: &Repository,
    name: &Reference,
    choice: &PlatformChoice,
) -> Result<Pulled, CommandError> {
    let store = ctx.store_for_writing()?;
    let (what, digest) = fetch(args, ui, repo, name, choice)?;
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
    let sink = store.sink().defer_compressed_scans();
    let options = ctx.copy_options(args.max_concurrent_downloads);
    let report = copy::copy(repo, &sink, &what, &names, &options, progress)?;
    sink.commit()?;
    transfer.finish();
    let source = format!("{}/{}", name.domain(), name.path());
    for image in what.images() {
        for layer in image.layers() {
            store.add_layer_source(layer.descriptor.digest(), &source)?;
        }
    }
    if !args.quiet {
        writeln!(ui.stdout(), "Digest: {digest}")?;
    }
    let id = match &what {
        Copyable::Image(i) => i.id().to_string(),
        Copyable::Index(_, children) => children
            .first()
            .map(|c| c.id().to_string())
            .unwrap_or_default(),
    };
    Ok(Pulled {
        up_to_date: report.copied.is_empty() && before.as_ref() == Some(what.digest()),
        outputs: serde_json::json!({
            "id": id,
            "digest": digest.to_string(),
            "reference": name.to_string(),
        }),
    })
}

/// A single-platform image asked for by `--platform` must be that
/// platform: storing it under the name would run something else than asked.
/// (An index's child was chosen by the platform already.) A variant counts
/// only when both name one: `linux/arm64/v8` is `linux/arm64`.
fn refuse_other_platform(
    name: &Reference,
    want: &Platform,
    have: &Platform,
) -> Result<(), CommandError> {
    let variants_agree =
        want.variant.is_none() || have.variant.is_none() || want.variant == have.variant;
    if want.os == have.os && want.architecture == have.architecture && variants_agree {
        return Ok(());
    }
    Err(CommandError::Invalid(format!(
        "image with reference {name} was found but does not match the specified platform: wanted {want}, actual: {have}"
    )))
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
    let store = ctx.store_for_writing()?;
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

/// A descriptor of a copyable's top manifest, to lease it.
pub(crate) fn made_descriptor(what: &Copyable) -> oci_spec::image::Descriptor {
    let top = made_top(what);
    oci_spec::image::Descriptor::new(
        top.media_type.as_str().into(),
        top.bytes.len() as u64,
        top.digest,
    )
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
/// docker's words for a repository the registry does not know.
fn repository_not_found(e: RegistryError, repository: &Reference) -> CommandError {
    if let RegistryError::Status {
        status: 404,
        errors,
        ..
    } = &e
    {
        let why = errors.first().map_or_else(
            || "not found".to_string(),
            |a| format!("{}: {}", a.code.to_lowercase().replace('_', " "), a.message),
        );
        return CommandError::NotFound(format!("repository {repository} not found: {why}"));
    }
    e.into()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_platform_image_must_be_the_platform_asked_for() {
        let name = Reference::parse("r.test/a:1").unwrap();
        let p = |s: &str| Platform::parse(s).unwrap();
        let e = refuse_other_platform(&name, &p("linux/arm64"), &p("linux/amd64")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image with reference r.test/a:1 was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        );
        refuse_other_platform(&name, &p("linux/arm64/v8"), &p("linux/arm64")).unwrap();
        refuse_other_platform(&name, &p("linux/amd64"), &p("linux/amd64")).unwrap();
        assert!(refuse_other_platform(&name, &p("linux/arm/v6"), &p("linux/arm/v7")).is_err());
        assert!(refuse_other_platform(&name, &p("windows/amd64"), &p("linux/amd64")).is_err());
    }
}
