//! `strata mount [IMAGE]` and `strata umount IMAGE|DIR`, as `podman image
//! mount` / `podman image unmount`.

use std::io::Write;

use strata::mount::{self, MountOptions};
use strata::transport::store::{MountKind, Store};

use crate::cli::Reported;
use crate::cli::args::{MountArgs, UmountArgs};

/// Runs `mount`: prints the mount point; with no image, lists the mounts.
pub fn mount(store: &Store, args: &MountArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let Some(name) = &args.image else {
        for m in store.mounts()? {
            let how = match m.kind {
                MountKind::Overlay => "",
                MountKind::OverlayRw => " (rw)",
                MountKind::Flattened => " (flattened copy)",
            };
            writeln!(out, "{} {}{how}", m.name, m.target.display())?;
        }
        return Ok(());
    };
    let found = store.lookup(name)?;
    let options = MountOptions {
        target: args.target.clone(),
        rw: args.rw,
        flatten: args.flatten,
        jobs: args.jobs,
    };
    let mounted = mount::mount(store, &found.image, name, &options)?;
    if let Some(why) = &mounted.fallback {
        eprintln!(
            "strata: {why}: wrote a flattened copy of the image to {} instead of an overlay mount",
            mounted.record.target.display()
        );
    }
    writeln!(out, "{}", mounted.record.target.display())?;
    Ok(())
}

/// Runs `umount`: prints each unmounted image's ID, as podman does.
pub fn umount(store: &Store, args: &UmountArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for what in &args.what {
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
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("Error: {e}");
            }
        }
    }
    if failed {
        return Err(Reported(1).into());
    }
    Ok(())
}
