//! `strata save [-o FILE] IMAGE...`

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::copy::{self, CopyOptions};
use crate::reference::{self, Reference};
use crate::transport::Sink;
use crate::transport::archive::{ArchiveSink, OutputCompression};
use crate::transport::store::{LookupError, Store, StoredImage, lookup_in, temp_path};

use super::{CommandError, Context, Ui};

/// `save [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    /// The images (`image: X` for one).
    #[serde(alias = "image", deserialize_with = "super::one_or_many")]
    pub images: Vec<String>,
    /// Write to a file, instead of STDOUT.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Compress the archive: none, gzip or zstd (default: from the output's extension).
    #[serde(default)]
    pub compress: Option<String>,
    /// Plugins (layer and config transforms) applied to every image saved,
    /// in order; the store keeps the results for the next time.
    #[serde(default, deserialize_with = "super::one_or_many")]
    pub transform: Vec<String>,
}

/// Runs `save`: the named images into one archive, each blob once.
pub fn run(
    ctx: &Context,
    args: &SaveRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    if let Some(path) = &args.output {
        check_output_path(path)?;
    }
    let store = ctx.store()?;
    let compression = match &args.compress {
        Some(c) => OutputCompression::parse(c).ok_or_else(|| {
            CommandError::Invalid(format!("invalid --compress {c:?}: use none, gzip or zstd"))
        })?,
        None => args.output.as_ref().map_or(OutputCompression::None, |p| {
            OutputCompression::from_file_name(&p.to_string_lossy())
        }),
    };
    let images = store.list()?;
    let selected = select(&images, &args.images)?;
    // What is being saved stays until the archive is written, whatever an
    // `rmi` does meanwhile.
    let roots: Vec<_> = selected.iter().map(|(i, _)| i.descriptor.clone()).collect();
    let _lease = store.lease(&roots)?;
    let mut whats = Vec::with_capacity(selected.len());
    for (image, _) in &selected {
        // An index travels whole when all its children are here; otherwise
        // the child this host uses.
        whats.push(store.copyable(image)?.0);
    }
    let _transformed_lease = if args.transform.is_empty() {
        None
    } else {
        let lines = std::sync::Arc::default();
        let t = ctx.transforms(&args.transform, &lines)?;
        let sink = store.sink().unlisted();
        for w in whats.iter_mut() {
            *w = crate::plugin::image::transform(store, &sink, store, w, &t)?;
        }
        // Committed unlisted, the results are kept by this lease alone.
        let made: Vec<_> = whats.iter().map(super::pull::made_descriptor).collect();
        let lease = store.lease_staged(&made)?;
        sink.commit()?;
        super::show_plugin_lines(ui, &lines);
        Some(lease)
    };
    let selected: Vec<(crate::copy::Copyable, Vec<Reference>)> = whats
        .into_iter()
        .zip(selected.iter().map(|(_, names)| names.clone()))
        .collect();
    let view = ui.transfer(super::TransferMode::Save, false);
    match &args.output {
        Some(path) => {
            let tmp = temp_path(output_dir(path), ".strata-save");
            // The temporary file is ours; the user knows the output's name.
            let file = File::create(&tmp)
                .map_err(|e| CommandError::io(format!("cannot create {}", path.display()), e))?;
            let result = write(
                store,
                &selected,
                &path.display().to_string(),
                file,
                compression,
                &ctx.copy_options(1),
                view.as_ref(),
            )
            .and_then(|()| {
                std::fs::rename(&tmp, path)
                    .map_err(|e| CommandError::io(format!("cannot write {}", path.display()), e))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(CommandError::Invalid(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            // A file on fd 1 rather than Rust's line-buffered stdout.
            let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
            write(
                store,
                &selected,
                "standard output",
                File::from(fd),
                compression,
                &ctx.copy_options(1),
                view.as_ref(),
            )?;
        }
    }
    let saved: Vec<String> = selected
        .iter()
        .flat_map(|(image, names)| {
            if names.is_empty() {
                vec![super::pull::made_id(image)]
            } else {
                names.iter().map(|n| n.to_string()).collect()
            }
        })
        .collect();
    Ok(serde_json::json!({
        "output": args.output.as_ref().map(|p| p.display().to_string()),
        "images": saved,
    }))
}

/// The directory `-o PATH` goes into.
fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// docker's checks of `-o PATH`, before anything else and in its words:
/// its directory must exist, and the path, if there, be a directory or a
/// regular file (never a device, which the finished archive would replace).
fn check_output_path(path: &Path) -> Result<(), CommandError> {
    let failed = |reason: String| CommandError::Invalid(format!("failed to save image: {reason}"));
    let dir = output_dir(path);
    if dir != Path::new(".")
        && let Err(e) = std::fs::metadata(dir)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(failed(format!(
            "invalid output path: directory {:?} does not exist",
            dir.display().to_string()
        )));
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CommandError::io(
            format!("failed to save image: stat {}", path.display()),
            e,
        )),
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let kind = m.file_type();
            if kind.is_block_device() || kind.is_char_device() {
                return Err(failed(format!(
                    "invalid output path: {:?} must be a directory or a regular file: got a device",
                    path.display().to_string()
                )));
            }
            Ok(())
        }
    }
}

fn write(
    store: &Store,
    selected: &[(crate::copy::Copyable, Vec<Reference>)],
    name: &str,
    out: File,
    compression: OutputCompression,
    options: &CopyOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<(), CommandError> {
    let sink = ArchiveSink::new(name, out, compression)?;
    for (what, names) in selected {
        copy::copy(store, &sink, what, names, options, progress)?;
    }
    sink.commit()?;
    Ok(())
}

/// docker's rules for what `save NAME` means: a name without tag saves
/// every tag of that repository; an ID saves the image with no names.
fn select<'a>(
    images: &'a [StoredImage],
    queries: &[String],
) -> Result<Vec<(&'a StoredImage, Vec<Reference>)>, CommandError> {
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
                // docker's save names a repository it has no tag of as typed.
                let image = lookup_in(images, q).map_err(|e| match e {
                    LookupError::NotFound(_) => LookupError::NotFound(q.clone()),
                    other => other,
                })?;
                add(image, None);
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
