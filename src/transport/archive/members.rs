//! The member table of an uncompressed tar file: where each member's data
//! is, so blobs can be read at random and in parallel without unpacking.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use tar::EntryType;

use super::ArchiveError;

/// One member: a regular file's data range, or a link to another member.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The members of a tar file by normalised path.
#[derive(Debug)]
pub(super) struct Members {
    name: String,
    file: File,
    members: HashMap<String, Member>,
}

/// Normalises a member path: no leading `./` or `/`, `.` and `..` resolved.
/// `None` when `..` would leave the archive.
pub(super) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Members {
    /// Reads every header of `file` (an uncompressed tar), seeking over data.
    pub(super) fn index(name: &str, file: File) -> Result<Members, ArchiveError> {
        let len = file
            .metadata()
            .map_err(|e| ArchiveError::Io {
                archive: name.into(),
                source: e,
            })?
            .len();
        let corrupt = |count: usize, e: io::Error| {
            if count == 0 {
                // The tar reader's message quotes the bytes it choked on.
                ArchiveError::NotAnArchive {
                    archive: name.into(),
                    reason: "it does not start with a tar header".into(),
                }
            } else {
                ArchiveError::Corrupt {
                    archive: name.into(),
                    reason: format!("after {count} members: {}", one_line(&e.to_string())),
                }
            }
        };
        let mut members = HashMap::new();
        let mut count = 0usize;
        {
            let mut archive = tar::Archive::new(&file);
            let entries = archive.entries_with_seek().map_err(|e| corrupt(0, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| corrupt(count, e))?;
                count += 1;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let Some(path) = normalize(&raw) else {
                    continue;
                };
                let member = match entry.header().entry_type() {
                    EntryType::Regular | EntryType::Continuous => {
                        let offset = entry.raw_file_position();
                        let size = entry.size();
                        if offset + size > len {
                            return Err(ArchiveError::Truncated {
                                archive: name.into(),
                                member: path,
                                need: size,
                                have: len.saturating_sub(offset),
                            });
                        }
                        Member::File { offset, size }
                    }
                    EntryType::Symlink => {
                        let target = entry
                            .link_name_bytes()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default();
                        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                        let joined = if target.starts_with('/') {
                            target
                        } else {
                            format!("{parent}/{target}")
                        };
                        match normalize(&joined) {
                            Some(t) => Member::Link(t),
                            None => continue,
                        }
                    }
                    EntryType::Link => {
                        let target = entry
                            .link_name_bytes()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default();
                        match normalize(&target) {
                            Some(t) => Member::Link(t),
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                members.insert(path, member);
            }
        }
        if count == 0 {
            return Err(ArchiveError::NotAnArchive {
                archive: name.into(),
                reason: "it is empty".into(),
            });
        }
        Ok(Members {
            name: name.into(),
            file,
            members,
        })
    }

    /// The data range of a member, following links.
    fn resolve(&self, path: &str) -> Option<(u64, u64)> {
        let mut path = normalize(path)?;
        for _ in 0..16 {
            match self.members.get(&path)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => path = target.clone(),
            }
        }
        None
    }

    /// True when the member exists (as a file, or a link to one).
    pub(super) fn contains(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    /// A member's size.
    pub(super) fn size(&self, path: &str) -> Option<u64> {
        self.resolve(path).map(|(_, s)| s)
    }

    /// Opens a member's data.
    pub(super) fn open(&self, path: &str) -> Option<MemberReader<'_>> {
        let (offset, size) = self.resolve(path)?;
        Some(MemberReader {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    /// Reads a small member (a JSON document) whole.
    pub(super) fn read_small(&self, path: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        const LIMIT: u64 = 64 << 20;
        let Some(size) = self.size(path) else {
            return Ok(None);
        };
        if size > LIMIT {
            return Err(ArchiveError::BadDocument {
                archive: self.name.clone(),
                member: path.into(),
                reason: format!("{size} bytes is too large for a JSON document"),
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        if let Some(mut r) = self.open(path) {
            r.read_to_end(&mut out).map_err(|e| ArchiveError::Io {
                archive: self.name.clone(),
                source: e,
            })?;
        }
        Ok(Some(out))
    }
}

/// Keeps an error message on one line, whatever bytes it quotes.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Reads one member's bytes with positioned reads, so several members can
/// be read at once from one file handle.
pub(super) struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_refuses_escapes() {
        assert_eq!(
            normalize("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalize("abc/../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(
            normalize("/manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(normalize("../etc/passwd"), None);
    }
}
