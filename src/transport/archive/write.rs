//! Writing image archives: `docker save` archives in docker's current
//! layout, an OCI image layout (`oci-layout`, `index.json`, `blobs/`) plus
//! `manifest.json` and `repositories`, which docker before 25 loads through
//! `manifest.json`; or plain OCI archives (skopeo's `oci-archive:`), the
//! same without docker's two files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufWriter, Read, Write};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageManifest};
use serde::Serialize;

use crate::digest::Digest;
use crate::image::{self, Index, ManifestKind, Platform, RawManifest};
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::layout::{OCI_LAYOUT_FILE, is_ref_name};
use crate::transport::store::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::transport::{Presence, Sink, TransportError};

use super::ArchiveError;

/// Compression of the whole archive on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCompression {
    /// A plain tar, as docker writes.
    None,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl OutputCompression {
    /// Parses `--compress`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "gzip" | "gz" => Some(Self::Gzip),
            "zstd" | "zst" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Guesses from an output file name (`.tar.gz`, `.tgz`, `.tar.zst`).
    pub fn from_file_name(name: &str) -> Self {
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Self::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".tzst") {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// Which kind of archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveLayout {
    /// docker 25's `docker save` layout: an OCI layout plus `manifest.json`
    /// and `repositories`.
    #[default]
    Docker,
    /// A tar of a plain OCI image layout (skopeo's `oci-archive:`).
    Oci,
}

type Out = std::fs::File;

enum Encoder {
    Plain(BufWriter<Out>),
    Gzip(flate2::write::GzEncoder<BufWriter<Out>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<Out>>),
}

impl Encoder {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w,
            Encoder::Zstd(w) => w,
        }
    }

    fn finish(self) -> io::Result<()> {
        let mut inner = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
        };
        inner.flush()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestItem {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

struct State {
    out: Option<Encoder>,
    written: HashSet<Digest>,
    dirs_written: bool,
    items: Vec<ManifestItem>,
    index: Vec<Descriptor>,
    /// Image manifests written, so an index can describe its child.
    image_manifests: HashMap<Digest, Vec<u8>>,
    /// Unnamed images, listed at commit unless an index claimed them.
    pending_unnamed: Vec<(Descriptor, ManifestItem)>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// Writes an archive to a stream, in one pass. Blobs are written as they
/// arrive (one at a time: the sink's parallelism is 1), each once however
/// many images share it; the documents that list them are written by
/// [`Sink::commit`], which ends the archive.
pub struct ArchiveSink {
    name: String,
    layout: ArchiveLayout,
    reference: Option<String>,
    state: Mutex<State>,
}

fn member(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_ref(), d.digest())
}

impl ArchiveSink {
    /// An archive written to `out`, named `name` in messages. Fails only
    /// when the zstd encoder cannot be made (its context allocated).
    pub fn new(
        name: &str,
        out: Out,
        compression: OutputCompression,
    ) -> Result<ArchiveSink, ArchiveError> {
        let buffered = BufWriter::with_capacity(1 << 20, out);
        let encoder = match compression {
            OutputCompression::None => Encoder::Plain(buffered),
            OutputCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                buffered,
                flate2::Compression::fast(),
            )),
            OutputCompression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(buffered, 3).map_err(|source| {
                    ArchiveError::Io {
                        archive: name.into(),
                        source,
                    }
                })?,
            ),
        };
        Ok(ArchiveSink {
            name: name.into(),
            layout: ArchiveLayout::Docker,
            reference: None,
            state: Mutex::new(State {
                out: Some(encoder),
                written: HashSet::new(),
                dirs_written: false,
                items: Vec::new(),
                index: Vec::new(),
                image_manifests: HashMap::new(),
                pending_unnamed: Vec::new(),
                repositories: BTreeMap::new(),
            }),
        })
    }

    /// Writes `layout` instead of docker's.
    pub fn with_layout(mut self, layout: ArchiveLayout) -> ArchiveSink {
        self.layout = layout;
        self
    }

    /// Names every top-level image `reference` in `index.json`, verbatim
    /// (skopeo's `oci-archive:FILE:REF`), instead of the tags of the names
    /// it is given; a later image with it takes it from an earlier one.
    /// `manifest.json` still lists the names.
    pub fn with_reference(mut self, reference: &str) -> Result<ArchiveSink, ArchiveError> {
        if !is_ref_name(reference) {
            return Err(ArchiveError::InvalidRefName {
                archive: self.name.clone(),
                name: reference.to_string(),
            });
        }
        self.reference = Some(reference.to_string());
        Ok(self)
    }

    fn io(&self, e: io::Error) -> TransportError {
        ArchiveError::Io {
            archive: self.name.clone(),
            source: e,
        }
        .into()
    }

    /// The output, after the `blobs/` directory entries that precede the
    /// first blob.
    fn blob_dirs<'s>(
        &self,
        state: &'s mut State,
        d: &Descriptor,
    ) -> Result<&'s mut dyn Write, TransportError> {
        let first = !state.dirs_written;
        state.dirs_written = true;
        let out = state
            .out
            .as_mut()
            .ok_or_else(|| self.io(io::Error::other("archive already finished")))?
            .writer();
        if first {
            write_member(out, "blobs/", 0, true, &mut io::empty()).map_err(|e| self.io(e))?;
            let dir = format!("blobs/{}/", d.digest().algorithm().as_ref());
            write_member(out, &dir, 0, true, &mut io::empty()).map_err(|e| self.io(e))?;
        }
        Ok(out)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tar header for one member, owned by root, dated 0 for reproducible
/// archives.
fn header(path: &str, size: u64, dir: bool) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    Ok(h)
}

/// The zeros that round a member's data up to a 512-byte block.
fn padding(size: u64) -> &'static [u8] {
    &[0u8; 512][..((512 - size % 512) % 512) as usize]
}

/// Writes one tar member: header, data (exactly `size` bytes), padding.
fn write_member(
    out: &mut dyn Write,
    path: &str,
    size: u64,
    dir: bool,
    data: &mut dyn Read,
) -> io::Result<()> {
    out.write_all(header(path, size, dir)?.as_bytes())?;
    let mut buf = vec![
        0u8;
        if size > 1 << 20 {
            1 << 20
        } else {
            size as usize
        }
    ];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = data.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path} ended {left} bytes early"),
            ));
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    // A source with more bytes than announced would corrupt the archive.
    if data.read(&mut [0u8; 1])? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is longer than its {size} bytes"),
        ));
    }
    out.write_all(padding(size))
}

impl Sink for ArchiveSink {
    fn place(&self) -> String {
        format!("archive {}", self.name)
    }

    fn parallelism(&self) -> usize {
        1
    }

    fn verifies_digests(&self) -> bool {
        false
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        let there = self.state().written.contains(d.digest());
        Ok(Presence::from_bool(there))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        _kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let mut state = self.state();
        if state.written.contains(d.digest()) {
            return Ok(());
        }
        let out = self.blob_dirs(&mut state, d)?;
        let mut counted = CountingReader {
            inner: content,
            done: 0,
            progress,
        };
        write_member(out, &member(d.digest()), d.size(), false, &mut counted)
            .map_err(|e| self.io(e))?;
        state.dirs_written = true;
        state.written.insert(d.digest().clone());
        Ok(())
    }

    fn put_blob_file(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        file: std::fs::File,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let mut state = self.state();
        if state.written.contains(d.digest()) {
            return Ok(());
        }
        if !matches!(state.out, Some(Encoder::Plain(_))) {
            drop(state);
            let mut content = file;
            return self.put_blob(d, kind, &mut content, progress);
        }
        let out = self.blob_dirs(&mut state, d)?;
        out.write_all(
            header(&member(d.digest()), d.size(), false)
                .map_err(|e| self.io(e))?
                .as_bytes(),
        )
        .map_err(|e| self.io(e))?;
        let Some(Encoder::Plain(w)) = state.out.as_mut() else {
            unreachable!("checked above")
        };
        // File to file: std's io::copy hands this to copy_file_range (or
        // splice for a pipe), so the bytes never pass through user space.
        w.flush().map_err(|e| self.io(e))?;
        let copied =
            io::copy(&mut io::Read::take(&file, d.size()), w.get_mut()).map_err(|e| self.io(e))?;
        if copied != d.size() {
            return Err(self.io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended after {copied} of its {} bytes",
                    d.digest(),
                    d.size()
                ),
            )));
        }
        w.write_all(padding(d.size())).map_err(|e| self.io(e))?;
        progress(d.size());
        state.written.insert(d.digest().clone());
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        let d = m.descriptor();
        self.put_blob(&d, &BlobKind::Manifest, &mut &m.bytes[..], &|_| {})?;
        let bad = |reason: String| ArchiveError::BadDocument {
            archive: self.name.clone(),
            member: member(&m.digest),
            reason,
        };
        let mut state = self.state();
        // The image manifest.json describes: the manifest itself, or an
        // index's child for this host, so that older docker loads something.
        let described = match m.kind().map_err(|e| bad(e.to_string()))? {
            ManifestKind::Image => {
                state
                    .image_manifests
                    .insert(m.digest.clone(), m.bytes.clone());
                Some(m.bytes.clone())
            }
            ManifestKind::Index => {
                let index = Index::new(m.clone()).map_err(|e| bad(e.to_string()))?;
                let child = index
                    .select(&Platform::host())
                    .or_else(|| index.children().first());
                child.and_then(|c| state.image_manifests.get(c.digest()).cloned())
            }
        };
        let tags: Vec<&Reference> = names.iter().filter(|n| n.tag().is_some()).collect();
        if let Some(r) = &self.reference {
            if !names.is_empty() {
                name_entry(&mut state.index, &d, r);
            }
        } else if tags.is_empty() && !names.is_empty() {
            state.index.push(d.clone());
        }
        for name in tags.iter().filter(|_| self.reference.is_none()) {
            let mut ann = HashMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_string(), name.to_string());
            ann.insert(
                ANNOTATION_REF_NAME.to_string(),
                name.tag().unwrap_or("latest").to_string(),
            );
            let mut named = d.clone();
            named.set_annotations(Some(ann));
            state.index.push(named);
        }
        if let ManifestKind::Index = m.kind().map_err(|e| bad(e.to_string()))? {
            let index = Index::new(m.clone()).map_err(|e| bad(e.to_string()))?;
            for c in index.children() {
                state
                    .pending_unnamed
                    .retain(|(p, _)| p.digest() != c.digest());
            }
        }
        let Some(bytes) = described else {
            return Ok(());
        };
        let parsed: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if let Some(top) = parsed.layers().last() {
            for name in &tags {
                state
                    .repositories
                    .entry(name.familiar_name())
                    .or_default()
                    .insert(
                        name.tag().unwrap_or("latest").to_string(),
                        top.digest().digest().to_string(),
                    );
            }
        }
        let repo_tags: Vec<String> = tags.iter().map(|n| n.familiar_string()).collect();
        let item = ManifestItem {
            config: member(parsed.config().digest()),
            repo_tags: if repo_tags.is_empty() {
                None
            } else {
                Some(repo_tags)
            },
            layers: parsed.layers().iter().map(|l| member(l.digest())).collect(),
        };
        if names.is_empty() {
            // Unnamed: an image saved by ID, or an index's child; which one
            // is known once every manifest is in, at commit.
            state.pending_unnamed.push((d, item));
        } else {
            state.items.push(item);
        }
        Ok(())
    }

    fn commit(&self) -> Result<(), TransportError> {
        let mut state = self.state();
        for (d, item) in std::mem::take(&mut state.pending_unnamed) {
            match &self.reference {
                Some(r) => name_entry(&mut state.index, &d, r),
                None => state.index.push(d),
            }
            state.items.push(item);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": image::OCI_INDEX,
            "manifests": state.index,
        });
        let mut docs: Vec<(&str, Vec<u8>)> = vec![
            ("index.json", serde_json::to_vec(&index).unwrap_or_default()),
            ("manifest.json", json_line(&state.items)),
            ("oci-layout", OCI_LAYOUT_FILE.to_vec()),
            ("repositories", json_line(&state.repositories)),
        ];
        if self.layout == ArchiveLayout::Oci {
            docs.retain(|(path, _)| *path == "index.json" || *path == "oci-layout");
        }
        let empty_repositories = state.repositories.is_empty();
        let mut encoder = state
            .out
            .take()
            .ok_or_else(|| self.io(io::Error::other("archive already finished")))?;
        let out = encoder.writer();
        for (path, bytes) in docs {
            if path == "repositories" && empty_repositories {
                continue;
            }
            write_member(out, path, bytes.len() as u64, false, &mut &bytes[..])
                .map_err(|e| self.io(e))?;
        }
        out.write_all(&[0u8; 1024]).map_err(|e| self.io(e))?;
        encoder.finish().map_err(|e| self.io(e))
    }
}

/// Lists `d` named `reference`, taking the name from any earlier entry.
fn name_entry(index: &mut Vec<Descriptor>, d: &Descriptor, reference: &str) {
    index.retain(|e| {
        e.annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .map(String::as_str)
            != Some(reference)
    });
    let mut named = d.clone();
    named.set_annotations(Some(HashMap::from([(
        ANNOTATION_REF_NAME.to_string(),
        reference.to_string(),
    )])));
    index.push(named);
}

fn json_line<T: Serialize>(v: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    done: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}
