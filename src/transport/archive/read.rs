//! Reading image archives: docker's current and legacy `docker save`
//! layouts and OCI archives, plain or compressed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use serde::Deserialize;

use crate::compression::{self, Compression};
use crate::copy::Copyable;
use crate::digest::{self, Digest, Hasher};
use crate::image::{self, Image, Index, ManifestKind, RawManifest, sniff_media_type};
use crate::reference::Reference;
use crate::transport::layout::{Candidate, LayoutError, choose};
use crate::transport::registry::PlatformChoice;
use crate::transport::store::{ANNOTATION_REF_NAME, entry_name};
use crate::transport::{BlobReader, Source, TransportError};

use super::ArchiveError;
use super::members::{Members, normalize};

/// Where an archive comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file.
    Path(PathBuf),
    /// Standard input (a pipe, or a redirected file).
    Stdin,
}

/// One image an archive offers, with the names it carries.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The image or index.
    pub what: Copyable,
    /// Its names (`RepoTags` of `manifest.json`, or index annotations).
    pub names: Vec<Reference>,
    /// The `org.opencontainers.image.ref.name` annotations of its
    /// `index.json` entries, as written (a bare tag such as `v1` from skopeo).
    pub ref_names: Vec<String>,
}

/// An archive opened for reading: its member table and the images it holds.
/// A compressed or unseekable input is first decompressed into a spool
/// file (removed on drop), so blobs can be read at random.
pub struct ArchiveSource {
    name: String,
    members: Members,
    /// Where each blob's bytes are, by digest.
    blobs: HashMap<Digest, String>,
    images: Vec<ArchiveImage>,
    compression: Compression,
    spool: Option<PathBuf>,
}

impl Drop for ArchiveSource {
    fn drop(&mut self) {
        if let Some(p) = &self.spool {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

impl ArchiveSource {
    /// Opens an archive. `spool_dir` takes the decompressed copy of a
    /// compressed or piped input.
    pub fn open(input: &Input, spool_dir: &Path) -> Result<ArchiveSource, ArchiveError> {
        let (name, file) = match input {
            Input::Path(p) => {
                let name = p.display().to_string();
                let f = File::open(p).map_err(|e| ArchiveError::Open {
                    archive: name.clone(),
                    source: e,
                })?;
                (name, f)
            }
            Input::Stdin => {
                let name = "standard input".to_string();
                let fd =
                    io::stdin()
                        .as_fd()
                        .try_clone_to_owned()
                        .map_err(|e| ArchiveError::Io {
                            archive: name.clone(),
                            source: e,
                        })?;
                (name, File::from(fd))
            }
        };
        let io_err = |e| ArchiveError::Io {
            archive: name.clone(),
            source: e,
        };
        // A redirected file not at its start is read as a stream, since
        // member offsets count from the start of the tar.
        let seekable = file.metadata().map(|m| m.is_file()).unwrap_or(false)
            && (&file).stream_position().is_ok_and(|p| p == 0);
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let compression = Compression::detect(reader_head(&mut reader).map_err(io_err)?);
        let (file, spool) = if compression == Compression::None && seekable {
            let mut file = reader.into_inner();
            file.seek(io::SeekFrom::Start(0)).map_err(io_err)?;
            (file, None)
        } else {
            let spool = crate::transport::store::temp_path(spool_dir, "spool");
            let file = spool_into(&name, reader, &spool).inspect_err(|_| {
                let _ = std::fs::remove_file(&spool);
            })?;
            (file, Some(spool))
        };
        let mut source = ArchiveSource {
            name: name.clone(),
            members: Members::index(&name, file).inspect_err(|_| {
                if let Some(s) = &spool {
                    let _ = std::fs::remove_file(s);
                }
            })?,
            blobs: HashMap::new(),
            images: Vec::new(),
            compression,
            spool,
        };
        source.read_images()?;
        Ok(source)
    }

    /// The images the archive holds, in its order.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// The image `reference` names, for one platform or all: matched
    /// against `org.opencontainers.image.ref.name` as written (`v1`), then
    /// as a normalised reference (`debian:bookworm` finds
    /// `docker.io/library/debian:bookworm`, from `manifest.json` or the
    /// index), then as a manifest digest; without a reference, the archive
    /// must hold exactly one image. An index gives the child `choice` picks,
    /// or stays whole with every child.
    pub fn resolve(
        &self,
        reference: Option<&str>,
        choice: &PlatformChoice,
    ) -> Result<Copyable, TransportError> {
        let candidates: Vec<Candidate<'_>> = self
            .images
            .iter()
            .map(|i| Candidate {
                ref_names: i.ref_names.clone(),
                names: i.names.clone(),
                digest: i.what.digest(),
            })
            .collect();
        let archive = self.name.clone();
        let at = choose(Path::new(&self.name), &candidates, reference).map_err(|e| match e {
            LayoutError::NotFound {
                reference,
                available,
                ..
            } => ArchiveError::NoImage {
                archive,
                reference,
                available,
            },
            LayoutError::Ambiguous { count, names, .. } => ArchiveError::Ambiguous {
                archive,
                count,
                names,
            },
            other => ArchiveError::NotAnArchive {
                archive,
                reason: other.to_string(),
            },
        })?;
        self.images[at].what.clone().choose(choice, &self.place())
    }

    /// How the archive itself was compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    fn bad(&self, member: &str, reason: impl ToString) -> ArchiveError {
        ArchiveError::BadDocument {
            archive: self.name.clone(),
            member: member.into(),
            reason: reason.to_string(),
        }
    }

    fn missing(&self, what: &str, member: &str) -> ArchiveError {
        ArchiveError::Missing {
            archive: self.name.clone(),
            what: what.into(),
            member: member.into(),
        }
    }

    /// The images, from `index.json` first (it keeps indexes whole and
    /// manifests byte for byte), then from `manifest.json` for any image the
    /// index does not hold (legacy archives, images saved by ID by docker).
    fn read_images(&mut self) -> Result<(), ArchiveError> {
        let has_index = self.members.contains("index.json");
        let manifest_json = self.members.read_small("manifest.json")?;
        if !has_index && manifest_json.is_none() {
            let reason = if self.members.contains("repositories") {
                "it has no manifest.json: archives from docker before 1.10 are not supported"
            } else {
                "a tar file with neither manifest.json nor index.json"
            };
            return Err(ArchiveError::NotAnArchive {
                archive: self.name.clone(),
                reason: reason.into(),
            });
        }
        let index = if has_index {
            Some(self.read_oci_index()?)
        } else {
            None
        };
        if let Some(index) = &index {
            for d in index.manifests() {
                let name = entry_name(d);
                let ref_name = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME))
                    .cloned();
                if let Some(known) = self
                    .images
                    .iter_mut()
                    .find(|i| i.what.digest() == d.digest())
                {
                    known.names.extend(name);
                    known.ref_names.extend(ref_name);
                    continue;
                }
                let what = self.oci_copyable(d, "index.json")?;
                self.images.push(ArchiveImage {
                    what,
                    names: name.into_iter().collect(),
                    ref_names: ref_name.into_iter().collect(),
                });
            }
        }
        if let Some(bytes) = manifest_json {
            let items: Vec<ManifestItem> =
                serde_json::from_slice(&bytes).map_err(|e| self.bad("manifest.json", e))?;
            let originals = self.oci_manifests_by_config(index.as_ref())?;
            for item in items {
                let image = self.docker_image(&item, &originals)?;
                let mut names = Vec::new();
                for tag in item.repo_tags.iter().flatten() {
                    let name = Reference::parse(tag).map_err(|e| self.bad("manifest.json", e))?;
                    names.push(name.with_default_tag());
                }
                let known = self
                    .images
                    .iter_mut()
                    .find(|i| i.what.images().iter().any(|im| im.id() == image.id()));
                match known {
                    Some(known) => {
                        for n in names {
                            if !known.names.contains(&n) {
                                known.names.push(n);
                            }
                        }
                    }
                    None => self.images.push(ArchiveImage {
                        what: Copyable::Image(Box::new(image)),
                        names,
                        ref_names: Vec::new(),
                    }),
                }
            }
        }
        if self.images.is_empty() {
            return Err(ArchiveError::NotAnArchive {
                archive: self.name.clone(),
                reason: "it holds no images".into(),
            });
        }
        Ok(())
    }

    fn read_oci_index(&self) -> Result<ImageIndex, ArchiveError> {
        let bytes = self.members.read_small("index.json")?.unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|e| self.bad("index.json", e))
    }

    fn blob_member(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm().as_ref(), d.digest())
    }

    /// Reads a blob stored the OCI way, checking its digest.
    fn read_oci_blob(&self, d: &Digest, named_by: &str) -> Result<Vec<u8>, ArchiveError> {
        let member = Self::blob_member(d);
        let bytes = self
            .members
            .read_small(&member)?
            .ok_or_else(|| self.missing(named_by, &member))?;
        if &digest::sha256_of(&bytes) != d {
            return Err(self.bad(&member, format!("content does not match its digest {d}")));
        }
        Ok(bytes)
    }

    /// In docker's current layout, the OCI manifests by config digest, so an
    /// image keeps its original manifest (and digest).
    fn oci_manifests_by_config(
        &self,
        index: Option<&ImageIndex>,
    ) -> Result<HashMap<Digest, RawManifest>, ArchiveError> {
        let mut out = HashMap::new();
        let Some(index) = index else { return Ok(out) };
        for d in index.manifests() {
            if image::manifest_kind(d.media_type().as_ref()) != Some(ManifestKind::Image) {
                continue;
            }
            let Ok(bytes) = self.read_oci_blob(d.digest(), "index.json") else {
                continue;
            };
            let Ok(parsed) = serde_json::from_slice::<oci_spec::image::ImageManifest>(&bytes)
            else {
                continue;
            };
            let media_type = sniff_media_type(&bytes, Some(d.media_type().as_ref()));
            out.insert(
                parsed.config().digest().clone(),
                RawManifest {
                    bytes,
                    digest: d.digest().clone(),
                    media_type,
                },
            );
        }
        Ok(out)
    }

    /// One `manifest.json` item as an image: its original OCI manifest when
    /// the archive has one, else a manifest made from the layer files.
    fn docker_image(
        &mut self,
        item: &ManifestItem,
        originals: &HashMap<Digest, RawManifest>,
    ) -> Result<Image, ArchiveError> {
        let config = self
            .members
            .read_small(&item.config)?
            .ok_or_else(|| self.missing("manifest.json", &item.config))?;
        let config_digest = digest::sha256_of(&config);
        if let Some(original) = originals.get(&config_digest) {
            let image = Image::new(original.clone(), config.clone())
                .map_err(|e| self.bad(&item.config, e))?;
            if image.layers().len() == item.layers.len() {
                for (layer, path) in image.layers().iter().zip(&item.layers) {
                    let path = normalize(path).unwrap_or_default();
                    if !self.members.contains(&path) {
                        return Err(self.missing("manifest.json", &path));
                    }
                    self.blobs.insert(layer.descriptor.digest().clone(), path);
                }
                self.blobs
                    .insert(config_digest, normalize(&item.config).unwrap_or_default());
                return Ok(image);
            }
        }
        let parsed = crate::image::parse_config(&config).map_err(|e| self.bad(&item.config, e))?;
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() != item.layers.len() {
            return Err(self.bad(
                "manifest.json",
                format!(
                    "{} lists {} layers but its config has {} diff IDs",
                    item.config,
                    item.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in item.layers.iter().zip(diff_ids) {
            let path = normalize(path).ok_or_else(|| self.missing("manifest.json", path))?;
            let size = self
                .members
                .size(&path)
                .ok_or_else(|| self.missing("manifest.json", &path))?;
            let mut head = [0u8; 8];
            let mut r = self
                .members
                .open(&path)
                .ok_or_else(|| self.missing("manifest.json", &path))?;
            let got = read_up_to(&mut r, &mut head).map_err(|e| ArchiveError::Io {
                archive: self.name.clone(),
                source: e,
            })?;
            let (media_type, digest) = match Compression::detect(&head[..got]) {
                Compression::None => (
                    image::OCI_LAYER,
                    digest::parse(diff_id).map_err(|e| self.bad(&item.config, e))?,
                ),
                c @ (Compression::Gzip | Compression::Zstd) => {
                    let media_type = if c == Compression::Gzip {
                        image::OCI_LAYER_GZIP
                    } else {
                        image::OCI_LAYER_ZSTD
                    };
                    (media_type, self.hash_member(&path)?)
                }
                c => {
                    return Err(ArchiveError::Unsupported {
                        archive: self.name.clone(),
                        reason: format!(
                            "layer {path} is {}-compressed, which an OCI image cannot carry",
                            c.name()
                        ),
                    });
                }
            };
            self.blobs.insert(digest.clone(), path);
            layers.push(Descriptor::new(MediaType::from(media_type), size, digest));
        }
        self.blobs.insert(
            config_digest.clone(),
            normalize(&item.config).unwrap_or_default(),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": image::OCI_MANIFEST,
            "config": Descriptor::new(MediaType::from(image::OCI_CONFIG), config.len() as u64, config_digest),
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| self.bad("manifest.json", e))?;
        Image::new(RawManifest::new(bytes, image::OCI_MANIFEST.into()), config)
            .map_err(|e| self.bad(&item.config, e))
    }

    fn hash_member(&self, path: &str) -> Result<Digest, ArchiveError> {
        let mut r = self
            .members
            .open(path)
            .ok_or_else(|| self.missing("manifest.json", path))?;
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(|e| ArchiveError::Io {
                archive: self.name.clone(),
                source: e,
            })?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n]);
        }
    }

    /// An OCI index entry as an image, or an index with all its children.
    fn oci_copyable(&mut self, d: &Descriptor, named_by: &str) -> Result<Copyable, ArchiveError> {
        let bytes = self.read_oci_blob(d.digest(), named_by)?;
        let media_type = sniff_media_type(&bytes, Some(d.media_type().as_ref()));
        let manifest = RawManifest {
            bytes,
            digest: d.digest().clone(),
            media_type,
        };
        let what = format!("manifest {}", d.digest());
        match manifest
            .kind()
            .map_err(|e| self.bad(&Self::blob_member(d.digest()), e))?
        {
            ManifestKind::Image => Ok(Copyable::Image(Box::new(self.oci_image(manifest)?))),
            ManifestKind::Index => {
                let index = Index::new(manifest)
                    .map_err(|e| self.bad(&Self::blob_member(d.digest()), e))?;
                let mut children = Vec::new();
                for child in index.children().to_vec() {
                    match self.oci_copyable(&child, &what)? {
                        Copyable::Image(i) => children.push(*i),
                        Copyable::Index(..) => {
                            return Err(ArchiveError::Unsupported {
                                archive: self.name.clone(),
                                reason: format!("index {} nests another index", d.digest()),
                            });
                        }
                    }
                }
                Ok(Copyable::Index(Box::new(index), children))
            }
        }
    }

    fn oci_image(&mut self, manifest: RawManifest) -> Result<Image, ArchiveError> {
        let what = format!("manifest {}", manifest.digest);
        let parsed: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| self.bad(&Self::blob_member(&manifest.digest), e))?;
        let config = self.read_oci_blob(parsed.config().digest(), &what)?;
        let image = Image::new(manifest, config).map_err(|e| self.bad(&what, e))?;
        for layer in image.layers() {
            let member = Self::blob_member(layer.descriptor.digest());
            if !self.members.contains(&member) {
                return Err(self.missing(&what, &member));
            }
        }
        Ok(image)
    }
}

impl Source for ArchiveSource {
    fn place(&self) -> String {
        format!("archive {}", self.name)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, TransportError> {
        let member = self
            .blobs
            .get(d.digest())
            .cloned()
            .unwrap_or_else(|| Self::blob_member(d.digest()));
        match self.members.open(&member) {
            Some(r) => Ok(Box::new(r)),
            None => Err(TransportError::BlobNotFound {
                place: self.place(),
                digest: d.digest().clone(),
            }),
        }
    }
}

/// The first bytes of a buffered stream, without consuming them.
fn reader_head<R: Read>(r: &mut BufReader<R>) -> io::Result<&[u8]> {
    use io::BufRead;
    r.fill_buf()
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Decompresses (or copies) a stream into a spool file and reopens it.
fn spool_into<R: Read + Send>(
    name: &str,
    reader: BufReader<R>,
    spool: &Path,
) -> Result<File, ArchiveError> {
    let io_err = |e| ArchiveError::Io {
        archive: name.into(),
        source: e,
    };
    let (c, mut decoded) = compression::auto_decoder(reader).map_err(io_err)?;
    let mut out = File::create(spool).map_err(io_err)?;
    io::copy(&mut decoded, &mut out).map_err(|e| {
        if c == Compression::None {
            io_err(e)
        } else {
            ArchiveError::Corrupt {
                archive: name.into(),
                reason: format!("{} stream: {e}", c.name()),
            }
        }
    })?;
    drop(out);
    File::open(spool).map_err(io_err)
}
