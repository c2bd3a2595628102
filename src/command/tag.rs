//! `strata tag SOURCE TARGET`

use serde::Deserialize;

use super::{CommandError, Context, Ui};

/// `tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The image to name.
    pub source: String,
    /// The new name.
    pub target: String,
}

/// Runs `tag`: silent on success, as docker. The outputs name the image.
pub fn run(
    ctx: &Context,
    args: &TagRequest,
    _ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store_for_writing()?;
    let change = store.tag(&args.source, &args.target)?;
    let id = store.lookup(&change.name.to_string())?.id().to_string();
    Ok(serde_json::json!({
        "reference": change.name.to_string(),
        "id": id,
    }))
}
