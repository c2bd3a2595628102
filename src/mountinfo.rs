//! This process's mount table (`/proc/self/mountinfo`), read where the
//! store must know what is mounted: `system check` (is a recorded mount
//! real?) and the sweep of killed mounts (what is still mounted from their
//! state?).

use std::path::{Path, PathBuf};

/// One mounted file system: where, and its file-system-specific options
/// (for an overlay, its lower, upper and work directories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its super options, unescaped.
    pub options: String,
}

/// The mount table now; empty when it cannot be read.
pub(crate) fn read() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The mounts of a mountinfo text; lines of another shape are skipped.
pub(crate) fn parse(table: &str) -> Vec<Mount> {
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            Some(Mount {
                point: PathBuf::from(unescape(left.split(' ').nth(4)?)),
                options: right.split(' ').nth(2).map(unescape).unwrap_or_default(),
            })
        })
        .collect()
}

/// Mount points inside `dir` or whose options name a path inside it.
pub(crate) fn using(mounts: &[Mount], dir: &Path) -> Vec<PathBuf> {
    let inside = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    mounts
        .iter()
        .filter(|m| m.point.starts_with(dir) || m.options.contains(&inside))
        .map(|m| m.point.clone())
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mountinfo fields
/// as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_found_by_their_point_or_their_options() {
        let table = "\
36 35 98:0 / /mnt rw - ext4 /dev/root rw
40 36 0:50 / /s/.strata/mounts/1-a/merged ro - overlay overlay ro,lowerdir=/s/.strata/mounts/1-a/l/0:/s/.strata/mounts/1-a/l/1
41 36 0:51 / /elsewhere\\040dir ro - overlay overlay ro,lowerdir=/s/.strata/mounts/1-a/l/0
42 36 0:52 / /other ro - overlay overlay ro,lowerdir=/s/.strata/mounts/1-ab/l/0
not a mount line
";
        let mounts = parse(table);
        assert_eq!(mounts.len(), 4);
        assert_eq!(
            using(&mounts, Path::new("/s/.strata/mounts/1-a")),
            [
                PathBuf::from("/s/.strata/mounts/1-a/merged"),
                PathBuf::from("/elsewhere dir")
            ]
        );
    }

    #[test]
    fn escapes_are_undone_and_nothing_else() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999"), "a\\999");
        assert_eq!(unescape("/a\\377"), "/a\u{fffd}");
    }
}
