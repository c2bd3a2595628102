//! `strata mount [IMAGE]` and `strata umount IMAGE|DIR`, as `podman image
//! mount` / `podman image unmount`.

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;

use crate::mount::{self, MountOptions};
use crate::transport::store::MountKind;

use super::{CommandError, Context, Ui};

/// `mount [OPTIONS] [IMAGE]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MountRequest {
    /// The image; with none, list what is mounted.
    pub image: Option<String>,
    /// Mount here instead of in the store (an empty or new directory).
    pub target: Option<PathBuf>,
    /// Writable: changes go to an upper directory kept for this mount.
    pub rw: bool,
    /// Write a flattened copy of the tree instead of an overlay mount.
    pub flatten: bool,
    /// Layers unpacked at once (0: one per CPU).
    pub jobs: usize,
}

/// `umount IMAGE|DIR...`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UmountRequest {
    /// Images (an ID, or any name the image has) or mount points
    /// (`image: X` for one).
    #[serde(alias = "image", deserialize_with = "super::one_or_many")]
    pub images: Vec<String>,
}

/// Runs `mount`: prints the mount point; with no image, lists the mounts.
pub fn mount(
    ctx: &Context,
    args: &MountRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let mut out = ui.stdout();
    let Some(name) = &args.image else {
        let mut listed = Vec::new();
        for m in mount::list(store)? {
            let how = match m.record.kind {
                MountKind::Overlay => "",
                MountKind::OverlayRw => " (rw)",
                MountKind::Flattened => " (flattened copy)",
            };
            let names: Vec<String> = m.names.iter().map(|n| n.familiar_string()).collect();
            let shown = if names.is_empty() {
                "<none>".to_string()
            } else {
                names.join(",")
            };
            writeln!(
                out,
                "{} {shown} {}{how}",
                short_id(m.record.image.digest()),
                m.record.target.display()
            )?;
            listed.push(serde_json::json!({
                "id": m.record.image.to_string(),
                "names": names,
                "target": m.record.target.display().to_string(),
            }));
        }
        return Ok(serde_json::json!({ "mounts": listed }));
    };
    let found = store.lookup(name)?;
    // Best effort: what killed mounts left is swept before this one adds
    // its own; a failure here must not stop the mount asked for.
    let _ = mount::sweep_abandoned(store);
    // The layers stay while they are unpacked, whatever an `rmi` does.
    let _lease = store.lease(std::slice::from_ref(&found.descriptor))?;
    let options = MountOptions {
        target: args.target.clone(),
        rw: args.rw,
        flatten: args.flatten,
        jobs: args.jobs,
    };
    let mounted = mount::mount(store, &found.image, name, &options)?;
    if let Some(why) = &mounted.fallback {
        ui.warn(&format!(
            "strata: {why}: wrote a flattened copy of the image to {} instead of an overlay mount",
            mounted.record.target.display()
        ));
    }
    writeln!(out, "{}", mounted.record.target.display())?;
    Ok(serde_json::json!({
        "target": mounted.record.target.display().to_string(),
        "id": found.image.id().to_string(),
    }))
}

/// An image ID as listings show it: the first 12 hex digits.
fn short_id(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

/// Runs `umount`: prints each unmounted image's ID, as podman does.
pub fn umount(
    ctx: &Context,
    args: &UmountRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let mut out = ui.stdout();
    let mut errors = Vec::new();
    let mut unmounted = Vec::new();
    for what in &args.images {
        let result = mount::find(store, what).and_then(|records| {
            for r in &records {
                mount::unmount(store, r)?;
            }
            Ok(records)
        });
        match result {
            Ok(records) => {
                for r in records {
                    writeln!(out, "{}", r.image.digest())?;
                    unmounted.push(r.image.digest().to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(CommandError::Partial(errors));
    }
    Ok(serde_json::json!({ "unmounted": unmounted }))
}
