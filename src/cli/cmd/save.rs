//! `strata save [-o FILE] IMAGE...`

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, anyhow, bail};

use strata::copy::{self, CopyOptions, Copyable};
use strata::progress::Silent;
use strata::reference::{self, Reference};
use strata::transport::Sink;
use strata::transport::archive::{ArchiveSink, OutputCompression};
use strata::transport::store::{LookupError, Store, StoredImage, Target, lookup_in, temp_path};

use crate::cli::args::SaveArgs;

/// Runs `save`: the named images into one archive, each blob once.
pub fn run(store: &Store, args: &SaveArgs) -> anyhow::Result<()> {
    let compression = match &args.compress {
        Some(c) => OutputCompression::parse(c)
            .ok_or_else(|| anyhow!("invalid --compress {c:?}: use none, gzip or zstd"))?,
        None => args.output.as_ref().map_or(OutputCompression::None, |p| {
            OutputCompression::from_file_name(&p.to_string_lossy())
        }),
    };
    let images = store.list()?;
    let selected = select(&images, &args.images)?;
    match &args.output {
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let tmp = temp_path(dir, ".strata-save");
            let file =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let result = write(
                store,
                &selected,
                &path.display().to_string(),
                file,
                compression,
            )
            .and_then(|()| {
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            // A file on fd 1 rather than Rust's line-buffered stdout.
            let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
            write(
                store,
                &selected,
                "standard output",
                File::from(fd),
                compression,
            )
        }
    }
}

fn write(
    store: &Store,
    selected: &[(&StoredImage, Vec<Reference>)],
    name: &str,
    out: File,
    compression: OutputCompression,
) -> anyhow::Result<()> {
    let sink = ArchiveSink::new(name, out, compression);
    let options = CopyOptions {
        parallelism: 1,
        ..CopyOptions::default()
    };
    for (image, names) in selected {
        let what = copyable(store, image)?;
        copy::copy(store, &sink, &what, names, &options, &Silent)?;
    }
    sink.commit()?;
    Ok(())
}

/// An index travels whole when all its children are here; otherwise only
/// the child this host would use.
fn copyable(store: &Store, image: &StoredImage) -> anyhow::Result<Copyable> {
    if let Target::Index(index) = &image.target {
        let mut children = Vec::new();
        for child in index.children() {
            if !store.has_blob(child.digest()) {
                return Ok(Copyable::Image(Box::new(image.image.clone())));
            }
            children.push(store.load_image(store.read_manifest(child)?)?);
        }
        return Ok(Copyable::Index(index.clone(), children));
    }
    Ok(Copyable::Image(Box::new(image.image.clone())))
}

/// docker's rules for what `save NAME` means: a name without tag saves
/// every tag of that repository; an ID saves the image with no names.
fn select<'a>(
    images: &'a [StoredImage],
    queries: &[String],
) -> anyhow::Result<Vec<(&'a StoredImage, Vec<Reference>)>> {
    let mut out: Vec<(&StoredImage, Vec<Reference>)> = Vec::new();
    let mut add = |image: &'a StoredImage, name: Option<Reference>| {
        let pos = match out
            .iter()
            .position(|(i, _)| i.descriptor.digest() == image.descriptor.digest())
        {
            Some(p) => p,
            None => {
                out.push((image, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(n) = name
            && n.tag().is_some()
            && !out[pos].1.contains(&n)
        {
            out[pos].1.push(n);
        }
    };
    for q in queries {
        if reference::is_full_id(q) {
            add(lookup_in(images, q)?, None);
            continue;
        }
        let parsed = Reference::parse(q).map_err(LookupError::from)?;
        if parsed.is_name_only() {
            let mut found = false;
            for image in images {
                for n in image
                    .names
                    .iter()
                    .filter(|n| n.repository() == parsed.repository())
                {
                    add(image, Some(n.clone()));
                    found = true;
                }
            }
            if !found {
                add(lookup_in(images, q)?, None);
            }
            continue;
        }
        let image = lookup_in(images, q)?;
        let by_name = image
            .names
            .iter()
            .any(|n| *n == parsed.clone().with_default_tag());
        add(image, by_name.then(|| parsed.clone().with_default_tag()));
    }
    Ok(out)
}
