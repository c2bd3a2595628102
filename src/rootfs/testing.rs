//! Building small layers in tests, including ones no honest tool writes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

/// A layer under construction. Names and link targets are written as raw
/// bytes (through a PAX record when long), so `..` and `/` go in unchecked.
pub(crate) struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub(crate) fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn put(self, kind: EntryType, path: &str, link: &str, mode: u32, data: &[u8]) -> Self {
        self.put_with(kind, path, link, mode, data, &[], |_| {})
    }

    #[allow(clippy::too_many_arguments)]
    fn put_with(
        mut self,
        kind: EntryType,
        path: &str,
        link: &str,
        mode: u32,
        data: &[u8],
        pax: &[(&str, &[u8])],
        tweak: impl FnOnce(&mut Header),
    ) -> Self {
        let mut records: Vec<(&str, &[u8])> = pax.to_vec();
        if path.len() > 99 {
            records.push(("path", path.as_bytes()));
        }
        if link.len() > 99 {
            records.push(("linkpath", link.as_bytes()));
        }
        if !records.is_empty() {
            self.b.append_pax_extensions(records).unwrap();
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        tweak(&mut h);
        let old = h.as_old_mut();
        let name = &path.as_bytes()[..path.len().min(99)];
        old.name[..name.len()].copy_from_slice(name);
        let link = &link.as_bytes()[..link.len().min(99)];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub(crate) fn dir(self, path: &str) -> Self {
        self.put(EntryType::Directory, path, "", 0o755, b"")
    }

    pub(crate) fn file(self, path: &str, data: &[u8]) -> Self {
        self.put(EntryType::Regular, path, "", 0o644, data)
    }

    pub(crate) fn symlink(self, path: &str, target: &str) -> Self {
        self.put(EntryType::Symlink, path, target, 0o777, b"")
    }

    pub(crate) fn hardlink(self, path: &str, target: &str) -> Self {
        self.put(EntryType::Link, path, target, 0o644, b"")
    }

    pub(crate) fn device(self, path: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        self.put_with(kind, path, "", 0o600, b"", &[], |h| {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        })
    }

    /// An entry with PAX records and header fields set by `tweak`.
    pub(crate) fn custom(
        self,
        kind: EntryType,
        path: &str,
        mode: u32,
        data: &[u8],
        pax: &[(&str, &[u8])],
        tweak: impl FnOnce(&mut Header),
    ) -> Self {
        self.put_with(kind, path, "", mode, data, pax, tweak)
    }

    pub(crate) fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A listing of a tree: one line per entry with its kind, mode and content
/// (or target), sorted, for comparing trees.
pub(crate) fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let m = fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let mode = m.mode() & 0o7777;
        if ft.is_dir() {
            out.push(format!("{rel}/ dir {mode:o}"));
            walk(root, &path, out);
        } else if ft.is_symlink() {
            out.push(format!(
                "{rel} -> {}",
                fs::read_link(&path).unwrap().display()
            ));
        } else if ft.is_file() {
            let data = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
            out.push(format!("{rel} file {mode:o} {data:?}"));
        } else if ft.is_char_device() {
            out.push(format!("{rel} char {}", m.rdev()));
        } else {
            out.push(format!("{rel} other {mode:o}"));
        }
    }
}

/// A test that cannot run here (not root, no overlayfs): it fails, unless
/// `STRATA_ALLOW_UNPRIVILEGED=1` lets it skip, visibly: a `SKIPPED` line
/// on stderr and in the file `STRATA_SKIP_LOG` names, which scripts/test
/// counts and lists. Returns only when the test is to skip.
#[track_caller]
pub(crate) fn cannot_run(test: &str, reason: &str) {
    if std::env::var_os("STRATA_ALLOW_UNPRIVILEGED").is_some_and(|v| v == "1") {
        let line = format!("SKIPPED {test}: {reason}");
        eprintln!("{line}");
        if let Some(log) = std::env::var_os("STRATA_SKIP_LOG") {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open STRATA_SKIP_LOG");
            writeln!(f, "{line}").expect("write STRATA_SKIP_LOG");
        }
    } else {
        panic!("{test} cannot run here: {reason} (STRATA_ALLOW_UNPRIVILEGED=1 skips it, visibly)");
    }
}
