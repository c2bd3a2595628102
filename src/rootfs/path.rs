//! Entry names as the archive writes them, turned into paths relative to
//! the destination, and the names with a meaning of their own (whiteouts).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::Refusal;

/// The prefix of a whiteout: `.wh.NAME` deletes `NAME` from lower layers.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The prefix of AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`, …).
pub(crate) const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque whiteout: hides what lower layers put in its directory.
pub(crate) const OPAQUE: &[u8] = b".wh..wh..opq";

/// Turns an archive name into a path relative to the destination.
///
/// Empty and `.` components are dropped, so `./etc//passwd` is
/// `etc/passwd` and a leading `/` is dropped as docker, containerd and
/// go-containerregistry drop it (`/etc/passwd` lands at `DEST/etc/passwd`).
/// A `..` component is refused wherever it is, even when it would stay
/// inside (`a/../b`): no builder writes one, so only a hostile or broken
/// archive has it, and refusing is simpler to trust than clamping. An empty
/// result names the destination itself.
pub(crate) fn normalize(raw: &[u8]) -> Result<PathBuf, Refusal> {
    let mut out = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(Refusal::DotDot),
            c if c.contains(&0) => return Err(Refusal::NulByte),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// What an entry's base name says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Special<'a> {
    /// An ordinary name.
    None,
    /// `.wh..wh..opq`.
    Opaque,
    /// `.wh.NAME`: the name it deletes.
    Whiteout(&'a [u8]),
    /// `.wh..wh.*` other than the opaque marker: AUFS bookkeeping, skipped.
    AufsMeta,
}

/// Classifies a base name.
pub(crate) fn special(name: &[u8]) -> Special<'_> {
    if name == OPAQUE {
        Special::Opaque
    } else if name.starts_with(WHITEOUT_META_PREFIX) {
        Special::AufsMeta
    } else if let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX) {
        Special::Whiteout(rest)
    } else {
        Special::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(
            normalize(b"./etc//passwd").unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(normalize(b"/etc/passwd").unwrap(), Path::new("etc/passwd"));
        assert_eq!(normalize(b"etc/").unwrap(), Path::new("etc"));
        assert_eq!(normalize(b"./").unwrap(), Path::new(""));
        assert_eq!(normalize(b"").unwrap(), Path::new(""));
    }

    #[test]
    fn refuses_dot_dot_anywhere() {
        for bad in [
            &b"../x"[..],
            b"a/../b",
            b"a/..",
            b"/../../etc/passwd",
            b"..",
        ] {
            assert_eq!(
                normalize(bad),
                Err(Refusal::DotDot),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(normalize(b"a/b\0c"), Err(Refusal::NulByte));
        // Dots that are part of a name are just names.
        assert_eq!(normalize(b"...").unwrap(), Path::new("..."));
        assert_eq!(normalize(b"a/..b").unwrap(), Path::new("a/..b"));
    }

    #[test]
    fn classifies_whiteouts() {
        assert_eq!(special(b".wh..wh..opq"), Special::Opaque);
        assert_eq!(special(b".wh..wh.plnk"), Special::AufsMeta);
        assert_eq!(special(b".wh.gone"), Special::Whiteout(b"gone"));
        assert_eq!(special(b".wh."), Special::Whiteout(b""));
        assert_eq!(special(b"file.wh.x"), Special::None);
    }
}
