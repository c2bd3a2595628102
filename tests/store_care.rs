//! The store's care commands end to end: `system df`, `image prune`,
//! `system prune` and `system check`, on small archives made here; and
//! docker 20.10 as the oracle for `system df -v` and `image prune` on the
//! same archives.

#[path = "common/archive.rs"]
mod archive;
mod common;

use archive::{Img, docker_archive, layer_tar};
use common::{
    Strata, Unmounter, demo_archive, docker_run, mask_relative_times, sha256_hex, unique,
};

/// Three images under `label`: `base:1` (one layer), `app:1` (base's layer
/// and one more), and a dangling one (loaded as `old:1`, then replaced by
/// `new` under that name). Gives the archives, to load in order.
fn three_images(s: &Strata, label: &str) -> Vec<std::path::PathBuf> {
    let shared = format!("shared {label}").into_bytes();
    let base = s.path("base.tar");
    docker_archive(
        &base,
        &[
            Img {
                tag: Some("care/base:1"),
                layers: vec![("base.txt", shared.clone())],
                created: "2024-01-01T00:00:00Z",
                labels: vec![("strata.test", label), ("role", "base")],
            },
            Img {
                tag: Some("care/app:1"),
                layers: vec![("base.txt", shared.clone()), ("app.txt", vec![b'a'; 5000])],
                created: "2024-02-01T00:00:00Z",
                labels: vec![("strata.test", label), ("role", "app")],
            },
        ],
    );
    let old = s.path("old.tar");
    docker_archive(
        &old,
        &[Img {
            tag: Some("care/old:1"),
            layers: vec![("old.txt", format!("old {label}").repeat(100).into_bytes())],
            created: "2023-06-01T00:00:00Z",
            labels: vec![("strata.test", label), ("role", "old")],
        }],
    );
    let new = s.path("new.tar");
    docker_archive(
        &new,
        &[Img {
            tag: Some("care/old:1"),
            layers: vec![("new.txt", format!("new {label}").into_bytes())],
            created: "2024-03-01T00:00:00Z",
            labels: vec![("strata.test", label), ("role", "new")],
        }],
    );
    vec![base, old, new]
}

fn load_all(s: &Strata, archives: &[std::path::PathBuf]) {
    for a in archives {
        s.run(&["load", "-i", a.to_str().unwrap()]).ok();
    }
}

#[test]
fn df_counts_each_layer_once_and_a_mounted_image_as_active() {
    let s = Strata::new();
    load_all(&s, &three_images(&s, "df"));
    let out = s.run(&["system", "df"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    );
    // 9 + 5000 + 600 + 6 bytes: the shared layer once.
    assert_eq!(
        lines[1],
        "Images          4         0         5.615kB   5.615kB (100%)"
    );
    assert_eq!(lines[2], "Containers      0         0         0B        0B");
    assert_eq!(lines.len(), 5);
    let target = s.path("mnt");
    s.run(&[
        "mount",
        "--flatten",
        "--target",
        target.to_str().unwrap(),
        "care/app:1",
    ])
    .ok();
    let out = s.run(&["system", "df"]).ok().stdout;
    // app's own layer is in use; the shared one is not counted as used.
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("Images          4         1         5.615kB   615B (10%)"),
        "{out}"
    );
    let v = s.run(&["system", "df", "-v"]).ok().stdout;
    let rows: Vec<Vec<&str>> = v
        .lines()
        .skip(3)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ids = |repo: &str| -> Vec<&str> {
        rows.iter()
            .find(|r| r[0] == repo)
            .unwrap_or_else(|| panic!("{repo} in {v}"))
            .clone()
    };
    let tail = |r: Vec<&str>| r[r.len() - 4..].join(" ");
    assert_eq!(tail(ids("care/app")), "5.009kB 9B 5kB 1");
    assert_eq!(tail(ids("care/base")), "9B 9B 0B 0");
    let s_json = s
        .run(&["system", "df", "--format", "{{.Type}}={{.Active}}"])
        .ok()
        .stdout;
    assert_eq!(
        s_json,
        "Images=1\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n"
    );
}

#[test]
fn prune_takes_dangling_images_then_unused_ones_never_a_mounted_one() {
    let s = Strata::new();
    load_all(&s, &three_images(&s, "prune"));
    // No answer is a no.
    let r = s.run(&["image", "prune"]).ok();
    assert_eq!(
        r.stdout,
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(s.run(&["images", "-q"]).ok().stdout.lines().count(), 4);
    let r = s.run(&["image", "prune", "-f"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "Deleted Images:");
    assert!(lines[1].starts_with("deleted: sha256:"), "{}", r.stdout);
    assert_eq!(lines[lines.len() - 2], "");
    assert_eq!(lines[lines.len() - 1], "Total reclaimed space: 900B");
    // Nothing dangling is left.
    assert_eq!(
        s.run(&["image", "prune", "-f"]).ok().stdout,
        "Total reclaimed space: 0B\n"
    );
    let target = s.path("mnt");
    s.run(&[
        "mount",
        "--flatten",
        "--target",
        target.to_str().unwrap(),
        "care/base:1",
    ])
    .ok();
    // until: only what was made before; label: only what carries it.
    let r = s
        .run(&["image", "prune", "-af", "--filter", "until=2024-01-15"])
        .ok();
    assert_eq!(r.stdout, "Total reclaimed space: 0B\n", "base is mounted");
    let r = s
        .run(&["image", "prune", "-af", "--filter", "label=role=app"])
        .ok();
    assert!(
        r.stdout
            .starts_with("Deleted Images:\nuntagged: care/app:1\ndeleted: sha256:")
    );
    assert!(
        r.stdout.ends_with("\nTotal reclaimed space: 5kB\n"),
        "{}",
        r.stdout
    );
    let left = s
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .stdout;
    assert_eq!(left, "care/old:1\ncare/base:1\n");
    let r = s
        .run(&["image", "prune", "-af", "--filter", "label!=role=new"])
        .ok();
    assert!(
        r.stdout.ends_with("Total reclaimed space: 0B\n"),
        "{}",
        r.stdout
    );
    s.run(&["image", "prune", "-af"]).ok();
    assert_eq!(
        s.run(&["images", "--format", "{{.Repository}}"])
            .ok()
            .stdout,
        "care/base\n"
    );
    let e = s
        .run(&["image", "prune", "-f", "--filter", "until=soon"])
        .fails();
    assert_eq!(
        e.stderr,
        "Error: failed to parse value as time or duration: \"soon\"\n"
    );
}

#[test]
fn system_prune_also_sweeps_blobs_no_image_needs() {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    // A blob nothing names, as a killed commit leaves one.
    let orphan = s.root().join("blobs/sha256").join(sha256_hex(b"orphan"));
    std::fs::write(&orphan, b"orphan").unwrap();
    let r = s.run(&["system", "prune"]).ok();
    assert!(
        r.stdout
            .starts_with("WARNING! This will remove:\n  - all dangling images\n")
    );
    assert!(orphan.exists(), "not confirmed");
    let r = s.run(&["system", "prune", "-f"]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "Deleted blobs no image needs:\nsha256:{}\n\nTotal reclaimed space: 6B\n",
            sha256_hex(b"orphan")
        )
    );
    assert!(!orphan.exists());
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "b1dcaf3cc163\n");
}

#[test]
fn check_reports_each_problem_on_a_line_and_repair_drops_only_what_is_broken() {
    let s = Strata::new();
    load_all(&s, &three_images(&s, "check"));
    let r = s.run(&["system", "check"]).ok();
    assert_eq!(
        r.stdout,
        "12 blobs and 4 index entries checked: no problem found\n"
    );
    // Flip a byte of app's own layer.
    let layer = layer_tar("app.txt", &[b'a'; 5000]);
    let blob = s.root().join("blobs/sha256").join(sha256_hex(&layer));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let r = s.run(&["system", "check"]).fails();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("Error: 2 problem(s) found in the store at "),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with(&format!(
        "blob sha256:{}: its content hashes to sha256:",
        sha256_hex(&layer)
    )));
    assert!(lines[1].contains("(docker.io/care/app:1): layer sha256:"));
    assert!(lines[1].ends_with("is corrupt"));
    assert_eq!(
        lines[2],
        "12 blobs and 4 index entries checked: 2 problems found"
    );
    let r = s.run(&["system", "check", "--repair"]).ok();
    assert!(
        r.stdout.contains(&format!(
            "repaired: deleted corrupt blob sha256:{}\n",
            sha256_hex(&layer)
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("repaired: dropped name docker.io/care/app:1 (image sha256:"),
        "{}",
        r.stdout
    );
    s.run(&["system", "check"]).ok();
    // The sound images are all there, base's layer (shared with app) too.
    let left = s
        .run(&["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .stdout;
    assert_eq!(left, "care/old:1\ncare/base:1\n<none>:<none>\n");
    s.run(&[
        "save",
        "-o",
        s.path("base-out.tar").to_str().unwrap(),
        "care/base:1",
    ])
    .ok();
}

/// The unpacked layers a mount leaves in the cache are compared with their
/// blobs: a file changed there is named; a repair leaves the layer while a
/// mount stacks it, removes it (and only it) once unmounted, and the next
/// mount unpacks it again as the blob has it.
#[test]
fn check_compares_unpacked_layers_with_their_blobs_and_repair_removes_only_a_changed_one() {
    if !rustix::process::geteuid().is_root() {
        common::cannot_run(
            "store_care::check_compares_unpacked_layers_with_their_blobs_and_repair_removes_only_a_changed_one",
            "overlay mounts need root",
        );
        return;
    }
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let mount = || {
        s.run(&["mount", "strata-demo/hello:1.0"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let merged = mount();
    let clean = "4 blobs and 1 index entries checked: no problem found\n";
    assert_eq!(s.run(&["system", "check"]).ok().stdout, clean);
    s.run(&["umount", &merged]).ok();
    // The demo's layers are plain tars: their diff IDs are their digests.
    let cache = s.root().join(".strata/rootfs/sha256");
    let first = cache.join("4a13a924604417556c94be067c8fdf7df1b0e53ddd74e7e8ae006da2685e9592");
    let second = cache.join("0da46754b69633e8cb55fc4e9b0748e4cc0092e9f152c2c18ebc86a606d74ef4");
    assert!(first.is_dir() && second.is_dir());
    let release = first.join("etc/os-release");
    let original = std::fs::read(&release).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 0x20;
    std::fs::write(&release, &changed).unwrap();
    let second_before = std::fs::read(second.join("etc/motd")).unwrap();

    let problem = format!(
        "unpacked layer {}: /etc/os-release: its content differs from the layer's",
        first.display()
    );
    let r = s.run(&["system", "check"]).fails();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        format!("{problem}\n4 blobs and 1 index entries checked: 1 problem found\n")
    );

    // Mounted again (the cache is reused as it is), it is left alone.
    let merged = mount();
    let r = s.run(&["system", "check", "--repair"]).fails();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        format!(
            "{problem}; it is a lower layer of the mount of strata-demo/hello:1.0 at {merged}, \
             which must be unmounted before a repair can remove it\n\
             not repaired: unpacked layer {}: a lower layer of the mount of \
             strata-demo/hello:1.0 at {merged}; unmount it, then repair again\n\
             4 blobs and 1 index entries checked: 1 found, 1 not repaired\n",
            first.display()
        )
    );
    assert!(
        r.stderr.starts_with("Error: 1 problem(s) in the store at "),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&release).unwrap(), changed);
    s.run(&["umount", &merged]).ok();

    let r = s.run(&["system", "check", "--repair"]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "{problem}\nrepaired: removed unpacked layer {} (a mount unpacks it again from its blob)\n\
             4 blobs and 1 index entries checked: 1 found, repaired\n",
            first.display()
        )
    );
    assert!(!first.exists());
    assert_eq!(
        std::fs::read(second.join("etc/motd")).unwrap(),
        second_before,
        "the sound layer stays"
    );
    assert_eq!(s.run(&["system", "check"]).ok().stdout, clean);

    let merged = mount();
    assert_eq!(std::fs::read(&release).unwrap(), original);
    assert_eq!(
        std::fs::read(std::path::Path::new(&merged).join("etc/os-release")).unwrap(),
        original
    );
    assert_eq!(s.run(&["system", "check"]).ok().stdout, clean);
    s.run(&["umount", &merged]).ok();
}

/// docker and strata on the same archives: `system df -v`'s rows for these
/// images, and `image prune` (limited by label to this test's images, so
/// the shared daemon's other images are left alone).
#[test]
fn df_and_prune_match_docker() {
    let _docker = common::docker_lock();
    let s = Strata::new();
    let label = unique("oracle");
    let archives = three_images(&s, &label);
    for a in &archives {
        let path = a.to_str().unwrap();
        let theirs = docker_run(&["load", "-i", path]);
        assert_eq!(theirs.code, 0, "{}", theirs.stderr);
        s.run(&["load", "-i", path]).ok();
    }
    let ids = s.run(&["images", "-q"]).ok().stdout;
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 4);
    // The rows of our images, columns split (widths depend on every row).
    let rows = |text: &str| -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = mask_relative_times(text)
            .lines()
            .filter(|l| ids.iter().any(|id| l.contains(id)))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        rows.sort();
        rows
    };
    let theirs = docker_run(&["system", "df", "-v"]);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let ours = s.run(&["system", "df", "-v"]).ok();
    assert_eq!(
        rows(&ours.stdout),
        rows(&theirs.stdout),
        "system df -v (left strata, right docker)"
    );
    // The same sections, in the same order.
    let headings = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.ends_with(':') || l.starts_with("Build cache usage"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(headings(&ours.stdout), headings(&theirs.stdout));
    let filter = format!("label=strata.test={label}");
    for args in [
        vec!["image", "prune", "-f", "--filter", &filter],
        vec!["image", "prune", "-f", "--filter", &filter],
        vec![
            "image",
            "prune",
            "-a",
            "-f",
            "--filter",
            &filter,
            "--filter",
            "label=role=app",
        ],
        vec!["image", "prune", "-a", "-f", "--filter", &filter],
    ] {
        let theirs = docker_run(&args);
        let ours = s.run(&args).ok();
        assert_eq!(theirs.code, 0, "docker {args:?}: {}", theirs.stderr);
        // docker walks the images to prune in a Go map's order: the lines
        // are compared as a set, the first and the total exactly.
        let sorted = |t: &str| {
            let mut l: Vec<String> = t.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        assert_eq!(
            sorted(&ours.stdout),
            sorted(&theirs.stdout),
            "{args:?} (left strata, right docker)"
        );
        assert_eq!(ours.stdout.lines().next(), theirs.stdout.lines().next());
        assert_eq!(ours.stdout.lines().last(), theirs.stdout.lines().last());
    }
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "");
}

#[test]
fn a_maintenance_pipeline_prunes_checks_and_counts() {
    let s = Strata::new();
    load_all(&s, &three_images(&s, "pipeline"));
    let refused = s.path("refused.yaml");
    std::fs::write(
        &refused,
        "version: 1\nsteps:\n  - image_prune:\n      all: true\n",
    )
    .unwrap();
    let r = s.run(&["run", refused.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("needs `force: true`"), "{}", r.stderr);
    assert_eq!(s.run(&["images", "-q"]).ok().stdout.lines().count(), 4);
    let file = s.path("care.yaml");
    std::fs::write(
        &file,
        "version: 1\nsteps:\n  - id: prune\n    image_prune: {force: true}\n  - id: check\n    system_check:\n  - id: df\n    system_df:\n  - if: ${{ length(steps.prune.outputs.deleted) == 2 && steps.df.outputs.images == 3 && length(steps.check.outputs.problems) == 0 }}\n    tag: {source: care/base:1, target: care/checked:1}\n",
    )
    .unwrap();
    let r = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    s.run(&["inspect", "care/checked:1"]).ok();
}

/// A `mount` killed before it recorded its mount leaves a state directory,
/// and maybe an overlay mounted from it (in the store, or at a `--target`
/// outside). `system prune` detaches such an overlay and removes the
/// directory when its owner process is gone; one whose owner lives (a
/// mount under way) and a recorded mount are left alone.
#[test]
fn system_prune_sweeps_what_killed_mounts_left() {
    if !rustix::process::geteuid().is_root() {
        common::cannot_run(
            "store_care::system_prune_sweeps_what_killed_mounts_left",
            "overlay mounts need root",
        );
        return;
    }
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let recorded = s.run(&["mount", "strata-demo/hello:1.0"]).ok();
    let recorded = std::path::PathBuf::from(recorded.stdout.trim());
    assert!(
        recorded.read_dir().unwrap().count() > 0,
        "the recorded mount is there"
    );

    let mounts = s.root().join(".strata/mounts");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    // An overlay mounted from a state directory, where `mount` puts it and
    // at a target outside the store.
    let outside = s.path("outside");
    let abandoned: Vec<_> = [("a", None), ("b", Some(outside.clone()))]
        .into_iter()
        .map(|(tag, target)| {
            let state = mounts.join(format!("{dead}-{tag}"));
            for d in ["l/0", "l/1", "merged"] {
                std::fs::create_dir_all(state.join(d)).unwrap();
            }
            std::fs::write(state.join("l/0/file"), tag).unwrap();
            let target = target.unwrap_or_else(|| state.join("merged"));
            std::fs::create_dir_all(&target).unwrap();
            let lower = format!(
                "lowerdir={}:{}",
                state.join("l/0").display(),
                state.join("l/1").display()
            );
            common::output(
                std::process::Command::new("mount")
                    .args(["-t", "overlay", "overlay", "-o", &lower])
                    .arg(&target),
            )
            .ok();
            assert_eq!(std::fs::read_to_string(target.join("file")).unwrap(), tag);
            (state, target)
        })
        .collect();
    // A mount under way: its owner (this test) is alive.
    let live = mounts.join(format!("{}-c", std::process::id()));
    std::fs::create_dir_all(live.join("merged")).unwrap();

    let r = s.run(&["system", "prune", "-f"]).ok();
    assert!(
        r.stdout.ends_with("Total reclaimed space: 0B\n"),
        "{}",
        r.stdout
    );
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for (state, target) in &abandoned {
        assert!(!state.exists(), "{} is left", state.display());
        assert!(
            !table.contains(&format!(" {} ", target.display())),
            "{} is still mounted",
            target.display()
        );
    }
    assert!(live.exists(), "a mount under way keeps its directory");
    assert!(table.contains(&format!(" {} ", recorded.display())));
    let listed = s.run(&["mount"]).ok().stdout;
    assert!(listed.contains(&recorded.display().to_string()), "{listed}");
    s.run(&["umount", "strata-demo/hello:1.0"]).ok();
    let check = s.run(&["system", "check"]).ok().stdout;
    assert!(check.ends_with("checked: no problem found\n"), "{check}");
}
