//! Naming and removing images, with docker's rules.

use crate::digest::Digest;
use crate::reference::{self, Reference, ReferenceError};

use super::images::{LookupError, StoredImage, lookup_in};
use super::index::NameChange;
use super::{Store, StoreError};

/// One line of `rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A name was removed.
    Untagged(Reference),
    /// An image (its ID) or a layer (its chain ID) was deleted.
    Deleted(Digest),
}

/// Why an image could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// Finding the image failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// docker's conflict: the image has names elsewhere and was given by ID.
    #[error("conflict: unable to delete {short} (must be forced) - {reason}")]
    Conflict {
        /// The image's short ID.
        short: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A mounted image could not be unmounted before removal.
    #[error(transparent)]
    Unmount(Box<crate::mount::MountError>),
}

/// Why a tag could not be set.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The source image was not found.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The target is not a valid name.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The target names a digest.
    #[error("refusing to create a tag with a digest reference")]
    Digest,
    /// The target's name is `sha256`, which `sha256:HEX` would mean too.
    #[error("refusing to create an ambiguous tag using digest algorithm as name")]
    AlgorithmName,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Names the image `source` finds as `target` (`latest` when no tag).
    pub fn tag(&self, source: &str, target: &str) -> Result<NameChange, TagError> {
        let target = Reference::parse(target)?;
        if target.digest().is_some() {
            return Err(TagError::Digest);
        }
        // `sha256:b1dc` would name the image `sha256`, tag `b1dc`, and later
        // be read as an ID prefix; docker refuses it.
        if target.familiar_name() == "sha256" {
            return Err(TagError::AlgorithmName);
        }
        let target = target.with_default_tag();
        let _guard = self.lock()?;
        let images = self.list()?;
        let found = lookup_in(&images, source)?;
        let change = self.update_entries_locked(|entries| {
            let change = entries.set_name(&target, &found.descriptor);
            if let Some(prev) = &change.previous {
                self.forget_if_same_image(entries, prev, found.id());
            }
            Ok(change)
        })?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        self.set_last_tag_time(found.id(), now)?;
        Ok(change)
    }

    /// When a name moved off a manifest of the same image (same config),
    /// the image is still named: docker keeps no `<none>` copy then.
    pub(crate) fn forget_if_same_image(
        &self,
        entries: &mut super::index::Entries,
        prev: &Digest,
        id: &Digest,
    ) {
        let still_named = entries
            .descriptors()
            .iter()
            .any(|d| d.digest() == prev && super::index::entry_name(d).is_some());
        if still_named {
            return;
        }
        let same = entries
            .descriptors()
            .iter()
            .find(|d| d.digest() == prev)
            .and_then(|d| self.load_target(d).ok())
            .is_some_and(|(image, _)| image.id() == id);
        if same {
            entries.remove_manifest(prev);
        }
    }

    /// Removes a name or an image as `docker rmi` does, then collects
    /// blobs nothing references any more.
    pub fn remove(&self, query: &str, force: bool) -> Result<Vec<Removal>, RemoveError> {
        let _guard = self.lock()?;
        let images = self.list()?;
        let found = lookup_in(&images, query)?;
        let id = found.id().clone();
        let same_id: Vec<&StoredImage> = images.iter().filter(|i| i.id() == &id).collect();
        let refs: Vec<Reference> = same_id
            .iter()
            .flat_map(|i| i.names.iter().cloned())
            .collect();
        let by_id = is_id_query(query, &id);
        let mut records = Vec::new();
        let mut untag = Vec::new();
        if !by_id {
            let given = Reference::parse(query)
                .map_err(LookupError::from)?
                .with_default_tag();
            untag.push(given.clone());
            let mut remaining: Vec<&Reference> = refs.iter().filter(|r| **r != given).collect();
            if given.digest().is_none()
                && !remaining
                    .iter()
                    .any(|r| r.digest().is_none() && r.repository() == given.repository())
            {
                // The repository's last tag went: its digest names go too.
                for r in remaining
                    .iter()
                    .filter(|r| r.repository() == given.repository())
                {
                    untag.push((*r).clone());
                }
                remaining.retain(|r| r.repository() != given.repository());
            }
            if !remaining.is_empty() {
                self.update_entries_locked(|entries| {
                    for name in &untag {
                        entries.remove_name(name);
                    }
                    Ok(())
                })?;
                return Ok(untag.into_iter().map(Removal::Untagged).collect());
            }
        } else if is_single_reference(&refs) || force {
            untag.extend(refs.iter().cloned());
        } else if !refs.is_empty() {
            return Err(RemoveError::Conflict {
                short: id.digest()[..12].to_string(),
                reason: "image is referenced in multiple repositories".into(),
            });
        }
        // A mounted image is in use: removing it needs -f, which unmounts.
        let mounted: Vec<_> = self
            .mounts()?
            .into_iter()
            .filter(|m| m.image == id)
            .collect();
        if let Some(first) = mounted.first() {
            if !force {
                return Err(RemoveError::Conflict {
                    short: id.digest()[..12].to_string(),
                    reason: format!("image is mounted at {}", first.target.display()),
                });
            }
            // Records first (see `mount::unmount`); put back what the
            // kernel refused to release.
            self.update_mounts_locked(|records| {
                records.retain(|m| m.image != id);
                Ok(())
            })?;
            for (i, m) in mounted.iter().enumerate() {
                if let Err(e) = crate::mount::release(m) {
                    self.update_mounts_locked(|records| {
                        records.extend(mounted[i..].iter().cloned());
                        Ok(())
                    })?;
                    return Err(RemoveError::Unmount(Box::new(e)));
                }
            }
        }
        records.extend(untag.iter().cloned().map(Removal::Untagged));
        // The image goes: every entry of it, then the layers no other image uses.
        let others: std::collections::HashSet<Digest> = images
            .iter()
            .filter(|i| i.id() != &id)
            .flat_map(|i| i.image.chain_ids())
            .collect();
        self.update_entries_locked(|entries| {
            for i in &same_id {
                entries.remove_manifest(i.descriptor.digest());
            }
            Ok(())
        })?;
        records.push(Removal::Deleted(id.clone()));
        for chain in found.image.chain_ids().into_iter().rev() {
            if others.contains(&chain) {
                break;
            }
            records.push(Removal::Deleted(chain));
        }
        self.gc_locked()?;
        Ok(records)
    }
}

/// True when the query names the image by (a prefix of) its ID rather than
/// by a reference.
fn is_id_query(query: &str, id: &Digest) -> bool {
    reference::is_id_prefix(query) && id.digest().starts_with(query.trim_start_matches("sha256:"))
}

/// docker's rule: all names in one repository, with at most one tag.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let tags: Vec<&Reference> = refs.iter().filter(|r| r.digest().is_none()).collect();
    if tags.len() > 1 {
        return false;
    }
    let repo = refs[0].repository();
    refs.iter().all(|r| r.repository() == repo)
}
