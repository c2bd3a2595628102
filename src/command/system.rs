//! `strata system df`, `strata system prune` and `strata system check`:
//! the care a long-lived store needs.
//!
//! `df` prints docker's table. Images are counted as docker counts them:
//! the size of an image is the unpacked size of its layers, a layer shared
//! by several images is counted once in the total, and an image is active
//! when something uses it; here that is a `strata mount` (the CONTAINERS
//! column of `-v` counts its mounts). strata has no containers, volumes or
//! build cache: those rows are printed with zero counts, as docker prints
//! them on a host that has none, so scripts reading docker's table read
//! strata's.

use std::collections::HashMap;
use std::io::Write;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::format::{self, OutputFormat};
use crate::transport::store::StoredImage;

use super::prune::{self, PruneFilters};
use super::{CommandError, Context, Ui};

/// `system df [OPTIONS]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DfRequest {
    /// Show detailed information on space usage.
    pub verbose: bool,
    /// Pretty-print using a Go template (`json` for one object per row).
    pub format: Option<String>,
}

/// `system prune [OPTIONS]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SystemPruneRequest {
    /// Remove all unused images, not just dangling ones.
    pub all: bool,
    /// Do not prompt for confirmation (the prompt is the front end's).
    pub force: bool,
    /// Provide filter values (until=TIMESTAMP|DURATION, label=KEY[=VALUE], label!=KEY[=VALUE]).
    #[serde(deserialize_with = "super::one_or_many")]
    pub filter: Vec<String>,
}

/// `system check [OPTIONS]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CheckRequest {
    /// Drop what is broken (and the names pointing at it).
    pub repair: bool,
}

/// The confirmation for `system prune`, in docker's form.
pub fn prune_warning(all: bool) -> String {
    let images = if all {
        "  - all images without at least one mount associated to them"
    } else {
        "  - all dangling images"
    };
    format!(
        "WARNING! This will remove:\n{images}\n  - blobs no image needs, unpacked layers no image has, and files left by interrupted commands\n\nAre you sure you want to continue?"
    )
}

/// One image as `df -v` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageRow {
    repository: String,
    tag: String,
    digest: String,
    #[serde(rename = "ID")]
    id: String,
    created_since: String,
    created_at: String,
    size: String,
    shared_size: String,
    unique_size: String,
    virtual_size: String,
    containers: String,
}

/// One line of the summary table.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryRow {
    #[serde(rename = "Type")]
    kind: String,
    total_count: String,
    active: String,
    size: String,
    reclaimable: String,
}

const SUMMARY_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const SUMMARY_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];
const IMAGE_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("Digest", "DIGEST"),
];

/// What `df` counts of one image.
struct Usage<'a> {
    image: &'a StoredImage,
    names: Vec<String>,
    size: u64,
    shared: u64,
    mounts: usize,
}

/// Runs `system df`.
pub fn df(ctx: &Context, args: &DfRequest, ui: &dyn Ui) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let listed = store.list()?;
    let mounts = store.mounts()?;
    let mut images: Vec<Usage> = Vec::new();
    for s in &listed {
        match images.iter_mut().find(|u| u.image.id() == s.id()) {
            Some(u) => u.names.extend(s.names.iter().map(|n| n.to_string())),
            None => images.push(Usage {
                image: s,
                names: s.names.iter().map(|n| n.to_string()).collect(),
                size: 0,
                shared: 0,
                mounts: mounts.iter().filter(|m| &m.image == s.id()).count(),
            }),
        }
    }
    // Each image's layers by chain ID, with their sizes.
    let mut layers: Vec<Vec<(Digest, u64)>> = Vec::new();
    let mut refs: HashMap<Digest, (usize, u64)> = HashMap::new();
    for u in &images {
        let mut mine = Vec::new();
        for (layer, chain) in u.image.image.layers().iter().zip(u.image.image.chain_ids()) {
            let size = store.layer_info_for(layer)?.size;
            mine.push((chain.clone(), size));
        }
        // An image that has a layer twice still counts once for it.
        let mut seen = std::collections::HashSet::new();
        for (chain, size) in &mine {
            if seen.insert(chain.clone()) {
                refs.entry(chain.clone()).or_insert((0, *size)).0 += 1;
            }
        }
        layers.push(mine);
    }
    for (u, mine) in images.iter_mut().zip(&layers) {
        u.size = mine.iter().map(|(_, s)| s).sum();
        u.shared = mine
            .iter()
            .filter(|(c, _)| refs.get(c).is_some_and(|(n, _)| *n > 1))
            .map(|(_, s)| s)
            .sum();
    }
    let total: u64 = refs.values().map(|(_, s)| s).sum();
    let used: u64 = images
        .iter()
        .filter(|u| u.mounts > 0)
        .map(|u| u.size - u.shared)
        .sum();
    let active = images.iter().filter(|u| u.mounts > 0).count();
    let reclaimable = total.saturating_sub(used);
    let size4 = |n: u64| format::human_size_precision(n as f64, 4);
    let mut summary = vec![SummaryRow {
        kind: "Images".into(),
        total_count: images.len().to_string(),
        active: active.to_string(),
        size: size4(total),
        reclaimable: match (reclaimable * 100).checked_div(total) {
            Some(percent) => format!("{} ({percent}%)", size4(reclaimable)),
            None => size4(reclaimable),
        },
    }];
    for kind in ["Containers", "Local Volumes", "Build Cache"] {
        summary.push(SummaryRow {
            kind: kind.into(),
            total_count: "0".into(),
            active: "0".into(),
            size: "0B".into(),
            reclaimable: "0B".into(),
        });
    }
    images.sort_by_key(|u| {
        std::cmp::Reverse(
            u.image
                .image
                .config()
                .created()
                .as_deref()
                .and_then(super::images::parse_time),
        )
    });
    let now = Utc::now();
    let rows: Vec<ImageRow> = images.iter().map(|u| image_row(u, now)).collect();
    let outputs = serde_json::json!({
        "images": images.len(),
        "active": active,
        "size": total,
        "reclaimable": reclaimable,
    });
    let fmt = OutputFormat::parse(args.format.as_deref());
    let mut out = ui.stdout();
    if !args.verbose {
        format::write_rows(&mut out, &fmt, SUMMARY_TABLE, SUMMARY_HEADERS, &summary)?;
        return Ok(outputs);
    }
    match fmt {
        OutputFormat::Table => {}
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "Images": rows,
                "Containers": [],
                "Volumes": [],
                "BuildCache": [],
            });
            writeln!(out, "{}", serde_json::to_string(&doc).unwrap_or_default())?;
            return Ok(outputs);
        }
        _ => {
            return Err(CommandError::Invalid(
                "--format with --verbose takes only json".into(),
            ));
        }
    }
    writeln!(out, "Images space usage:\n")?;
    format::write_rows(&mut out, &fmt, IMAGE_TABLE, IMAGE_HEADERS, &rows)?;
    write!(
        out,
        "\nContainers space usage:\n\nCONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES\n\
         \nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n\
         \nBuild cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
    )?;
    out.flush()?;
    Ok(outputs)
}

/// docker shows an image's first tag (names sorted as its reference store
/// sorts them), or `<none>`.
fn image_row(u: &Usage, now: chrono::DateTime<Utc>) -> ImageRow {
    let mut tags: Vec<crate::reference::Reference> = u
        .names
        .iter()
        .filter_map(|n| crate::reference::Reference::parse(n).ok())
        .filter(|r| r.tag().is_some() && r.digest().is_none())
        .collect();
    tags.sort_by_key(|r| r.to_string());
    let (repository, tag) = match tags.first() {
        Some(r) => (r.familiar_name(), r.tag().unwrap_or_default().to_string()),
        None => ("<none>".into(), "<none>".into()),
    };
    let created = u
        .image
        .image
        .config()
        .created()
        .as_deref()
        .and_then(super::images::parse_time);
    let size4 = |n: u64| format::human_size_precision(n as f64, 4);
    ImageRow {
        repository,
        tag,
        digest: String::new(),
        id: format::truncate_id(u.image.id().as_ref()),
        created_since: format::created_since(created, now),
        created_at: created
            .map(|t| format::go_time_string(&t))
            .unwrap_or_default(),
        // docker's df shows four significant digits here, `images` three.
        size: size4(u.size),
        shared_size: size4(u.shared),
        unique_size: size4(u.size - u.shared),
        virtual_size: size4(u.size),
        containers: u.mounts.to_string(),
    }
}

/// Runs `system prune` (the caller has confirmed): `image prune`, then a
/// collection of whatever else nothing needs.
pub fn prune(
    ctx: &Context,
    args: &SystemPruneRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let filters = PruneFilters::parse(&args.filter, Utc::now())?;
    let store = ctx.store_for_writing()?;
    let pruned = prune::prune_images(store, args.all, &filters)?;
    let gc = store.gc()?;
    let mount_states = crate::mount::sweep_abandoned(store)?;
    let mut out = ui.stdout();
    prune::write_removals(&mut out, &pruned)?;
    if !gc.removed.is_empty() {
        writeln!(out, "Deleted blobs no image needs:")?;
        for d in &gc.removed {
            writeln!(out, "{d}")?;
        }
        writeln!(out)?;
    }
    let total = pruned.reclaimed + gc.bytes;
    writeln!(
        out,
        "Total reclaimed space: {}",
        format::human_size_precision(total as f64, 4)
    )?;
    out.flush()?;
    let mut outputs = prune::outputs(&pruned);
    outputs["blobs"] = gc.removed.iter().map(|d| d.to_string()).collect();
    outputs["reclaimed"] = total.into();
    outputs["mount_states"] = mount_states
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(outputs)
}

/// Runs `system check`: one line per problem; with `repair`, one line per
/// thing dropped and one per thing left as it was (an unpacked layer a
/// mount stacks). Fails (exit 1) when something is wrong and was not
/// repaired.
pub fn check(
    ctx: &Context,
    args: &CheckRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let report = store.check(args.repair)?;
    let mut out = ui.stdout();
    for p in &report.problems {
        writeln!(out, "{p}")?;
    }
    for r in &report.repaired {
        writeln!(out, "repaired: {r}")?;
    }
    for l in &report.left {
        writeln!(out, "not repaired: {l}")?;
    }
    writeln!(
        out,
        "{} blobs and {} index entries checked: {}",
        report.blobs,
        report.entries,
        match (report.problems.len(), args.repair, report.left.len()) {
            (0, _, _) => "no problem found".to_string(),
            (1, false, _) => "1 problem found".to_string(),
            (n, false, _) => format!("{n} problems found"),
            (n, true, 0) => format!("{n} found, repaired"),
            (n, true, left) => format!("{n} found, {left} not repaired"),
        }
    )?;
    out.flush()?;
    let outputs = serde_json::json!({
        "problems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "repaired": report.repaired,
        "left": report.left,
    });
    if !report.problems.is_empty() && !args.repair {
        return Err(CommandError::Unsound {
            root: store.root().to_path_buf(),
            problems: report.problems.len(),
        });
    }
    if !report.left.is_empty() {
        return Err(CommandError::Unrepaired {
            root: store.root().to_path_buf(),
            problems: report.left.len(),
        });
    }
    Ok(outputs)
}
