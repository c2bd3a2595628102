//! `strata push NAME[:TAG]`

use std::collections::HashSet;
use std::io::Write;

use anyhow::{Context, anyhow, bail};

use strata::copy::{self, CopyOptions, Copyable};
use strata::progress::{Progress, Silent};
use strata::reference::Reference;
use strata::transport::Sink;
use strata::transport::registry::{Repository, RepositorySink, UploadOptions};
use strata::transport::store::{Store, StoredImage, Target};

use crate::cli::args::PushArgs;
use crate::cli::cmd::registry::Registries;
use crate::cli::progress::{Mode, Transfer, stdout_is_terminal};

/// Runs `push`: each tag's manifest byte for byte (so its digest is the
/// same in the registry), blobs first, with docker's output.
pub fn run(store: &Store, registries: &Registries, args: &PushArgs) -> anyhow::Result<()> {
    let parsed = Reference::parse(&args.name)?;
    if parsed.digest().is_some() {
        bail!("cannot push a digest reference: name a tag");
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
            bail!(
                "An image does not exist locally with the tag: {}",
                parsed.familiar_name()
            );
        }
    } else {
        if parsed.is_name_only() && !args.quiet {
            println!("Using default tag: latest");
        }
        let name = parsed.clone().with_default_tag();
        let image = images
            .iter()
            .find(|i| i.names.contains(&name))
            .ok_or_else(|| {
                anyhow!(
                    "An image does not exist locally with the tag: {}",
                    name.familiar_string()
                )
            })?;
        targets.push((name, image));
    }
    let client = registries.client(parsed.domain())?;
    let repo = Repository::new(client, parsed.path());
    if !args.quiet {
        println!("The push refers to repository [{}]", parsed.repository());
    }
    let registry = parsed.domain().to_string();
    for (name, image) in targets {
        push_one(store, &repo, &registry, &name, image, args)?;
    }
    Ok(())
}

fn push_one(
    store: &Store,
    repo: &Repository,
    registry: &str,
    name: &Reference,
    image: &StoredImage,
    args: &PushArgs,
) -> anyhow::Result<()> {
    let what = match &image.target {
        Target::Index(index) => {
            let mut children = Vec::new();
            for child in index.children() {
                if !store.has_blob(child.digest()) {
                    bail!(
                        "{} is a multi-platform image whose platform {} is not in the store: pull it with --all-platforms first",
                        name.familiar_string(),
                        child.digest()
                    );
                }
                children.push(store.load_image(store.read_manifest(child)?)?);
            }
            Copyable::Index(index.clone(), children)
        }
        Target::Image => Copyable::Image(Box::new(image.image.clone())),
    };
    let transfer = (!args.quiet).then(|| Transfer::new(Mode::Push, stdout_is_terminal()));
    if let Some(t) = &transfer {
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
    let progress: &dyn Progress = match &transfer {
        Some(t) => t,
        None => &Silent,
    };
    let prefix = format!("{registry}/");
    let lookup = store.clone();
    let candidates = Box::new(move |d: &strata::digest::Digest| {
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
    let options = CopyOptions {
        parallelism: args.max_concurrent_uploads.max(1),
        ..CopyOptions::default()
    };
    copy::copy(
        store,
        &sink,
        &what,
        std::slice::from_ref(name),
        &options,
        progress,
    )?;
    sink.commit()?;
    if let Some(t) = &transfer {
        t.finish();
    }
    let source = format!("{registry}/{}", repo.name());
    for img in what.images() {
        for layer in img.layers() {
            store
                .add_layer_source(layer.descriptor.digest(), &source)
                .context("recording where layers are")?;
        }
    }
    let top = match &what {
        Copyable::Image(i) => i.manifest().clone(),
        Copyable::Index(i, _) => i.manifest().clone(),
    };
    let mut out = std::io::stdout().lock();
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
    Ok(())
}
