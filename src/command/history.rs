//! `strata history IMAGE`

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::format::{self, OutputFormat};

use super::images::parse_time;
use super::{CommandError, Context, Ui};

/// `history [OPTIONS] IMAGE`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The image.
    pub image: String,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    #[serde(default)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format.
    #[serde(default = "super::yes")]
    pub human: bool,
    /// Don't truncate output.
    #[serde(default)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[serde(default)]
    pub quiet: bool,
}

const DEFAULT_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// One row, with the fields docker's history templates can use.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    created_since: String,
    created_at: String,
    created_by: String,
    size: String,
    comment: String,
}

/// Runs `history`: one row per config history entry, newest first; the
/// top row carries the image ID, the rest `<missing>`, as for any image
/// docker did not build itself.
pub fn run(
    ctx: &Context,
    args: &HistoryRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let found = store.lookup(&args.image)?;
    let image = &found.image;
    let mut layer_sizes = Vec::new();
    for layer in image.layers() {
        layer_sizes.push(store.layer_info_for(layer)?.size);
    }
    let mut layers = layer_sizes.into_iter();
    let now = chrono::Utc::now();
    let history = image.config().history().clone().unwrap_or_default();
    let mut rows = Vec::with_capacity(history.len());
    for h in &history {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            // A row per layer at most: docker refuses a history that
            // claims more layers than the image has.
            layers.next().ok_or_else(|| {
                CommandError::Invalid("too many non-empty layers in History section".into())
            })?
        };
        let created = h.created().as_deref().and_then(parse_time);
        let created_by = h
            .created_by()
            .clone()
            .unwrap_or_default()
            .replace('\t', " ");
        rows.push(Row {
            id: "<missing>".into(),
            created_since: if args.human {
                format::created_since(created, now)
            } else {
                created
                    .map(|t| format::rfc3339_local(&t))
                    .unwrap_or_default()
            },
            created_at: created
                .map(|t| format::rfc3339_local(&t))
                .unwrap_or_default(),
            created_by: if args.no_trunc {
                created_by
            } else {
                format::ellipsis(&created_by, 45)
            },
            size: if args.human {
                format::human_size(size)
            } else {
                size.to_string()
            },
            comment: h.comment().clone().unwrap_or_default(),
        });
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = if args.no_trunc {
            image.id().to_string()
        } else {
            format::truncate_id(image.id().as_ref())
        };
    }
    let outputs = serde_json::json!({ "id": image.id().to_string(), "history": &rows });
    let mut out = ui.stdout();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(outputs);
    }
    let fmt = OutputFormat::parse(args.format.as_deref());
    // Without -H the CREATED column holds timestamps, and docker says so.
    let headers: Vec<(&str, &str)> = HEADERS
        .iter()
        .map(|&(k, v)| {
            if k == "CreatedSince" && !args.human {
                (k, "CREATED AT")
            } else {
                (k, v)
            }
        })
        .collect();
    format::write_rows_typed(
        &mut out,
        &fmt,
        DEFAULT_TABLE,
        &headers,
        &rows,
        format::RowType("image.historyContext"),
    )?;
    Ok(outputs)
}
