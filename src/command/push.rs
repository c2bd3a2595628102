//! `strata push NAME[:TAG]`

use std::collections::HashSet;
use std::io::Write;

use serde::Deserialize;

use crate::copy::{self, Copyable};
use crate::reference::Reference;
use crate::transport::Sink;
use crate::transport::registry::{Repository, RepositorySink, UploadOptions};
use crate::transport::store::StoredImage;

use super::{CommandError, Context, TransferMode, Ui};

/// `push [OPTIONS] NAME[:TAG]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The image.
    pub image: String,
    /// Push all tags of the repository.
    #[serde(default)]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[serde(default)]
    pub quiet: bool,
    /// Layers uploaded at once.
    #[serde(default = "default_uploads")]
    pub max_concurrent_uploads: usize,
    /// Upload blobs larger than this many bytes in chunks of it.
    #[serde(default)]
    pub chunk_size: Option<u64>,
}

fn default_uploads() -> usize {
    5
}

/// Runs `push`: each tag's manifest byte for byte (so its digest is the
/// same in the registry), blobs first, with docker's output. The outputs:
/// `reference`, `digest` and `size` of the last tag pushed, and `pushed`,
/// every tag with its digest.
pub fn run(
    ctx: &Context,
    args: &PushRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let parsed = Reference::parse(&args.image)?;
    if parsed.digest().is_some() {
        return Err(CommandError::Invalid(
            "cannot push a digest reference: name a tag".into(),
        ));
    }
    let images = store.list()?;
    let mut targets: Vec<(Reference, &StoredImage)> = Vec::new();
    if parsed.is_name_only() && args.all_tags {
        for image in &images {
            for n in image
                .tags()
                .filter(|n| n.repository() == parsed.repository())
            {
                targets.push((n.clone(), image));
            }
        }
        if targets.is_empty() {
            return Err(CommandError::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                parsed.familiar_name()
            )));
        }
    } else {
        if parsed.is_name_only() && !args.quiet {
            writeln!(ui.stdout(), "Using default tag: latest")?;
        }
        let name = parsed.clone().with_default_tag();
        let image = images
            .iter()
            .find(|i| i.names.contains(&name))
            .ok_or_else(|| {
                CommandError::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    name.familiar_string()
                ))
            })?;
        targets.push((name, image));
    }
    let client = ctx.registries().client(parsed.domain())?;
    let repo = Repository::new(client, parsed.path());
    if !args.quiet {
        writeln!(
            ui.stdout(),
            "The push refers to repository [{}]",
            parsed.repository()
        )?;
    }
    let registry = parsed.domain().to_string();
    let mut pushed = Vec::new();
    for (name, image) in targets {
        let top = push_one(ctx, &repo, &registry, &name, image, args, ui)?;
        pushed.push(serde_json::json!({
            "reference": name.to_string(),
            "digest": top.digest.to_string(),
            "size": top.bytes.len(),
        }));
    }
    let mut outputs = pushed.last().cloned().unwrap_or_default();
    outputs["pushed"] = serde_json::Value::Array(pushed);
    Ok(outputs)
}

fn push_one(
    ctx: &Context,
    repo: &Repository,
    registry: &str,
    name: &Reference,
    image: &StoredImage,
    args: &PushRequest,
    ui: &dyn Ui,
) -> Result<crate::image::RawManifest, CommandError> {
    let store = ctx.store()?;
    let _lease = store.lease(std::slice::from_ref(&image.descriptor))?;
    let (what, cut) = store.copyable(image)?;
    if cut {
        // Pushing one platform under the tag would change what it names.
        return Err(CommandError::Invalid(format!(
            "{} is a multi-platform image whose other platforms are not in the store: pull it with --all-platforms first",
            name.familiar_string(),
        )));
    }
    let transfer = ui.transfer(TransferMode::Push, !args.quiet);
    {
        let t = &transfer;
        let mut seen = HashSet::new();
        for img in what.images() {
            for layer in img.layers().iter().rev() {
                if seen.insert(layer.descriptor.digest().clone()) {
                    t.announce(
                        layer.descriptor.digest(),
                        &layer.diff_id.digest()[..12],
                        "Preparing",
                    );
                }
            }
        }
    }
    let progress = transfer.as_ref();
    let prefix = format!("{registry}/");
    let lookup = store.clone();
    let candidates = Box::new(move |d: &crate::digest::Digest| {
        lookup
            .layer_sources(d)
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix).map(str::to_string))
            .collect()
    });
    let mut sink = RepositorySink::new(repo.clone(), candidates);
    if let Some(size) = args.chunk_size {
        sink = sink.with_upload(UploadOptions {
            chunked_above: size,
            chunk: size,
        });
    }
    let options = ctx.copy_options(args.max_concurrent_uploads);
    copy::copy(
        store,
        &sink,
        &what,
        std::slice::from_ref(name),
        &options,
        progress,
    )?;
    sink.commit()?;
    transfer.finish();
    let source = format!("{registry}/{}", repo.name());
    for img in what.images() {
        for layer in img.layers() {
            store.add_layer_source(layer.descriptor.digest(), &source)?;
        }
    }
    let top = match &what {
        Copyable::Image(i) => i.manifest().clone(),
        Copyable::Index(i, _) => i.manifest().clone(),
    };
    let mut out = ui.stdout();
    if args.quiet {
        writeln!(out, "{name}")?;
    } else {
        writeln!(
            out,
            "{}: digest: {} size: {}",
            name.tag().unwrap_or("latest"),
            top.digest,
            top.bytes.len()
        )?;
    }
    Ok(top)
}
