//! `mount` end to end: the Debian fixture (several layers, deletions, an
//! opaque directory, symlinks, hardlinks, special modes, an xattr) mounted
//! with overlayfs and written as a flattened copy gives the same tree as
//! `umoci unpack` and as a real Docker daemon's `docker export`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{Strata, Unmounter, docker_run, fixture, peer};

/// What the comparison looks at for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    /// File content digest, link target, or device numbers.
    data: String,
    /// Seconds since the epoch, for files and symlinks.
    mtime: Option<i64>,
    xattrs: Vec<(String, String)>,
}

/// A path's extended attributes (not following a symlink), minus the ones
/// a file system adds itself.
fn xattrs(path: &Path) -> Vec<(String, String)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        if key.starts_with("security.") || key.starts_with("trusted.overlay") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap_or(0);
        value.truncate(len);
        out.push((key, String::from_utf8_lossy(&value).into_owned()));
    }
    out.sort();
    out
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            ('d', String::new())
        } else if ft.is_symlink() {
            ('l', std::fs::read_link(&p).unwrap().display().to_string())
        } else if ft.is_file() {
            ('f', common::sha256_hex(&std::fs::read(&p).unwrap()))
        } else if ft.is_char_device() || ft.is_block_device() {
            (
                if ft.is_char_device() { 'c' } else { 'b' },
                format!("{}", m.rdev()),
            )
        } else {
            ('p', String::new())
        };
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let mtime = (kind != 'd').then_some(m.mtime());
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                data,
                mtime,
                xattrs: xattrs(&p),
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Asserts two trees are equal, listing the first differences.
#[track_caller]
fn same_tree(ours: &BTreeMap<String, Node>, theirs: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (path, node) in theirs {
        match ours.get(path) {
            None => diffs.push(format!("missing in strata: {path}")),
            Some(n) if n != node => diffs.push(format!("{path}: strata {n:?} vs {what} {node:?}")),
            _ => {}
        }
    }
    for path in ours.keys().filter(|p| !theirs.contains_key(*p)) {
        diffs.push(format!("only in strata: {path}"));
    }
    assert!(
        diffs.is_empty(),
        "{} differences from {what}, first ones:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn umoci_tree(s: &Strata) -> BTreeMap<String, Node> {
    let bundle = s.path("umoci-bundle");
    let layout = s.path("layout");
    peer(
        "cp",
        &[
            "-a",
            fixture("debian-oci").to_str().unwrap(),
            layout.to_str().unwrap(),
        ],
    );
    peer(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:bookworm", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    tree(&bundle.join("rootfs"))
}

#[test]
fn overlay_and_flattened_trees_equal_umoci_unpack() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let expected = umoci_tree(&s);

    let merged = s
        .run(&["mount", "peers/debian:bookworm"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(Path::new(&merged).starts_with(s.root()), "{merged}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("overlay ") && l.contains(&merged)),
        "an overlay mount at {merged}"
    );
    same_tree(
        &tree(Path::new(&merged)),
        &expected,
        "umoci unpack (overlay mount)",
    );
    // Mounting again gives the same mount; it is listed.
    assert_eq!(
        s.run(&["mount", "peers/debian:bookworm"])
            .ok()
            .stdout
            .trim(),
        merged
    );
    let listing = s.run(&["mount"]).ok().stdout;
    assert!(
        listing.ends_with(&format!(" peers/debian:bookworm {merged}\n")),
        "{listing}"
    );

    let flat = s.path("flat");
    let out = s
        .run(&[
            "mount",
            "--flatten",
            "--target",
            flat.to_str().unwrap(),
            "peers/debian:bookworm",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), flat.display().to_string());
    same_tree(&tree(&flat), &expected, "umoci unpack (flattened copy)");

    // rmi refuses a mounted image without -f.
    let refused = s.run(&["rmi", "peers/debian:bookworm"]).fails();
    assert!(
        refused.stderr.contains("image is mounted at"),
        "{}",
        refused.stderr
    );
    // umount by path and by name.
    let id = s
        .run(&["images", "--no-trunc", "-q"])
        .ok()
        .stdout
        .trim()
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(s.run(&["umount", &merged]).ok().stdout, format!("{id}\n"));
    assert!(
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&merged)
    );
    assert_eq!(
        s.run(&["umount", "peers/debian:bookworm"]).ok().stdout,
        format!("{id}\n")
    );
    assert_eq!(
        std::fs::read_dir(&flat).unwrap().count(),
        0,
        "the flattened copy is removed"
    );
    assert_eq!(s.run(&["mount"]).ok().stdout, "");
    let gone = s.run(&["umount", "peers/debian:bookworm"]).fails();
    assert!(gone.stderr.contains("is not mounted"), "{}", gone.stderr);
}

#[test]
fn the_mounted_tree_equals_what_docker_exports() {
    let _docker = common::docker_lock();
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    let archive = fixture("debian-docker.tar");
    s.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(
        docker_run(&["load", "-i", archive.to_str().unwrap()]).code,
        0
    );
    let name = format!("strata-export-{}", std::process::id());
    docker_run(&["rm", "-f", &name]);
    let created = docker_run(&["create", "--name", &name, "peers/debian:bookworm"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let exported = s.path("export.tar");
    let out = docker_run(&["export", "-o", exported.to_str().unwrap(), &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    docker_run(&["rm", "-f", &name]);
    let dir = s.path("exported");
    std::fs::create_dir(&dir).unwrap();
    peer(
        "tar",
        &[
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            exported.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
        ],
    );
    let mut theirs = tree(&dir);
    let merged = s
        .run(&["mount", "peers/debian:bookworm"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mut ours = tree(Path::new(&merged));
    // What docker adds for a container, not part of the image: its marker
    // file and the container's init layer, which replaces these paths with
    // its own (empty files, mount points). Named and set aside, both sides.
    for added in [
        ".dockerenv",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/mtab",
        "dev/console",
        "dev/pts",
        "dev/shm",
        "proc",
        "sys",
    ] {
        theirs.remove(added);
        ours.remove(added);
    }
    // docker's tar export keeps only security.capability among extended
    // attributes; the umoci comparison covers them.
    for node in ours.values_mut().chain(theirs.values_mut()) {
        node.xattrs.clear();
    }
    same_tree(&ours, &theirs, "docker export");
    s.run(&["umount", &merged]).ok();
}

#[test]
fn a_writable_mount_keeps_changes_in_its_own_upper_directory() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let merged = s
        .run(&["mount", "--rw", "strata-demo/hello:1.0"])
        .ok()
        .stdout
        .trim()
        .to_string();
    std::fs::write(Path::new(&merged).join("etc/motd"), "changed\n").unwrap();
    std::fs::write(Path::new(&merged).join("new-file"), "new\n").unwrap();
    let listing = s.run(&["mount"]).ok().stdout;
    assert_eq!(
        listing,
        format!("b1dcaf3cc163 strata-demo/hello:1.0 {merged} (rw)\n")
    );
    // A read-only mount of the same image beside it is untouched.
    let ro = s.path("ro");
    s.run(&[
        "mount",
        "--target",
        ro.to_str().unwrap(),
        "strata-demo/hello:1.0",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(ro.join("etc/motd")).unwrap(),
        "Welcome to strata-demo 1.0\n"
    );
    assert!(
        std::fs::write(ro.join("x"), "y").is_err(),
        "read-only by default"
    );
    s.run(&["umount", "strata-demo/hello:1.0"]).ok();
    assert_eq!(s.run(&["mount"]).ok().stdout, "");
    // Removing the image also drops its unpacked layers.
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    let cache = s.root().join(".strata/rootfs/sha256");
    assert_eq!(std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0), 0);
}

/// A mount is the image's, not the name's: listed by image ID with the
/// names the image has now, and found by its ID (full or short) or any
/// current name, whichever name it was mounted by.
#[test]
fn mounts_are_listed_and_found_by_the_image_and_its_current_names() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let id = "b1dcaf3cc163fb83e331a45beca0ccd82397d169b2c97cee7ebda146db9ee8dd";
    s.run(&["tag", "strata-demo/hello:1.0", "extra:v2"]).ok();
    let mount = |name: &str| s.run(&["mount", name]).ok().stdout.trim().to_string();
    let merged = mount("strata-demo/hello:1.0");
    assert_eq!(
        s.run(&["mount"]).ok().stdout,
        format!("b1dcaf3cc163 strata-demo/hello:1.0,extra:v2 {merged}\n")
    );
    // The name it was mounted by goes; the mount stays the image's.
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    assert_eq!(
        s.run(&["mount"]).ok().stdout,
        format!("b1dcaf3cc163 extra:v2 {merged}\n")
    );
    let gone = s.run(&["umount", "strata-demo/hello:1.0"]).fails();
    assert!(gone.stderr.contains("is not mounted"), "{}", gone.stderr);
    // Any current name, the short ID, the full ID: each finds it.
    assert_eq!(mount("extra:v2"), merged, "the same mount");
    for what in ["extra:v2", "b1dcaf3cc163", &format!("sha256:{id}")[..]] {
        let merged = mount("extra:v2");
        assert_eq!(
            s.run(&["umount", what]).ok().stdout,
            format!("{id}\n"),
            "umount {what}"
        );
        assert_eq!(s.run(&["mount"]).ok().stdout, "", "after umount {what}");
        assert!(
            !std::fs::read_to_string("/proc/self/mounts")
                .unwrap()
                .contains(&merged)
        );
    }
}

#[test]
fn rmi_force_unmounts_first() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let merged = s
        .run(&["mount", "strata-demo/hello:1.0"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = s.run(&["rmi", "-f", "strata-demo/hello:1.0"]).ok().stdout;
    assert!(out.contains("Deleted: sha256:b1dcaf3cc163"), "{out}");
    assert!(
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&merged)
    );
    assert_eq!(s.run(&["mount"]).ok().stdout, "");
}

#[test]
fn without_root_a_flattened_copy_is_written_with_a_note() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    // Hand the store to an unprivileged user and mount as that user.
    peer(
        "chown",
        &["-R", "65534:65534", s.dir.path().to_str().unwrap()],
    );
    peer("chmod", &["755", s.dir.path().to_str().unwrap()]);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(["mount", "strata-demo/hello:1.0"])
        .env("STRATA_ROOT", s.root())
        .env("HOME", s.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let target = PathBuf::from(stdout.trim());
    assert!(
        stderr.contains("overlayfs needs root") && stderr.contains("flattened copy"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("etc/motd")).unwrap(),
        "Welcome to strata-demo 1.0\n"
    );
    assert!(
        !target.join("usr/share/hello/README").exists(),
        "the whiteout applied"
    );
    let listing = s.run(&["mount"]).ok().stdout;
    assert!(listing.ends_with("(flattened copy)\n"), "{listing}");
}

/// An OCI archive holding one image whose only layer has the given raw
/// tar entries (name, data), names written unchecked into the headers.
fn hostile_archive(path: &Path, entries: &[(&str, &[u8])]) {
    use sha2::{Digest as _, Sha256};
    let mut layer = Vec::new();
    for (name, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        layer.extend_from_slice(h.as_bytes());
        layer.extend_from_slice(data);
        layer.resize(layer.len().div_ceil(512) * 512, 0);
    }
    layer.resize(layer.len() + 1024, 0);
    let hex = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [hex(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": hex(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": hex(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": hex(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": "docker.io/library/hostile:1"}}],
    }))
    .unwrap();
    let mut out = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in [
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_string(), index),
        (
            format!("blobs/sha256/{}", &hex(&manifest)[7..]),
            manifest.clone(),
        ),
        (
            format!("blobs/sha256/{}", &hex(&config)[7..]),
            config.clone(),
        ),
        (format!("blobs/sha256/{}", &hex(&layer)[7..]), layer.clone()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, &data[..]).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn a_hostile_layer_is_refused_by_mount_naming_the_layer_and_entry() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    let archive = s.path("hostile.tar");
    hostile_archive(
        &archive,
        &[
            ("ok", b"fine\n"),
            ("../../escaped-by-strata-test", b"owned\n"),
        ],
    );
    assert_eq!(
        s.run(&["load", "-i", archive.to_str().unwrap()])
            .ok()
            .stdout,
        "Loaded image: hostile:1\n"
    );
    for args in [
        &["mount", "hostile:1"][..],
        &["mount", "--flatten", "hostile:1"][..],
    ] {
        let out = s.run(args).fails();
        assert!(
            out.stderr.contains("../../escaped-by-strata-test"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("layer sha256:"), "{}", out.stderr);
        assert!(!s.root().join(".strata/escaped-by-strata-test").exists());
        assert!(!s.dir.path().join("escaped-by-strata-test").exists());
        assert!(!Path::new("/escaped-by-strata-test").exists());
    }
    assert_eq!(
        s.run(&["mount"]).ok().stdout,
        "",
        "nothing recorded as mounted"
    );
    assert!(
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(s.root().to_str().unwrap())
    );
}

/// A refused mount takes back what it made and nothing else: directories
/// it created for `--target` go, a directory that was there (empty) stays
/// and is emptied of the partial copy, a user's files are never touched.
#[test]
fn a_refused_mount_takes_back_what_it_made() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    let archive = s.path("hostile.tar");
    // `ok` is written before the escape is refused: a partial copy.
    hostile_archive(
        &archive,
        &[("ok", b"fine\n"), ("../../escaped-by-strata-test", b"x\n")],
    );
    s.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    let mounts_dir = s.root().join(".strata/mounts");
    let state_dirs = || {
        std::fs::read_dir(&mounts_dir)
            .map(|d| d.count())
            .unwrap_or(0)
    };
    for flatten in [true, false] {
        let mode: &[&str] = if flatten { &["--flatten"] } else { &[] };
        let mount = |target: &Path| {
            let mut args = vec!["mount", "--target", target.to_str().unwrap()];
            args.extend(mode);
            args.push("hostile:1");
            s.run(&args).fails()
        };

        // Made by the mount, parents included: all gone.
        let made = s.path("made");
        let out = mount(&made.join("deep/er"));
        assert!(
            out.stderr.contains("escaped-by-strata-test"),
            "{}",
            out.stderr
        );
        assert!(!made.exists(), "created directories are removed ({mode:?})");

        // There before, empty: kept, and empty again.
        let empty = s.path("empty");
        std::fs::create_dir_all(&empty).unwrap();
        mount(&empty);
        assert!(empty.is_dir(), "a directory that was there stays");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{mode:?}");

        // The parent was there: only the new directory goes.
        let parent = s.path("parent");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(parent.join("mine"), "user data").unwrap();
        mount(&parent.join("new"));
        assert!(!parent.join("new").exists());
        assert_eq!(
            std::fs::read_to_string(parent.join("mine")).unwrap(),
            "user data"
        );

        // Not empty: refused before anything is written, nothing removed.
        let full = s.path("full");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("keep"), "k").unwrap();
        let out = mount(&full);
        assert!(
            out.stderr.contains("is not an empty directory"),
            "{}",
            out.stderr
        );
        assert_eq!(std::fs::read_to_string(full.join("keep")).unwrap(), "k");

        // Into the store: no state directory is left behind.
        let mut args = vec!["mount"];
        args.extend(mode);
        args.push("hostile:1");
        s.run(&args).fails();
        assert_eq!(state_dirs(), 0, "no mount state left ({mode:?})");
    }
    assert_eq!(s.run(&["mount"]).ok().stdout, "");
}

/// Regression: a relative `--root` once gave relative overlay layer links,
/// so the overlay mount failed and a flattened copy was silently written.
#[test]
fn a_relative_root_still_mounts_with_overlayfs() {
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.current_dir(s.dir.path())
            .env_remove("STRATA_ROOT")
            .args(["--root", "store"])
            .args(args);
        let out = common::output(&mut cmd).ok();
        (out.stdout, out.stderr)
    };
    run(&["load", "-i", common::demo_archive().to_str().unwrap()]);
    let (merged, note) = run(&["mount", "strata-demo/hello:1.0"]);
    assert_eq!(note, "", "no fallback");
    let merged = merged.trim();
    assert!(Path::new(merged).is_absolute(), "{merged}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("overlay ") && l.contains(merged)),
        "{mounts}"
    );
    run(&["umount", merged]);
}
