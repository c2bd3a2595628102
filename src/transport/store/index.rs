//! `index.json`: the store's list of names. Read without a lock (it is
//! always replaced whole); changed only under the exclusive lock.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::digest::Digest;
use crate::reference::Reference;

use super::{Store, StoreError, blobs};

/// The annotation containerd and docker use for an image's full name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for a reference name.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The name an index entry carries, if any. `io.containerd.image.name` wins;
/// a bare `org.opencontainers.image.ref.name` such as `latest` (as other
/// tools write) names no repository and is not taken as a name.
pub fn entry_name(d: &Descriptor) -> Option<Reference> {
    let ann = d.annotations().as_ref()?;
    if let Some(name) = ann.get(ANNOTATION_IMAGE_NAME) {
        return Reference::parse(name).ok();
    }
    let name = ann.get(ANNOTATION_REF_NAME)?;
    if name.contains('/') || name.contains(':') || name.contains('@') {
        Reference::parse(name).ok()
    } else {
        None
    }
}

/// A descriptor for `target` carrying `name` (or no name: a dangling entry).
pub fn named(target: &Descriptor, name: Option<&Reference>) -> Descriptor {
    let mut d = target.clone();
    let mut ann: HashMap<String, String> = d.annotations().clone().unwrap_or_default();
    ann.remove(ANNOTATION_IMAGE_NAME);
    ann.remove(ANNOTATION_REF_NAME);
    if let Some(name) = name {
        ann.insert(ANNOTATION_IMAGE_NAME.into(), name.to_string());
        ann.insert(ANNOTATION_REF_NAME.into(), name.to_string());
    }
    d.set_annotations(if ann.is_empty() { None } else { Some(ann) });
    d
}

/// How a name moved when an entry was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameChange {
    /// The name.
    pub name: Reference,
    /// The manifest the name pointed to before, if it pointed elsewhere.
    pub previous: Option<Digest>,
}

/// The entries of `index.json`, in file order.
#[derive(Debug, Clone)]
pub struct Entries {
    index: ImageIndex,
    list: Vec<Descriptor>,
}

impl Entries {
    /// Every descriptor.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.list
    }

    /// The descriptor carrying `name`.
    pub fn find(&self, name: &Reference) -> Option<&Descriptor> {
        self.descriptors()
            .iter()
            .find(|d| entry_name(d).as_ref() == Some(name))
    }

    /// Points `name` at `target`. When the name pointed at another image
    /// that keeps no other entry, that image stays as a dangling entry, as
    /// docker keeps it as `<none>`.
    pub fn set_name(&mut self, name: &Reference, target: &Descriptor) -> NameChange {
        let previous = self.find(name).cloned();
        if let Some(prev) = &previous {
            if prev.digest() == target.digest() {
                return NameChange {
                    name: name.clone(),
                    previous: None,
                };
            }
            self.remove_name(name);
        }
        let list = &mut self.list;
        // A dangling entry for the same manifest is superseded by the name.
        list.retain(|d| !(d.digest() == target.digest() && entry_name(d).is_none()));
        list.push(named(target, Some(name)));
        NameChange {
            name: name.clone(),
            previous: previous.map(|p| p.digest().clone()),
        }
    }

    /// Adds a dangling entry for `target` unless some entry points at it.
    pub fn ensure_present(&mut self, target: &Descriptor) {
        if !self
            .descriptors()
            .iter()
            .any(|d| d.digest() == target.digest())
        {
            self.list.push(named(target, None));
        }
    }

    /// Removes the entry carrying `name`; when it was the manifest's last
    /// entry, a dangling one is left in its place. Returns the manifest digest.
    pub fn remove_name(&mut self, name: &Reference) -> Option<Digest> {
        let list = &mut self.list;
        let pos = list
            .iter()
            .position(|d| entry_name(d).as_ref() == Some(name))?;
        let removed = list.remove(pos);
        if !list.iter().any(|d| d.digest() == removed.digest()) {
            list.push(named(&removed, None));
        }
        Some(removed.digest().clone())
    }

    /// Removes every entry pointing at `digest`, names and dangling alike.
    pub fn remove_manifest(&mut self, digest: &Digest) {
        self.list.retain(|d| d.digest() != digest);
    }
}

impl Store {
    /// Reads `index.json`.
    pub fn entries(&self) -> Result<Entries, StoreError> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, e))?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptIndex {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let list = index.manifests().clone();
        Ok(Entries { index, list })
    }

    /// Changes `index.json` under the exclusive lock. `change` sees the
    /// current entries; when it returns `Ok`, the new index replaces the
    /// old atomically; when it fails, nothing is written.
    pub fn update_entries<R>(
        &self,
        change: impl FnOnce(&mut Entries) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _guard = self.lock()?;
        self.update_entries_locked(change)
    }

    pub(crate) fn update_entries_locked<R>(
        &self,
        change: impl FnOnce(&mut Entries) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut entries = self.entries()?;
        let result = change(&mut entries)?;
        if entries.index.manifests() != &entries.list {
            let list = entries.list.clone();
            entries.index.set_manifests(list);
            let bytes =
                serde_json::to_vec(&entries.index).map_err(|e| StoreError::CorruptIndex {
                    path: self.index_path(),
                    reason: e.to_string(),
                })?;
            blobs::write_atomic(&self.ingest_dir(), &self.index_path(), &bytes)?;
        }
        Ok(result)
    }
}
