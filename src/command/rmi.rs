//! `strata rmi IMAGE...`

use std::io::Write;

use serde::Deserialize;

use crate::transport::store::{LookupError, Removal, RemoveError};

use super::{CommandError, Context, Ui};

/// `rmi [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RmiRequest {
    /// The images (`image: X` for one).
    #[serde(alias = "image", deserialize_with = "super::one_or_many")]
    pub images: Vec<String>,
    /// Force removal of the image.
    #[serde(default)]
    pub force: bool,
    /// Do not delete untagged parents (accepted for docker compatibility; strata images have no parents).
    #[serde(default)]
    pub no_prune: bool,
}

/// Runs `rmi`: each image in turn; failures are reported and the rest
/// still removed. With `-f`, an image that does not exist is not a failure.
pub fn run(
    ctx: &Context,
    args: &RmiRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store_for_writing()?;
    let mut out = ui.stdout();
    let mut errors = Vec::new();
    let mut fatal = false;
    let mut untagged = Vec::new();
    let mut deleted = Vec::new();
    for name in &args.images {
        match store.remove(name, args.force) {
            Ok(records) => {
                for r in records {
                    match r {
                        Removal::Untagged(name) => {
                            writeln!(out, "Untagged: {}", name.familiar_string())?;
                            untagged.push(name.to_string());
                        }
                        Removal::Deleted(d) => {
                            writeln!(out, "Deleted: {d}")?;
                            deleted.push(d.to_string());
                        }
                    }
                }
            }
            // docker names a missing image as it was typed here.
            Err(RemoveError::Lookup(LookupError::NotFound(_))) => {
                errors.push(format!("No such image: {name}"))
            }
            Err(e) => {
                fatal = true;
                errors.push(e.to_string());
            }
        }
    }
    out.flush()?;
    let outputs = serde_json::json!({ "untagged": untagged, "deleted": deleted });
    if errors.is_empty() {
        return Ok(outputs);
    }
    if args.force && !fatal {
        for e in &errors {
            ui.warn(&format!("Error: {e}"));
        }
        return Ok(outputs);
    }
    Err(CommandError::Partial(errors))
}
