//! `strata load [-i FILE]`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use serde::Deserialize;

use crate::copy::{self, CopyOptions, Copyable};
use crate::transport::Sink;
use crate::transport::archive::{ArchiveSource, Input};

use super::{CommandError, Context, TransferMode, Ui};

/// `load [OPTIONS]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoadRequest {
    /// Read from tar archive file, instead of STDIN.
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    pub quiet: bool,
    /// Plugins (layer and config transforms) applied to every image loaded,
    /// in order.
    #[serde(deserialize_with = "super::one_or_many")]
    pub transform: Vec<String>,
}

/// Runs `load`: every image of the archive goes into the store in one
/// transaction, then docker's `Loaded image` lines are printed.
pub fn run(
    ctx: &Context,
    args: &LoadRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store_for_writing()?;
    let input = match &args.input {
        Some(p) => Input::Path(p.clone()),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CommandError::Invalid(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            Input::Stdin
        }
    };
    let source = ArchiveSource::open(&input, &store.ingest_dir())?;
    let bars = ui.transfer(TransferMode::Load, !args.quiet);
    let progress = bars.as_ref();
    let sink = store.sink();
    let options = ctx.copy_options(CopyOptions::default().parallelism);
    let lines = std::sync::Arc::default();
    let transforms = if args.transform.is_empty() {
        None
    } else {
        Some(ctx.transforms(&args.transform, &lines)?)
    };
    // docker stores no image whose history claims layers it does not have.
    for image in source.images() {
        for i in image.what.images() {
            i.check_history()
                .map_err(|e| CommandError::Invalid(e.to_string()))?;
        }
    }
    // What each image became (itself, without transforms).
    let mut made = Vec::new();
    for image in source.images() {
        match &transforms {
            None => {
                copy::copy(
                    &source,
                    &sink,
                    &image.what,
                    &image.names,
                    &options,
                    progress,
                )?;
                made.push(image.what.clone());
            }
            Some(t) => {
                let new = crate::plugin::image::transform(store, &sink, &source, &image.what, t)?;
                sink.put_manifest(&super::pull::made_top(&new), &image.names)?;
                made.push(new);
            }
        }
    }
    sink.commit()?;
    super::show_plugin_lines(ui, &lines);
    bars.finish();
    let changes = sink.name_changes();
    let mut out = ui.stdout();
    let mut loaded = Vec::new();
    let mut ids = Vec::new();
    for (image, what) in source.images().iter().zip(&made) {
        let id = match what {
            Copyable::Image(i) => i.id().clone(),
            Copyable::Index(_, children) => match children.first() {
                Some(c) => c.id().clone(),
                None => continue,
            },
        };
        ids.push(id.to_string());
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
            loaded.push(name.to_string());
        }
    }
    out.flush()?;
    Ok(serde_json::json!({ "images": loaded, "ids": ids }))
}
