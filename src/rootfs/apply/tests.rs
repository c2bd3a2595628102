//! Unpacking and flattening small layers built in the test.

use super::*;
use crate::rootfs::testing::{Layer, cannot_run, listing};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Root's options; when not running as root, the test fails, or skips
/// visibly when allowed ([`cannot_run`]) and this gives `None`.
fn root(test: &str) -> Option<UnpackOptions> {
    if sys::is_root() {
        Some(UnpackOptions { as_root: true })
    } else {
        cannot_run(test, "needs root");
        None
    }
}

/// Whatever this process can do: root's powers only when it has them.
fn native() -> UnpackOptions {
    UnpackOptions::default()
}
const ROOTLESS: UnpackOptions = UnpackOptions { as_root: false };

fn flat(layers: &[Vec<u8>]) -> (tempfile::TempDir, UnpackReport) {
    let tmp = tempfile::tempdir().unwrap();
    let stack = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("layer{i}"), &l[..]));
    let report = flatten(stack, tmp.path(), &native()).unwrap();
    (tmp, report)
}

fn lines(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn xattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    Some(buf[..n].to_vec())
}

#[test]
fn flatten_applies_whiteouts_and_replacements() {
    let base = Layer::new()
        .dir("etc/")
        .file("etc/keep", b"k")
        .file("etc/gone", b"g")
        .dir("tree/")
        .dir("tree/sub/")
        .file("tree/sub/f", b"f")
        .dir("becomes-file/")
        .file("becomes-file/x", b"x")
        .file("becomes-dir", b"d")
        .dir("merge/")
        .file("merge/old", b"o")
        .build();
    let top = Layer::new()
        .file("etc/.wh.gone", b"")
        .file(".wh.tree", b"")
        .file(".wh.nothing-there", b"")
        .file("missing/.wh.x", b"")
        .file("becomes-file", b"now a file")
        .dir("becomes-dir/")
        .file("becomes-dir/y", b"y")
        .dir("merge/")
        .file("merge/new", b"n")
        .build();
    let (tmp, report) = flat(&[base, top]);
    assert_eq!(
        listing(tmp.path()),
        lines(&[
            "etc/ dir 755",
            "etc/keep file 644 \"k\"",
            "becomes-file file 644 \"now a file\"",
            "becomes-dir/ dir 755",
            "becomes-dir/y file 644 \"y\"",
            "merge/ dir 755",
            "merge/old file 644 \"o\"",
            "merge/new file 644 \"n\"",
        ])
    );
    assert_eq!(report.entries, 11 + 9);
    assert!(report.warnings.is_empty());
}

#[test]
fn opaque_hides_lower_content_but_not_its_own_layers_in_any_order() {
    // The image spec's example, with the marker first and last.
    let base = Layer::new()
        .dir("a/")
        .dir("a/b/")
        .dir("a/b/c/")
        .file("a/b/c/bar", b"bar")
        .file("a/top", b"t")
        .build();
    let marker_first = Layer::new()
        .dir("a/")
        .file("a/.wh..wh..opq", b"")
        .dir("a/b/")
        .dir("a/b/c/")
        .file("a/b/c/foo", b"foo")
        .build();
    let marker_last = Layer::new()
        .dir("a/")
        .dir("a/b/")
        .dir("a/b/c/")
        .file("a/b/c/foo", b"foo")
        .file("a/.wh..wh..opq", b"")
        .build();
    let want = lines(&[
        "a/ dir 755",
        "a/b/ dir 755",
        "a/b/c/ dir 755",
        "a/b/c/foo file 644 \"foo\"",
    ]);
    let (first, _) = flat(&[base.clone(), marker_first]);
    assert_eq!(listing(first.path()), want);
    let (last, _) = flat(&[base, marker_last]);
    assert_eq!(listing(last.path()), want);
}

#[test]
fn opaque_keeps_entries_of_its_layer_without_parent_entries() {
    let base = Layer::new()
        .dir("a/")
        .dir("a/b/")
        .file("a/b/old", b"o")
        .build();
    let top = Layer::new()
        .file("a/b/new", b"n")
        .file("a/.wh..wh..opq", b"")
        .build();
    let (tmp, _) = flat(&[base, top]);
    let l = listing(tmp.path());
    assert!(l.contains(&"a/b/new file 644 \"n\"".to_string()), "{l:?}");
    assert!(!l.iter().any(|s| s.starts_with("a/b/old")), "{l:?}");
}

#[test]
fn a_whiteout_spares_what_its_own_layer_wrote() {
    let base = Layer::new()
        .file("f", b"lower")
        .dir("d/")
        .file("d/lower", b"l")
        .build();
    let top = Layer::new()
        .file("f", b"upper")
        .file(".wh.f", b"")
        .file("d/upper", b"u")
        .file(".wh.d", b"")
        .build();
    let (tmp, _) = flat(&[base, top]);
    assert_eq!(
        listing(tmp.path()),
        lines(&[
            "f file 644 \"upper\"",
            "d/ dir 755",
            "d/upper file 644 \"u\""
        ])
    );
}

#[test]
fn later_entries_replace_earlier_ones_within_a_layer() {
    let layer = Layer::new()
        .dir("x/")
        .file("x/inner", b"i")
        .file("x", b"file now")
        .file("y", b"file")
        .dir("y/")
        .file("z", b"one")
        .file("z", b"two")
        .build();
    let (tmp, _) = flat(&[layer]);
    assert_eq!(
        listing(tmp.path()),
        lines(&[
            "x file 644 \"file now\"",
            "y/ dir 755",
            "z file 644 \"two\""
        ])
    );
}

#[test]
fn aufs_metadata_is_skipped() {
    let layer = Layer::new()
        .dir(".wh..wh.plnk/")
        .file(".wh..wh.plnk/123.456", b"x")
        .file("dir/.wh..wh.aufs", b"")
        .file("real", b"r")
        .build();
    let (tmp, _) = flat(&[layer]);
    // Not even `dir`: the marker was the layer's only word about it.
    assert_eq!(listing(tmp.path()), lines(&["real file 644 \"r\""]));
}

#[test]
fn hardlinks_may_point_into_lower_layers_when_flattening() {
    let base = Layer::new().file("bin/tool", b"t").build();
    let top = Layer::new().hardlink("bin/alias", "bin/tool").build();
    let (tmp, _) = flat(&[base, top]);
    let a = fs::metadata(tmp.path().join("bin/tool")).unwrap();
    let b = fs::metadata(tmp.path().join("bin/alias")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn overlay_unpack_converts_whiteouts() {
    let Some(root) = root("rootfs::apply::tests::overlay_unpack_converts_whiteouts") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .dir("etc/")
        .file("etc/.wh.gone", b"")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/kept", b"k")
        .file(".wh.redone", b"")
        .dir("redone/")
        .file("new/.wh..wh..opq", b"")
        .build();
    let report = unpack_layer(&layer[..], "sha256:l", tmp.path(), &root).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let gone = fs::symlink_metadata(tmp.path().join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!tmp.path().join("etc/.wh.gone").exists());
    assert_eq!(
        xattr(&tmp.path().join("opaque"), OPAQUE_XATTR),
        Some(b"y".to_vec())
    );
    assert!(tmp.path().join("opaque/kept").exists());
    assert!(!tmp.path().join("opaque/.wh..wh..opq").exists());
    // Whiteout then directory in one layer: a new, opaque directory.
    assert!(tmp.path().join("redone").is_dir());
    assert_eq!(
        xattr(&tmp.path().join("redone"), OPAQUE_XATTR),
        Some(b"y".to_vec())
    );
    // A marker in a directory the layer does not list creates it.
    assert_eq!(
        xattr(&tmp.path().join("new"), OPAQUE_XATTR),
        Some(b"y".to_vec())
    );
    assert_eq!(xattr(&tmp.path().join("etc"), OPAQUE_XATTR), None);
}

#[test]
fn overlay_whiteout_then_implicit_directory_becomes_opaque() {
    let Some(root) =
        root("rootfs::apply::tests::overlay_whiteout_then_implicit_directory_becomes_opaque")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new().file(".wh.a", b"").file("a/x", b"x").build();
    unpack_layer(&layer[..], "l", tmp.path(), &root).unwrap();
    assert!(tmp.path().join("a/x").is_file());
    assert_eq!(
        xattr(&tmp.path().join("a"), OPAQUE_XATTR),
        Some(b"y".to_vec())
    );
}

#[test]
fn overlay_whiteouts_need_root() {
    for (name, what) in [(".wh.x", "whiteout"), ("d/.wh..wh..opq", "opaque")] {
        let tmp = tempfile::tempdir().unwrap();
        let layer = Layer::new().file(name, b"").build();
        let err = unpack_layer(&layer[..], "sha256:abc", tmp.path(), &ROOTLESS).unwrap_err();
        match &err {
            RootfsError::NeedsRoot {
                layer,
                entry,
                what: w,
            } => {
                assert_eq!(layer, "sha256:abc");
                assert_eq!(entry, name);
                assert!(w.contains(what), "{w}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("needs root"), "{err}");
    }
}

#[test]
fn rootless_skips_devices_owners_and_privileged_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/loop0", EntryType::Block, 7, 0)
        .device("fifo", EntryType::Fifo, 0, 0)
        .custom(
            EntryType::Regular,
            "owned",
            0o644,
            b"o",
            &[
                ("SCHILY.xattr.trusted.secret", b"t"),
                ("SCHILY.xattr.user.ok", b"u"),
            ],
            |h| {
                h.set_uid(1000);
                h.set_gid(1000);
            },
        )
        .build();
    let report = unpack_layer(&layer[..], "L", tmp.path(), &ROOTLESS).unwrap();
    assert!(!report.owners_preserved);
    assert!(!tmp.path().join("dev/null").exists());
    assert!(!tmp.path().join("dev/loop0").exists());
    let fifo = fs::symlink_metadata(tmp.path().join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    let owned = fs::metadata(tmp.path().join("owned")).unwrap();
    assert_eq!(owned.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(
        xattr(&tmp.path().join("owned"), c"user.ok"),
        Some(b"u".to_vec())
    );
    assert_eq!(xattr(&tmp.path().join("owned"), c"trusted.secret"), None);
    let kinds: Vec<_> = report
        .warnings
        .iter()
        .map(|w| (w.entry.as_str(), &w.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("dev/null", &WarningKind::DeviceSkipped),
            ("dev/loop0", &WarningKind::DeviceSkipped),
            (
                "owned",
                &WarningKind::XattrSkipped {
                    name: "trusted.secret".into(),
                    reason: "not root".into()
                }
            ),
        ]
    );
    assert_eq!(
        report.warnings[0].to_string(),
        "layer L: entry \"dev/null\": device node skipped (not root)"
    );
}

#[test]
fn as_root_creates_devices_and_refuses_overlay_xattrs_from_the_archive() {
    let Some(root) = root(
        "rootfs::apply::tests::as_root_creates_devices_and_refuses_overlay_xattrs_from_the_archive",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .device("dev/null", EntryType::Char, 1, 3)
        .custom(
            EntryType::Directory,
            "sneaky/",
            0o755,
            b"",
            &[("SCHILY.xattr.trusted.overlay.opaque", b"y")],
            |_| {},
        )
        .build();
    let report = unpack_layer(&layer[..], "L", tmp.path(), &root).unwrap();
    let null = fs::symlink_metadata(tmp.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(xattr(&tmp.path().join("sneaky"), OPAQUE_XATTR), None);
    assert!(matches!(
        &report.warnings[..],
        [UnpackWarning { kind: WarningKind::XattrSkipped { name, .. }, .. }] if name == "trusted.overlay.opaque"
    ));
}

#[test]
fn pax_times_and_zero_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = vec![0u8; 4 * COPY_BUFFER];
    big[10] = 1;
    big[3 * COPY_BUFFER + 5] = 2;
    let layer = Layer::new()
        .custom(
            EntryType::Regular,
            "sparse",
            0o600,
            &big,
            &[("mtime", b"1700000000.25"), ("atime", b"1700000001.5")],
            |_| {},
        )
        .custom(
            EntryType::Regular,
            "trailing-zeros",
            0o600,
            &vec![0u8; 2 * COPY_BUFFER],
            &[],
            |_| {},
        )
        .build();
    unpack_layer(&layer[..], "L", tmp.path(), &native()).unwrap();
    let m = fs::metadata(tmp.path().join("sparse")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 250_000_000));
    assert_eq!((m.atime(), m.atime_nsec()), (1_700_000_001, 500_000_000));
    assert_eq!(fs::read(tmp.path().join("sparse")).unwrap(), big);
    assert!(m.blocks() * 512 < big.len() as u64, "holes were written");
    let z = fs::metadata(tmp.path().join("trailing-zeros")).unwrap();
    assert_eq!(z.len(), 2 * COPY_BUFFER as u64);
}

#[test]
fn parses_pax_times() {
    let t = |s: &str| parse_pax_time(s.as_bytes());
    assert_eq!(t("12"), Some(Time { secs: 12, nanos: 0 }));
    assert_eq!(
        t("12.5"),
        Some(Time {
            secs: 12,
            nanos: 500_000_000
        })
    );
    assert_eq!(
        t("-1.25"),
        Some(Time {
            secs: -2,
            nanos: 750_000_000
        })
    );
    assert_eq!(
        t("1.1234567891"),
        Some(Time {
            secs: 1,
            nanos: 123_456_789
        })
    );
    assert_eq!(t("x"), None);
    assert_eq!(t(""), None);
}

#[test]
fn compressed_layers_unpack() {
    let layer = Layer::new().file("hello", b"world").build();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&layer).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    for blob in [gz, zst] {
        let tmp = tempfile::tempdir().unwrap();
        unpack_layer(&blob[..], "L", tmp.path(), &native()).unwrap();
        assert_eq!(fs::read(tmp.path().join("hello")).unwrap(), b"world");
    }
}

#[test]
fn garbage_is_a_tar_error_naming_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = Layer::new().file("a", b"x").build();
    bad[600] ^= 0xff; // inside the content, so the header is fine …
    bad[0] ^= 0xff; // … but the first header's checksum is not
    let err = unpack_layer(&bad[..], "sha256:bad", tmp.path(), &native()).unwrap_err();
    assert!(
        matches!(&err, RootfsError::LayerTar { layer, .. } if layer == "sha256:bad"),
        "{err}"
    );
}

#[test]
fn directory_times_are_set_after_their_content() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .custom(EntryType::Directory, "d/", 0o555, b"", &[], |h| {
            h.set_mtime(1000)
        })
        .file("d/f", b"x")
        .dir("d/sub/")
        .build();
    unpack_layer(&layer[..], "L", tmp.path(), &ROOTLESS).unwrap();
    let m = fs::metadata(tmp.path().join("d")).unwrap();
    assert_eq!(m.mtime(), 1000);
    assert_eq!(m.mode() & 0o7777, 0o555);
}

#[test]
fn attributes_reach_symlinks_and_fifos_without_following() {
    let Some(root) =
        root("rootfs::apply::tests::attributes_reach_symlinks_and_fifos_without_following")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().display().to_string();
    let attr: &[(&str, &[u8])] = &[("SCHILY.xattr.trusted.strata", b"t")];
    let layer = Layer::new()
        .custom(EntryType::Fifo, "fifo", 0o600, b"", attr, |_| {})
        .custom(EntryType::Symlink, "link", 0o777, b"", attr, |h| {
            h.set_link_name(&target).unwrap();
        })
        .build();
    let report = unpack_layer(&layer[..], "L", tmp.path(), &root).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        xattr(&tmp.path().join("fifo"), c"trusted.strata"),
        Some(b"t".to_vec())
    );
    assert_eq!(
        xattr(&tmp.path().join("link"), c"trusted.strata"),
        Some(b"t".to_vec())
    );
    assert_eq!(xattr(outside.path(), c"trusted.strata"), None);
}
