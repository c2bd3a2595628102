//! Reading an OCI image layout.

use std::fs::File;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use crate::copy::{Copyable, platform_list};
use crate::image::{Image, Index, ManifestKind, RawManifest, sniff_media_type};
use crate::transport::registry::PlatformChoice;
use crate::transport::{BlobReader, Source, TransportError};

use super::{Candidate, LayoutError, blob_path, choose};

/// An OCI image layout opened for reading. Its `index.json` is read once,
/// at open; blobs are read from `blobs/<alg>/<hex>` when asked for and
/// checked by the copy engine, since another tool may have written them.
#[derive(Debug)]
pub struct LayoutSource {
    dir: PathBuf,
    entries: Vec<Descriptor>,
}

impl LayoutSource {
    /// Opens the layout at `dir`: it must have an `oci-layout` file of
    /// version 1.x and an `index.json`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<LayoutSource, LayoutError> {
        let dir: PathBuf = dir.into();
        check_layout_file(&dir)?;
        let index_path = dir.join("index.json");
        let bytes = std::fs::read(&index_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LayoutError::NotALayout {
                dir: dir.clone(),
                reason: "it has no index.json".into(),
            },
            _ => LayoutError::io("read", &index_path, e),
        })?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadDocument {
                path: index_path,
                reason: e.to_string(),
            })?;
        Ok(LayoutSource {
            dir,
            entries: index.manifests().clone(),
        })
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entries of `index.json`, in file order.
    pub fn entries(&self) -> &[Descriptor] {
        &self.entries
    }

    /// The image `reference` names (see [`LayoutSource::resolve`] for the
    /// rules), as its `index.json` entry.
    pub fn entry(&self, reference: Option<&str>) -> Result<&Descriptor, LayoutError> {
        let candidates: Vec<Candidate<'_>> = self.entries.iter().map(Candidate::of_entry).collect();
        Ok(&self.entries[choose(&self.dir, &candidates, reference)?])
    }

    /// The image to copy. `reference` is matched against each entry's
    /// `org.opencontainers.image.ref.name` as written (`bookworm`), then as
    /// a normalised image reference (strata's store writes full names), then
    /// as a manifest digest; without one, the layout must hold exactly one
    /// image. An entry that is an index gives the image `choice` picks, or
    /// the whole index with every child. Every blob the result needs must
    /// be in the layout.
    pub fn resolve(
        &self,
        reference: Option<&str>,
        choice: &PlatformChoice,
    ) -> Result<Copyable, TransportError> {
        let entry = self.entry(reference)?;
        let top = self.read_manifest(entry)?;
        match top.kind().map_err(|e| self.image_err(e))? {
            ManifestKind::Image => Ok(Copyable::Image(Box::new(self.image(top)?))),
            ManifestKind::Index => {
                let index = Index::new(top).map_err(|e| self.image_err(e))?;
                match choice {
                    PlatformChoice::One(want) => {
                        let child =
                            index
                                .select(want)
                                .ok_or_else(|| TransportError::NoPlatform {
                                    place: self.place(),
                                    wanted: want.to_string(),
                                    available: platform_list(&index),
                                })?;
                        let m = self.read_manifest(child)?;
                        Ok(Copyable::Image(Box::new(self.image(m)?)))
                    }
                    PlatformChoice::All => {
                        let mut children = Vec::new();
                        for child in index.children() {
                            let m = self.read_manifest(child)?;
                            if m.kind().map_err(|e| self.image_err(e))? != ManifestKind::Image {
                                return Err(LayoutError::NestedIndex {
                                    dir: self.dir.clone(),
                                    digest: index.manifest().digest.clone(),
                                }
                                .into());
                            }
                            children.push(self.image(m)?);
                        }
                        Ok(Copyable::Index(Box::new(index), children))
                    }
                }
            }
        }
    }

    fn image_err(&self, e: crate::image::ImageError) -> TransportError {
        TransportError::Image {
            place: self.place(),
            source: Box::new(e),
        }
    }

    /// A manifest or index blob, checked against its digest.
    fn read_manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        let bytes = self.read_small_blob(d)?;
        let media_type = sniff_media_type(&bytes, Some(d.media_type().as_ref()));
        Ok(RawManifest {
            bytes,
            digest: d.digest().clone(),
            media_type,
        })
    }

    fn image(&self, manifest: RawManifest) -> Result<Image, TransportError> {
        let parsed: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| TransportError::Corrupt {
                place: self.place(),
                what: "manifest",
                digest: manifest.digest.clone(),
                reason: e.to_string(),
            })?;
        let config = self.read_small_blob(parsed.config())?;
        let image = Image::new(manifest, config).map_err(|e| self.image_err(e))?;
        // Missing layers are reported now, before anything is copied.
        for layer in image.layers() {
            if !blob_path(&self.dir, layer.descriptor.digest()).is_file() {
                return Err(TransportError::BlobNotFound {
                    place: self.place(),
                    digest: layer.descriptor.digest().clone(),
                });
            }
        }
        Ok(image)
    }
}

/// Checks `oci-layout`: present, JSON, and of a version strata reads.
pub(super) fn check_layout_file(dir: &Path) -> Result<(), LayoutError> {
    #[derive(serde::Deserialize)]
    struct LayoutFile {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let path = dir.join("oci-layout");
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if dir.is_dir() => LayoutError::NotALayout {
            dir: dir.to_path_buf(),
            reason: "it has no oci-layout file".into(),
        },
        std::io::ErrorKind::NotFound => LayoutError::NotALayout {
            dir: dir.to_path_buf(),
            reason: "no such directory".into(),
        },
        std::io::ErrorKind::NotADirectory => LayoutError::NotALayout {
            dir: dir.to_path_buf(),
            reason: "it is not a directory".into(),
        },
        _ => LayoutError::io("read", &path, e),
    })?;
    let layout: LayoutFile =
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadDocument {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if layout.version.split('.').next() != Some("1") {
        return Err(LayoutError::NotALayout {
            dir: dir.to_path_buf(),
            reason: format!(
                "image layout version {:?}, where strata reads 1.x",
                layout.version
            ),
        });
    }
    Ok(())
}

impl Source for LayoutSource {
    fn place(&self) -> String {
        format!("layout {}", self.dir.display())
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, TransportError> {
        let path = blob_path(&self.dir, d.digest());
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(TransportError::BlobNotFound {
                    place: self.place(),
                    digest: d.digest().clone(),
                })
            }
            Err(e) => Err(LayoutError::io("open", &path, e).into()),
        }
    }

    fn blob_file(&self, d: &Descriptor) -> Option<File> {
        let file = File::open(blob_path(&self.dir, d.digest())).ok()?;
        let len = file.metadata().ok()?.len();
        (len == d.size()).then_some(file)
    }
}
