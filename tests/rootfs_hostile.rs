//! Hostile layers against the layer engine's library API: whatever an
//! archive says, nothing lands outside the destination, and every refusal
//! names the layer and the entry. Also a fidelity test: what an honest layer
//! says about modes, owners, times, attributes and links is what lands.
//!
//! Each test runs in a sandbox `TMP/{dest,outside}`; `outside` holds a
//! sentinel, and the sandbox minus `dest` is compared before and after.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use strata::rootfs::{
    Refusal, RootfsError, UnpackOptions, UnpackReport, WarningKind, flatten, unpack_layer,
};
use tar::{EntryType, Header};

mod common;

const LABEL: &str = "sha256:0123hostile";
/// What this process can do: root's powers only when it has them. The
/// hostile tests need none.
fn native() -> UnpackOptions {
    UnpackOptions::default()
}

/// Root's options; when not running as root, the test fails, or skips
/// visibly when allowed (`common::cannot_run`) and this gives `None`.
fn root(test: &str) -> Option<UnpackOptions> {
    let options = UnpackOptions::default();
    if !options.as_root {
        common::cannot_run(test, "needs root");
    }
    options.as_root.then_some(options)
}
const ROOTLESS: UnpackOptions = UnpackOptions { as_root: false };

// ----- building layers, hostile names included -----

/// One tar entry; names and link targets go in as raw bytes, unchecked.
struct E {
    kind: EntryType,
    path: String,
    link: String,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    dev: (u32, u32),
}

fn e(kind: EntryType, path: &str) -> E {
    E {
        kind,
        path: path.into(),
        link: String::new(),
        mode: if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        },
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
        data: Vec::new(),
        pax: Vec::new(),
        dev: (0, 0),
    }
}

fn dir(path: &str) -> E {
    e(EntryType::Directory, path)
}

fn file(path: &str, data: &[u8]) -> E {
    E {
        data: data.to_vec(),
        ..e(EntryType::Regular, path)
    }
}

fn symlink(path: &str, target: &str) -> E {
    E {
        link: target.into(),
        mode: 0o777,
        ..e(EntryType::Symlink, path)
    }
}

fn hardlink(path: &str, target: &str) -> E {
    E {
        link: target.into(),
        ..e(EntryType::Link, path)
    }
}

fn layer(entries: Vec<E>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for en in entries {
        let mut pax: Vec<(&str, &[u8])> =
            en.pax.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        if en.path.len() > 99 {
            pax.push(("path", en.path.as_bytes()));
        }
        if en.link.len() > 99 {
            pax.push(("linkpath", en.link.as_bytes()));
        }
        if !pax.is_empty() {
            b.append_pax_extensions(pax).unwrap();
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(en.kind);
        h.set_mode(en.mode);
        h.set_uid(en.uid);
        h.set_gid(en.gid);
        h.set_mtime(en.mtime);
        h.set_size(en.data.len() as u64);
        if matches!(en.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(en.dev.0).unwrap();
            h.set_device_minor(en.dev.1).unwrap();
        }
        let old = h.as_old_mut();
        let name = &en.path.as_bytes()[..en.path.len().min(99)];
        old.name[..name.len()].copy_from_slice(name);
        let link = &en.link.as_bytes()[..en.link.len().min(99)];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        b.append(&h, &en.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

// ----- the sandbox -----

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dest = root.join("dest");
        let outside = root.join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), b"untouched").unwrap();
        let mut sb = Sandbox {
            _tmp: tmp,
            root,
            dest,
            outside,
            before: BTreeMap::new(),
        };
        sb.before = sb.outside_state();
        sb
    }

    /// Everything in the sandbox but `dest`, with kinds and contents.
    fn outside_state(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p == self.dest {
                    continue;
                }
                let m = fs::symlink_metadata(&p).unwrap();
                let what = if m.is_dir() {
                    stack.push(p.clone());
                    "dir".to_string()
                } else if m.file_type().is_symlink() {
                    format!("-> {}", fs::read_link(&p).unwrap().display())
                } else {
                    format!("{:?}", fs::read(&p).unwrap())
                };
                out.insert(p, format!("{what} {:o} {}", m.mode(), m.nlink()));
            }
        }
        out
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(
            self.outside_state(),
            self.before,
            "something changed outside dest"
        );
    }

    fn unpack(
        &self,
        entries: Vec<E>,
        options: &UnpackOptions,
    ) -> Result<UnpackReport, RootfsError> {
        unpack_layer(&layer(entries)[..], LABEL, &self.dest, options)
    }

    fn flatten(&self, layers: Vec<Vec<E>>) -> Result<UnpackReport, RootfsError> {
        let blobs: Vec<Vec<u8>> = layers.into_iter().map(layer).collect();
        let stack = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("{LABEL}-{i}"), &b[..]));
        flatten(stack, &self.dest, &native())
    }
}

/// Asserts a refusal names this layer and entry, and returns its reason.
fn refused(result: Result<UnpackReport, RootfsError>, layer: &str, entry: &str) -> Refusal {
    match result {
        Err(err @ RootfsError::Refused { .. }) => {
            let text = err.to_string();
            assert!(text.contains(layer) && text.contains(entry), "{text}");
            let RootfsError::Refused {
                layer: l,
                entry: en,
                reason,
            } = err
            else {
                unreachable!()
            };
            assert_eq!((l.as_str(), en.as_str()), (layer, entry));
            reason
        }
        Err(other) => panic!("expected a refusal, got: {other}"),
        Ok(report) => panic!("expected a refusal, got success: {report:?}"),
    }
}

/// A name no real `/etc` holds, for tests that aim at it.
fn probe_name(tag: &str) -> String {
    format!("strata-hostile-{tag}-{}", std::process::id())
}

fn assert_absent_from_etc(name: &str) {
    let p = Path::new("/etc").join(name);
    let existed = fs::symlink_metadata(&p).is_ok();
    let _ = fs::remove_file(&p);
    assert!(!existed, "{} was written", p.display());
}

// ----- names that climb out -----

#[test]
fn dot_dot_escapes_are_refused() {
    for name in [
        "../escape",
        "a/../../escape",
        "./../outside/sentinel",
        "a/b/../../../x",
        "..",
    ] {
        let sb = Sandbox::new();
        let result = sb.unpack(vec![dir("a/"), file(name, b"pwned")], &native());
        assert_eq!(refused(result, LABEL, name), Refusal::DotDot, "{name}");
        sb.assert_outside_untouched();
    }
}

#[test]
fn dot_dot_in_a_long_pax_name_is_refused() {
    let sb = Sandbox::new();
    let name = format!("{}/../../../../outside/sentinel", "d".repeat(120));
    let result = sb.unpack(vec![file(&name, b"pwned")], &native());
    assert_eq!(refused(result, LABEL, &name), Refusal::DotDot);
    sb.assert_outside_untouched();
}

#[test]
fn absolute_names_land_inside_dest() {
    let sb = Sandbox::new();
    let target = sb.outside.join("abs-target");
    let name = target.display().to_string();
    sb.unpack(
        vec![file(&name, b"inside"), file("/etc/strata-abs", b"x")],
        &native(),
    )
    .unwrap();
    // The leading `/` is dropped, as docker drops it.
    let landed = sb.dest.join(name.trim_start_matches('/'));
    assert_eq!(fs::read(landed).unwrap(), b"inside");
    assert_eq!(fs::read(sb.dest.join("etc/strata-abs")).unwrap(), b"x");
    assert!(!target.exists());
    assert!(!Path::new("/etc/strata-abs").exists());
    sb.assert_outside_untouched();
}

#[test]
fn absolute_dot_dot_is_still_refused() {
    let sb = Sandbox::new();
    let result = sb.unpack(vec![file("/../../etc/strata-x", b"x")], &native());
    assert_eq!(
        refused(result, LABEL, "/../../etc/strata-x"),
        Refusal::DotDot
    );
}

// ----- symlinks on the way -----

#[test]
fn an_entry_through_an_absolute_symlink_is_refused() {
    let sb = Sandbox::new();
    let name = probe_name("etc");
    let entry = format!("a/{name}");
    let result = sb.unpack(
        vec![symlink("a", "/etc"), file(&entry, b"pwned")],
        &native(),
    );
    let reason = refused(result, LABEL, &entry);
    assert_eq!(reason, Refusal::SymlinkParent("a".into()));
    assert_absent_from_etc(&name);
    // The symlink itself is data, and stays.
    assert_eq!(fs::read_link(sb.dest.join("a")).unwrap(), Path::new("/etc"));
    sb.assert_outside_untouched();
}

#[test]
fn an_entry_through_a_symlink_to_a_real_outside_dir_is_refused() {
    let sb = Sandbox::new();
    let target = sb.outside.display().to_string();
    for (link, entry) in [
        (target.as_str(), "a/sentinel"),
        ("../outside", "a/new-file"),
    ] {
        let result = sb.unpack(vec![symlink("a", link), file(entry, b"pwned")], &native());
        assert_eq!(
            refused(result, LABEL, entry),
            Refusal::SymlinkParent("a".into())
        );
        sb.assert_outside_untouched();
    }
}

#[test]
fn a_directory_entry_through_a_symlink_is_refused() {
    let sb = Sandbox::new();
    let result = sb.unpack(vec![symlink("a", "../outside"), dir("a/sub/")], &native());
    assert_eq!(
        refused(result, LABEL, "a/sub/"),
        Refusal::SymlinkParent("a".into())
    );
    sb.assert_outside_untouched();
}

#[test]
fn symlink_chains_to_dot_dot_are_never_followed() {
    let sb = Sandbox::new();
    let entries = vec![
        dir("d/"),
        symlink("d/up", ".."),
        symlink("up2", "d/up/.."),
        symlink("loop", "loop"),
        symlink("self", "."),
    ];
    sb.unpack(entries, &native()).unwrap();
    for (entry, parent) in [
        ("d/up/up2/x", "d/up"),
        ("up2/outside/sentinel", "up2"),
        ("loop/x", "loop"),
        ("self/self/x", "self"),
    ] {
        let result = sb.unpack(vec![file(entry, b"pwned")], &native());
        assert_eq!(
            refused(result, LABEL, entry),
            Refusal::SymlinkParent(parent.into())
        );
    }
    sb.assert_outside_untouched();
}

#[test]
fn a_file_over_a_symlink_replaces_the_link() {
    let sb = Sandbox::new();
    let sentinel = sb.outside.join("sentinel").display().to_string();
    let entries = vec![
        symlink("f", &sentinel),
        file("f", b"replaced"),
        symlink("d", "../outside"),
        dir("d/"),
    ];
    sb.unpack(entries, &native()).unwrap();
    let f = fs::symlink_metadata(sb.dest.join("f")).unwrap();
    assert!(f.is_file());
    assert_eq!(fs::read(sb.dest.join("f")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(sb.dest.join("d")).unwrap().is_dir());
    sb.assert_outside_untouched();
}

#[test]
fn an_entry_under_a_file_is_refused() {
    let sb = Sandbox::new();
    let result = sb.unpack(vec![file("f", b"x"), file("f/g", b"y")], &native());
    assert_eq!(
        refused(result, LABEL, "f/g"),
        Refusal::NotADirectory("f".into())
    );
}

#[test]
fn the_root_cannot_be_replaced() {
    for entry in [file("./", b"x"), symlink(".", "/etc"), hardlink("/", "x")] {
        let name = entry.path.clone();
        let sb = Sandbox::new();
        let result = sb.unpack(vec![file("x", b"x"), entry], &native());
        assert_eq!(refused(result, LABEL, &name), Refusal::Root);
        assert!(sb.dest.is_dir());
    }
}

// ----- hard links -----

#[test]
fn hardlinks_out_of_dest_are_refused() {
    let sb = Sandbox::new();
    // Absolute: read inside dest, where there is no etc/passwd.
    let result = sb.unpack(vec![hardlink("h", "/etc/passwd")], &native());
    assert_eq!(
        refused(result, LABEL, "h"),
        Refusal::LinkTargetMissing("/etc/passwd".into())
    );
    for target in ["../../x", "../outside/sentinel", "a/../../outside/sentinel"] {
        let result = sb.unpack(vec![hardlink("h", target)], &native());
        assert_eq!(
            refused(result, LABEL, "h"),
            Refusal::LinkTarget {
                target: target.into(),
                reason: Box::new(Refusal::DotDot)
            }
        );
    }
    sb.assert_outside_untouched();
    assert_eq!(
        fs::metadata(sb.outside.join("sentinel")).unwrap().nlink(),
        1
    );
}

#[test]
fn hardlinks_through_symlinks_are_refused() {
    let sb = Sandbox::new();
    let outside = sb.outside.display().to_string();
    let result = sb.unpack(
        vec![symlink("a", &outside), hardlink("h", "a/sentinel")],
        &native(),
    );
    assert_eq!(
        refused(result, LABEL, "h"),
        Refusal::LinkTarget {
            target: "a/sentinel".into(),
            reason: Box::new(Refusal::SymlinkParent("a".into()))
        }
    );
    let result = sb.unpack(
        vec![symlink("e", "/etc"), hardlink("h", "e/passwd")],
        &native(),
    );
    assert!(matches!(
        refused(result, LABEL, "h"),
        Refusal::LinkTarget { .. }
    ));
    assert_eq!(
        fs::metadata(sb.outside.join("sentinel")).unwrap().nlink(),
        1
    );
    sb.assert_outside_untouched();
}

#[test]
fn a_hardlink_to_a_symlink_links_the_symlink_not_its_target() {
    let sb = Sandbox::new();
    let sentinel = sb.outside.join("sentinel").display().to_string();
    sb.unpack(vec![symlink("s", &sentinel), hardlink("h", "s")], &native())
        .unwrap();
    let h = fs::symlink_metadata(sb.dest.join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(
        fs::metadata(sb.outside.join("sentinel")).unwrap().nlink(),
        1
    );
    sb.assert_outside_untouched();
}

#[test]
fn writing_over_a_hardlink_does_not_write_through_it() {
    let sb = Sandbox::new();
    sb.unpack(
        vec![
            file("t", b"original"),
            hardlink("h", "t"),
            file("h", b"new"),
        ],
        &native(),
    )
    .unwrap();
    assert_eq!(fs::read(sb.dest.join("t")).unwrap(), b"original");
    assert_eq!(fs::read(sb.dest.join("h")).unwrap(), b"new");
}

#[test]
fn odd_hardlinks_are_refused() {
    let sb = Sandbox::new();
    let cases = [
        (
            vec![dir("d/"), hardlink("h", "d")],
            Refusal::LinkToDirectory("d".into()),
        ),
        (
            vec![file("x", b"x"), hardlink("x", "x")],
            Refusal::LinkToItself,
        ),
        (
            vec![hardlink("h", "missing")],
            Refusal::LinkTargetMissing("missing".into()),
        ),
    ];
    for (entries, want) in cases {
        let entry = entries.last().unwrap().path.clone();
        assert_eq!(refused(sb.unpack(entries, &native()), LABEL, &entry), want);
    }
}

// ----- devices and whiteouts without root -----

#[test]
fn device_nodes_need_root() {
    let char_dev = |name: &str| E {
        dev: (1, 3),
        mode: 0o666,
        ..e(EntryType::Char, name)
    };
    let sb = Sandbox::new();
    let report = sb
        .unpack(vec![char_dev("dev/null"), file("dev/ok", b"")], &ROOTLESS)
        .unwrap();
    assert!(!sb.dest.join("dev/null").exists());
    assert!(sb.dest.join("dev/ok").exists());
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].kind, WarningKind::DeviceSkipped);
    assert_eq!(report.warnings[0].layer, LABEL);
    assert_eq!(report.warnings[0].entry, "dev/null");
    assert!(!report.owners_preserved);

    // As root the device is made.
    let Some(root) = root("rootfs_hostile::device_nodes_need_root") else {
        return;
    };
    let sb = Sandbox::new();
    let report = sb.unpack(vec![char_dev("dev/null")], &root).unwrap();
    assert!(report.warnings.is_empty());
    let m = fs::symlink_metadata(sb.dest.join("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!((m.rdev(), m.mode() & 0o7777), (libc::makedev(1, 3), 0o666));
}

#[test]
fn overlay_whiteouts_without_root_are_an_error() {
    let sb = Sandbox::new();
    let err = sb
        .unpack(vec![file("etc/.wh.passwd", b"")], &ROOTLESS)
        .unwrap_err();
    assert!(
        matches!(&err, RootfsError::NeedsRoot { layer, entry, .. } if layer == LABEL && entry == "etc/.wh.passwd"),
        "{err}"
    );
    // Flattening applies whiteouts and needs no root.
    let blobs = [
        layer(vec![file("etc/passwd", b"x")]),
        layer(vec![file("etc/.wh.passwd", b"")]),
    ];
    flatten(blobs.iter().map(|b| ("L", &b[..])), &sb.dest, &ROOTLESS).unwrap();
    assert!(!sb.dest.join("etc/passwd").exists());
}

// ----- whiteouts -----

#[test]
fn whiteouts_of_nothing_are_harmless() {
    let sb = Sandbox::new();
    sb.flatten(vec![
        vec![file("f", b"x"), file("g", b"y")],
        vec![
            file(".wh.nothing", b""),
            file("missing/dir/.wh.x", b""),
            file("f/.wh.x", b""), // under a file
            file("missing/.wh..wh..opq", b""),
        ],
    ])
    .unwrap();
    let names: Vec<_> = fs::read_dir(&sb.dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["f", "g"]);
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_through_symlinks_are_refused() {
    let sb = Sandbox::new();
    let outside = sb.outside.display().to_string();
    let result = sb.flatten(vec![
        vec![symlink("a", &outside), symlink("e", "/etc")],
        vec![file("a/.wh.sentinel", b"")],
    ]);
    assert_eq!(
        refused(result, &format!("{LABEL}-1"), "a/.wh.sentinel"),
        Refusal::SymlinkParent("a".into())
    );
    let result = sb.flatten(vec![vec![file("e/.wh..wh..opq", b"")]]);
    assert_eq!(
        refused(result, &format!("{LABEL}-0"), "e/.wh..wh..opq"),
        Refusal::SymlinkParent("e".into())
    );
    assert!(Path::new("/etc/passwd").exists());
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_of_dot_and_dot_dot_are_refused() {
    let sb = Sandbox::new();
    for name in ["d/.wh..", "d/.wh...", "d/.wh."] {
        let result = sb.flatten(vec![vec![dir("d/")], vec![file(name, b"")]]);
        assert_eq!(
            refused(result, &format!("{LABEL}-1"), name),
            Refusal::EmptyWhiteout
        );
    }
    assert!(sb.dest.join("d").is_dir());
    sb.assert_outside_untouched();
}

#[test]
fn opaque_directories_hide_lower_layers_only() {
    let sb = Sandbox::new();
    sb.flatten(vec![
        vec![
            dir("a/"),
            file("a/lower", b"l"),
            dir("a/sub/"),
            file("a/sub/deep", b"d"),
            file("b", b"b"),
        ],
        vec![
            dir("a/"),
            file("a/.wh..wh..opq", b""),
            file("a/upper", b"u"),
        ],
        vec![file("a/top", b"t")],
    ])
    .unwrap();
    let mut names: Vec<_> = fs::read_dir(sb.dest.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["top", "upper"]);
    assert!(sb.dest.join("b").exists());
}

#[test]
fn files_and_directories_replace_each_other() {
    let sb = Sandbox::new();
    sb.flatten(vec![
        vec![
            dir("was-dir/"),
            file("was-dir/inner", b"i"),
            file("was-file", b"f"),
            symlink("was-link", "/etc"),
        ],
        vec![
            file("was-dir", b"now a file"),
            dir("was-file/"),
            file("was-file/inner", b"n"),
            dir("was-link/"),
        ],
    ])
    .unwrap();
    assert_eq!(fs::read(sb.dest.join("was-dir")).unwrap(), b"now a file");
    assert_eq!(fs::read(sb.dest.join("was-file/inner")).unwrap(), b"n");
    assert!(
        fs::symlink_metadata(sb.dest.join("was-link"))
            .unwrap()
            .is_dir()
    );
    let mut all = Vec::new();
    for entry in fs::read_dir(&sb.dest).unwrap() {
        all.push(entry.unwrap().file_name().into_string().unwrap());
    }
    assert!(all.iter().all(|n| !n.starts_with(".wh.")), "{all:?}");
    sb.assert_outside_untouched();
}

// ----- fidelity -----

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let len = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    Some(buf[..len].to_vec())
}

#[test]
fn an_honest_layer_is_preserved_exactly() {
    let Some(root) = root("rootfs_hostile::an_honest_layer_is_preserved_exactly") else {
        return;
    };
    let sb = Sandbox::new();
    let owned = |mut en: E| {
        en.uid = 1000;
        en.gid = 1000;
        en
    };
    let entries = vec![
        E {
            mode: 0o755,
            mtime: 1_000_000,
            ..owned(dir("bin/"))
        },
        E {
            mode: 0o4755,
            mtime: 1_100_000,
            ..owned(file("bin/suid", b"#!/bin/true\n"))
        },
        E {
            mode: 0o2755,
            ..owned(file("bin/sgid", b"x"))
        },
        hardlink("bin/suid-link", "bin/suid"),
        E {
            mode: 0o2775,
            mtime: 1_200_000,
            ..owned(dir("shared/"))
        },
        E {
            mode: 0o1777,
            mtime: 1_300_000,
            ..dir("tmp/")
        },
        E {
            mode: 0o700,
            mtime: 1_400_000,
            ..owned(dir("empty/"))
        },
        E {
            pax: vec![
                ("SCHILY.xattr.user.strata".into(), b"value".to_vec()),
                ("mtime".into(), b"1500000000.123456789".to_vec()),
            ],
            ..owned(file("shared/attr", b"a"))
        },
        E {
            mtime: 1_600_000,
            ..owned(symlink("shared/link", "../bin/suid"))
        },
        E {
            mode: 0o640,
            ..owned(e(EntryType::Fifo, "shared/fifo"))
        },
    ];
    let report = sb.unpack(entries, &root).unwrap();
    assert!(report.owners_preserved);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let meta = |p: &str| fs::symlink_metadata(sb.dest.join(p)).unwrap();

    let suid = meta("bin/suid");
    assert_eq!(suid.mode() & 0o7777, 0o4755);
    assert_eq!((suid.uid(), suid.gid()), (1000, 1000));
    assert_eq!(suid.mtime(), 1_100_000);
    assert_eq!(meta("bin/sgid").mode() & 0o7777, 0o2755);
    assert_eq!(meta("bin/suid-link").ino(), suid.ino());
    assert_eq!(suid.nlink(), 2);

    for (d, mode, mtime, uid) in [
        ("bin", 0o755, 1_000_000, 1000),
        ("shared", 0o2775, 1_200_000, 1000),
        ("tmp", 0o1777, 1_300_000, 0),
        ("empty", 0o700, 1_400_000, 1000),
    ] {
        let m = meta(d);
        assert!(m.is_dir(), "{d}");
        assert_eq!(m.mode() & 0o7777, mode, "{d}");
        assert_eq!(m.mtime(), mtime as i64, "{d}: set after its content");
        assert_eq!(m.uid(), uid, "{d}");
    }
    assert_eq!(fs::read_dir(sb.dest.join("empty")).unwrap().count(), 0);

    let attr = meta("shared/attr");
    assert_eq!(
        xattr(&sb.dest.join("shared/attr"), "user.strata"),
        Some(b"value".to_vec())
    );
    assert_eq!(
        (attr.mtime(), attr.mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );

    let link = meta("shared/link");
    assert!(link.file_type().is_symlink());
    assert_eq!(
        fs::read_link(sb.dest.join("shared/link")).unwrap(),
        Path::new("../bin/suid")
    );
    assert_eq!((link.uid(), link.mtime()), (1000, 1_600_000));

    let fifo = meta("shared/fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.mode() & 0o7777, fifo.uid()), (0o640, 1000));
    sb.assert_outside_untouched();
}

#[test]
fn rootless_unpack_keeps_modes_but_not_owners() {
    let sb = Sandbox::new();
    let entries = vec![E {
        mode: 0o4755,
        uid: 1000,
        gid: 1000,
        ..file("suid", b"x")
    }];
    let report = sb.unpack(entries, &ROOTLESS).unwrap();
    assert!(!report.owners_preserved);
    let m = fs::metadata(sb.dest.join("suid")).unwrap();
    assert_eq!(m.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(m.mode() & 0o7777, 0o4755);
}
