//! Images as the commands see them: entries of `index.json` grouped by the
//! manifest they name, and docker's rules for finding one by name or ID.

use oci_spec::image::Descriptor;

use crate::copy::Copyable;
use crate::digest::Digest;
use crate::image::{Image, Index, ManifestKind, Platform, RawManifest, sniff_media_type};
use crate::reference::{self, Reference, ReferenceError};

use super::index::{entry_name, named};
use super::{Store, StoreError};

/// What an entry points at.
#[derive(Debug, Clone)]
pub enum Target {
    /// A single-platform image.
    Image,
    /// A multi-platform index; `image` is its child for this host.
    Index(Box<Index>),
}

/// One image in the store with every name that points at it.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The entry's descriptor, without name annotations.
    pub descriptor: Descriptor,
    /// The names pointing at it, in index order (tags and digests).
    pub names: Vec<Reference>,
    /// The image, or for an index the child chosen for this host.
    pub image: Image,
    /// Whether the entry is an image or an index.
    pub target: Target,
}

impl StoredImage {
    /// The image ID (config digest), as docker shows it.
    pub fn id(&self) -> &Digest {
        self.image.id()
    }
    /// Names that carry a tag.
    pub fn tags(&self) -> impl Iterator<Item = &Reference> {
        self.names.iter().filter(|n| n.tag().is_some())
    }
}

/// Why a lookup found nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No image answers to the name.
    #[error("No such image: {0}")]
    NotFound(String),
    /// The text is not a valid reference.
    #[error(transparent)]
    Invalid(#[from] ReferenceError),
    /// A short ID matches several images.
    #[error("{0}: the short ID matches several images; give more of it")]
    Ambiguous(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Reads the image a descriptor points at.
    pub fn load_target(&self, d: &Descriptor) -> Result<(Image, Target), StoreError> {
        let manifest = self.read_manifest(d)?;
        match manifest.kind()? {
            ManifestKind::Image => Ok((self.load_image(manifest)?, Target::Image)),
            ManifestKind::Index => {
                let index = Index::new(manifest)?;
                let host = Platform::host();
                let chosen = index
                    .select(&host)
                    .filter(|c| self.has_blob(c.digest()))
                    .or_else(|| index.children().iter().find(|c| self.has_blob(c.digest())))
                    .cloned()
                    .ok_or_else(|| {
                        StoreError::MissingBlob(index.children().first().map_or_else(
                            || index.manifest().digest.clone(),
                            |c| c.digest().clone(),
                        ))
                    })?;
                let child = self.read_manifest(&chosen)?;
                Ok((self.load_image(child)?, Target::Index(Box::new(index))))
            }
        }
    }

    /// Reads a manifest or index blob with its media type.
    pub fn read_manifest(&self, d: &Descriptor) -> Result<RawManifest, StoreError> {
        let bytes = self.read_blob(d.digest())?;
        let media_type = sniff_media_type(&bytes, Some(d.media_type().as_ref()));
        Ok(RawManifest {
            bytes,
            digest: d.digest().clone(),
            media_type,
        })
    }

    /// Opens a single-platform image from its manifest.
    pub fn load_image(&self, manifest: RawManifest) -> Result<Image, StoreError> {
        let parsed: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| StoreError::Corrupt {
                what: "manifest",
                digest: manifest.digest.clone(),
                reason: e.to_string(),
            })?;
        let config = self.read_blob(parsed.config().digest())?;
        Ok(Image::new(manifest, config)?)
    }

    /// What copying `image` out of the store moves: a multi-platform index
    /// whole when every child is here; otherwise the image this host uses
    /// (an index pulled for one platform). The flag says the index was cut
    /// to one image, so callers whose result must keep the index's digest
    /// (push) can refuse.
    pub fn copyable(&self, image: &StoredImage) -> Result<(Copyable, bool), StoreError> {
        if let Target::Index(index) = &image.target {
            let mut children = Vec::new();
            for child in index.children() {
                if !self.has_blob(child.digest()) {
                    return Ok((Copyable::Image(Box::new(image.image.clone())), true));
                }
                children.push(self.load_image(self.read_manifest(child)?)?);
            }
            return Ok((Copyable::Index(index.clone(), children), false));
        }
        Ok((Copyable::Image(Box::new(image.image.clone())), false))
    }

    /// The image ID of the manifest or index with this digest, if stored.
    pub fn image_id_of(&self, manifest: &Digest) -> Option<Digest> {
        let bytes = self.read_blob(manifest).ok()?;
        let media_type = sniff_media_type(&bytes, None);
        let d = Descriptor::new(
            media_type.as_str().into(),
            bytes.len() as u64,
            manifest.clone(),
        );
        self.load_target(&d)
            .ok()
            .map(|(image, _)| image.id().clone())
    }

    /// Every image, grouped by manifest, in index order.
    ///
    /// The index is read without the lock, so an `rmi` may remove an image
    /// and collect its blobs between reading the index and reading those
    /// blobs; a blob missing while the index changed is that, and the list
    /// is read again. A blob missing from an unchanged index is an error.
    pub fn list(&self) -> Result<Vec<StoredImage>, StoreError> {
        let mut entries = self.entries()?;
        let mut attempts = 0;
        loop {
            match self.list_entries(&entries) {
                Err(StoreError::MissingBlob(d)) => {
                    let now = self.entries()?;
                    attempts += 1;
                    if attempts > 8 || now.descriptors() == entries.descriptors() {
                        return Err(StoreError::MissingBlob(d));
                    }
                    entries = now;
                }
                other => return other,
            }
        }
    }

    fn list_entries(
        &self,
        entries: &super::index::Entries,
    ) -> Result<Vec<StoredImage>, StoreError> {
        let mut out: Vec<StoredImage> = Vec::new();
        for d in entries.descriptors() {
            let name = entry_name(d);
            if let Some(existing) = out.iter_mut().find(|s| s.descriptor.digest() == d.digest()) {
                existing.names.extend(name);
                continue;
            }
            let (image, target) = self.load_target(d)?;
            out.push(StoredImage {
                descriptor: named(d, None),
                names: name.into_iter().collect(),
                image,
                target,
            });
        }
        Ok(out)
    }

    /// Finds an image the way docker does: a full image ID; then a name
    /// (`latest` when no tag is given) or `name@digest`; then a unique
    /// prefix of an image ID.
    pub fn lookup(&self, query: &str) -> Result<StoredImage, LookupError> {
        let images = self.list()?;
        lookup_in(&images, query).cloned()
    }
}

/// [`Store::lookup`] over an already listed store.
pub fn lookup_in<'a>(
    images: &'a [StoredImage],
    query: &str,
) -> Result<&'a StoredImage, LookupError> {
    if reference::is_full_id(query) {
        let hex = query.trim_start_matches("sha256:");
        return images
            .iter()
            .find(|i| i.id().digest() == hex)
            .ok_or_else(|| LookupError::NotFound(query.to_string()));
    }
    let parsed = Reference::parse(query)?;
    let wanted = parsed.clone().with_default_tag();
    let by_name = images.iter().find(|i| {
        i.names.contains(&wanted)
            || (wanted.digest() == Some(i.descriptor.digest().as_ref())
                && i.names
                    .iter()
                    .any(|n| n.repository() == wanted.repository()))
    });
    if let Some(found) = by_name {
        return Ok(found);
    }
    if reference::is_id_prefix(query) {
        let hex = query.trim_start_matches("sha256:");
        let mut matches = images.iter().filter(|i| i.id().digest().starts_with(hex));
        if let Some(first) = matches.next() {
            if matches.any(|m| m.id() != first.id()) {
                return Err(LookupError::Ambiguous(query.to_string()));
            }
            return Ok(first);
        }
    }
    Err(LookupError::NotFound(wanted.familiar_string()))
}
