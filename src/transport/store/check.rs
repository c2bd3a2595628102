//! `strata system check`: is the store what its records say it is?
//!
//! Every blob must hash to its name; every entry of `index.json` must be a
//! descriptor of a manifest that is here whole (config and layers, or for an
//! index at least one child, each of those whole); a layer record must give
//! the diff ID the blob really has; an unpacked layer in the cache must be a
//! directory named by a diff ID and hold what its layer blob unpacks to; a
//! mount record must name a stored image and a tree that is there.
//!
//! Unpacked layers cost no second read of their blobs: a layer blob whose
//! record names an entry of the cache is decompressed on a second thread as
//! it is hashed, into the tree the unpacker writes for it
//! ([`ExpectedTree`]: names, metadata, each file's size and SHA-256, never
//! a layer or a file whole in memory), and the entry is compared with that
//! tree: kind, size, content, mode, time, symlink target, device numbers,
//! hard links, whiteouts (`0:0` devices) and nothing extra; owners and the
//! opaque attribute only when the check runs as root, as the cache is
//! filled (only root mounts overlays). An entry no record leads to (or one
//! that came meanwhile) is compared under the lock with a sound blob of its
//! diff ID that the records or the configs name. A difference is one line:
//! the entry's directory, the first differing path in path order, and what
//! differs.
//!
//! A repair drops what is broken (a corrupt blob, the names of an image that
//! cannot be read whole, a wrong record, a bogus mount record, an unpacked
//! layer that differs, which the next mount unpacks again) and nothing
//! else: what nothing names any more is left to `prune`, so a repair never
//! deletes a sound blob or a sound unpacked layer. An unpacked layer that a
//! mounted overlay has as a lower directory is never removed under it: the
//! repair leaves it, says that mount must be unmounted first, and counts it
//! as left ([`CheckReport::left`]); so it does while a running command (a
//! mount under way) leases its image.
//!
//! What a killed command may leave (blobs no name reaches yet, unpacked
//! layers of removed images, records of removed blobs, ingest files, the
//! state of a mount killed before it was recorded) is not wrong: the next
//! collection (or `system prune`) sweeps it. So is an unpacked layer whose blob
//! is gone or corrupt: it cannot be compared, the cache only ever renames a
//! layer into place whole, and once no image has its diff ID `prune`
//! removes it (a missing or corrupt blob of an image that is still named is
//! reported with that image).

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::digest::{self, Digest, Hasher};
use crate::image::{Index, ManifestKind, RawManifest, sniff_media_type};
use crate::pipe;
use crate::rootfs::{self, CompareOptions, Difference, ExpectedTree, RootfsError};

use super::index::entry_name;
use super::meta::LayerInfo;
use super::mounts::{MountKind, MountRecord};
use super::{Store, StoreError, blobs};

/// One thing found wrong, named so that it can be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob's content does not hash to its name.
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// `index.json` is not an index at all.
    UnreadableIndex {
        /// What the parser said.
        reason: String,
    },
    /// One entry of `index.json` is no descriptor.
    BadEntry {
        /// Its position in `manifests` (from 0).
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An image (or index) the index names cannot be read whole.
    BrokenImage {
        /// The manifest (or index) digest.
        manifest: Digest,
        /// The names pointing at it (none for a dangling image).
        names: Vec<String>,
        /// What is missing or wrong.
        reason: String,
    },
    /// A layer record gives another diff ID than its blob has.
    StaleLayerRecord {
        /// The layer blob.
        blob: Digest,
        /// What is wrong with the record.
        reason: String,
        /// The record the blob's content gives, when it could be read.
        correct: Option<LayerInfo>,
    },
    /// An entry of the unpacked-layer cache is not a layer directory.
    BadCacheEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An unpacked layer is not what its layer blob unpacks to.
    UnpackedLayerDiffers {
        /// The layer's directory in the cache.
        path: PathBuf,
        /// Its diff ID.
        diff_id: Digest,
        /// The first entry that differs, and how.
        difference: Difference,
        /// The recorded mount that has it as a lower layer (its name and
        /// target), if one does: only unmounting it lets a repair remove it.
        in_use: Option<(String, PathBuf)>,
    },
    /// A mount record names something that is not there.
    BogusMount {
        /// The record.
        record: MountRecord,
        /// What is not there.
        reason: String,
    },
    /// The mount records do not parse.
    UnreadableMounts {
        /// What the parser said.
        reason: String,
    },
    /// A kept plugin artifact is not whole.
    BrokenArtifact {
        /// The artifact's manifest record.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::CorruptBlob { digest, actual } => {
                write!(f, "blob {digest}: its content hashes to {actual}")
            }
            Problem::UnreadableIndex { reason } => {
                write!(f, "index.json: not an image index: {reason}")
            }
            Problem::BadEntry { position, reason } => {
                write!(f, "index.json: entry {position}: {reason}")
            }
            Problem::BrokenImage {
                manifest,
                names,
                reason,
            } => {
                if names.is_empty() {
                    write!(f, "image {manifest} (dangling): {reason}")
                } else {
                    write!(f, "image {manifest} ({}): {reason}", names.join(", "))
                }
            }
            Problem::StaleLayerRecord { blob, reason, .. } => {
                write!(f, "layer record of blob {blob}: {reason}")
            }
            Problem::BadCacheEntry { path, reason } => {
                write!(f, "unpacked layer {}: {reason}", path.display())
            }
            Problem::UnpackedLayerDiffers {
                path,
                difference,
                in_use,
                ..
            } => {
                write!(f, "unpacked layer {}: {difference}", path.display())?;
                if let Some((name, target)) = in_use {
                    write!(
                        f,
                        "; it is a lower layer of the mount of {name} at {}, which must be \
                         unmounted before a repair can remove it",
                        target.display()
                    )?;
                }
                Ok(())
            }
            Problem::BogusMount { record, reason } => write!(
                f,
                "mount of {} at {}: {reason}",
                record.name,
                record.target.display()
            ),
            Problem::UnreadableMounts { reason } => {
                write!(f, "mounts.json: does not parse: {reason}")
            }
            Problem::BrokenArtifact { path, reason } => {
                write!(f, "plugin artifact {}: {reason}", path.display())
            }
        }
    }
}

/// What a check found, and what a repair did about it.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs hashed.
    pub blobs: usize,
    /// Entries of `index.json` checked.
    pub entries: usize,
    /// What is wrong, one item per thing.
    pub problems: Vec<Problem>,
    /// What a repair dropped or rewrote, one line each.
    pub repaired: Vec<String>,
    /// What a repair had to leave as it was, and why, one line each.
    pub left: Vec<String>,
}

/// The state of one blob as the hashing pass found it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BlobState {
    /// It hashes to its name; its size.
    Sound(u64),
    /// It hashes to this instead.
    Corrupt(Digest),
}

impl Store {
    /// Checks the whole store (its structure under the lock, so no writer
    /// changes it meanwhile); with `repair`, drops what is broken.
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        // The long part, hashing, runs without the lock, so writers wait
        // only for what was added meanwhile and for the structure's check.
        // Unpacked layers are compared with their blobs in the same pass:
        // a layer blob that has one is decompressed as it is hashed.
        let mut blobs = HashMap::new();
        let mut cache = CacheCheck::default();
        cache.list(self, false);
        self.hash_blobs(&mut blobs, &mut cache, false)?;
        let _guard = self.lock()?;
        cache.list(self, true);
        self.hash_blobs(&mut blobs, &mut cache, true)?;
        let mut report = CheckReport {
            blobs: blobs.len(),
            ..CheckReport::default()
        };
        let mut corrupt: Vec<(&Digest, &Digest)> = blobs
            .iter()
            .filter_map(|(d, state)| match state {
                BlobState::Corrupt(actual) => Some((d, actual)),
                BlobState::Sound(_) => None,
            })
            .collect();
        corrupt.sort_by_key(|(d, _)| d.to_string());
        for (digest, actual) in corrupt {
            report.problems.push(Problem::CorruptBlob {
                digest: digest.clone(),
                actual: actual.clone(),
            });
        }
        let (raw, descriptors) = self.check_index(&mut report)?;
        report.entries = descriptors.len();
        let mut checker = ImageChecker {
            store: self,
            blobs: &blobs,
            layers: HashMap::new(),
            manifests: HashMap::new(),
            images: HashSet::new(),
        };
        // Names grouped per manifest, so a broken image is reported once.
        let mut by_manifest: Vec<(Digest, Descriptor, Vec<String>)> = Vec::new();
        for (_, d) in &descriptors {
            let pos = match by_manifest.iter().position(|(m, _, _)| m == d.digest()) {
                Some(p) => p,
                None => {
                    by_manifest.push((d.digest().clone(), d.clone(), Vec::new()));
                    by_manifest.len() - 1
                }
            };
            if let Some(name) = entry_name(d) {
                by_manifest[pos].2.push(name.to_string());
            }
        }
        let mut broken = HashSet::new();
        for (manifest, d, names) in &by_manifest {
            if let Err(reason) = checker.manifest(d, true) {
                broken.insert(manifest.clone());
                report.problems.push(Problem::BrokenImage {
                    manifest: manifest.clone(),
                    names: names.clone(),
                    reason,
                });
            }
        }
        let stale = checker.stale_records();
        let images = checker.images.clone();
        report.problems.extend(stale);
        self.check_cache(&blobs, &checker.layers, &mut cache, &mut report);
        let mounts = self.check_mounts(&images, &mut report)?;
        self.check_artifacts(&blobs, &mut report);
        if repair {
            self.repair(&mut report, raw, &descriptors, &broken, mounts)?;
        }
        Ok(report)
    }

    /// Hashes every blob not hashed yet (`known`); forgets those gone. A
    /// blob is never changed once in place, only added or deleted, so a
    /// first pass without the lock stays true for what is still there. A
    /// layer blob whose record names an unpacked layer not compared yet is
    /// decompressed and walked at the same time, and the unpacked layer
    /// compared with it (`locked` says whether under the lock).
    fn hash_blobs(
        &self,
        known: &mut HashMap<Digest, BlobState>,
        cache: &mut CacheCheck,
        locked: bool,
    ) -> Result<(), StoreError> {
        let dir = self.root.join("blobs/sha256");
        let listing = std::fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        let mut seen = HashSet::new();
        for entry in listing {
            let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
            let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue;
            };
            seen.insert(d.clone());
            if known.contains_key(&d) {
                continue;
            }
            let path = entry.path();
            let wanted = cache.wanted(self, &d);
            let Some((actual, size, tree)) = hash_file(&path, &d, wanted.is_some())? else {
                // Collected meanwhile (this pass may run without the lock).
                continue;
            };
            let state = if actual == d {
                BlobState::Sound(size)
            } else {
                BlobState::Corrupt(actual)
            };
            if let (Some(diff_id), BlobState::Sound(_), Some(Ok(tree))) = (wanted, &state, tree)
                && tree.diff_id() == &diff_id
            {
                cache.compare(&diff_id, &tree, locked);
            }
            known.insert(d, state);
        }
        known.retain(|d, _| seen.contains(d));
        Ok(())
    }

    /// Reads `index.json` entry by entry, so one bad entry does not hide
    /// the others. Gives the document (when it is one) and the entries that
    /// are descriptors, with their positions.
    #[allow(clippy::type_complexity)]
    fn check_index(
        &self,
        report: &mut CheckReport,
    ) -> Result<(Option<serde_json::Value>, Vec<(usize, Descriptor)>), StoreError> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, e))?;
        let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(Problem::UnreadableIndex {
                    reason: e.to_string(),
                });
                return Ok((None, Vec::new()));
            }
        };
        let Some(list) = doc.get("manifests").and_then(|m| m.as_array()) else {
            report.problems.push(Problem::UnreadableIndex {
                reason: "it has no \"manifests\" list".into(),
            });
            return Ok((None, Vec::new()));
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            match serde_json::from_value::<Descriptor>(item.clone()) {
                Ok(d) => out.push((i, d)),
                Err(e) => report.problems.push(Problem::BadEntry {
                    position: i,
                    reason: e.to_string(),
                }),
            }
        }
        Ok((Some(doc), out))
    }

    /// Every entry of the unpacked-layer cache must be a directory named by
    /// a diff ID, and agree with its layer blob. One whose blob is not here
    /// (or is corrupt, or is no layer of that diff ID) cannot be compared
    /// and is left alone: a killed command or a repair leaves such entries,
    /// and `prune` removes them once no image has their diff ID.
    fn check_cache(
        &self,
        blobs: &HashMap<Digest, BlobState>,
        layers: &HashMap<Digest, HashSet<Digest>>,
        cache: &mut CacheCheck,
        report: &mut CheckReport,
    ) {
        let dir = self.layer_cache_dir().join("sha256");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut entries: Vec<std::fs::DirEntry> = listing.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        let mut records = None;
        let mut users = None;
        for entry in entries {
            let path = entry.path();
            let diff_id = entry
                .file_name()
                .to_str()
                .and_then(|n| digest::parse(&format!("sha256:{n}")).ok());
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let diff_id = match (diff_id, is_dir) {
                (None, _) => {
                    report.problems.push(Problem::BadCacheEntry {
                        path,
                        reason: "its name is no diff ID".into(),
                    });
                    continue;
                }
                (Some(_), false) => {
                    report.problems.push(Problem::BadCacheEntry {
                        path,
                        reason: "it is not a directory".into(),
                    });
                    continue;
                }
                (Some(d), true) => d,
            };
            if cache.pending.contains_key(&diff_id) {
                // Not met while hashing (no record names its blob, or it
                // came meanwhile, or it differed before the lock): its
                // candidate blobs are read now.
                let records = records.get_or_insert_with(|| self.layer_records());
                let mut candidates: Vec<&Digest> = records
                    .iter()
                    .filter(|(_, d)| *d == diff_id)
                    .map(|(b, _)| b)
                    .chain(
                        layers
                            .iter()
                            .filter(|(_, ds)| ds.contains(&diff_id))
                            .map(|(b, _)| b),
                    )
                    .filter(|b| matches!(blobs.get(*b), Some(BlobState::Sound(_))))
                    .collect();
                candidates.sort_by_key(|b| b.to_string());
                candidates.dedup();
                for blob in candidates {
                    let Ok(file) = self.open_blob(blob) else {
                        continue;
                    };
                    let reader = BufReader::with_capacity(blobs::CHUNK, file);
                    if let Ok(tree) = ExpectedTree::read(reader, blob.as_ref())
                        && tree.diff_id() == &diff_id
                    {
                        cache.compare(&diff_id, &tree, true);
                        break;
                    }
                }
            }
            let Some(Some(difference)) = cache.verdicts.get(&diff_id) else {
                continue;
            };
            let users = users.get_or_insert_with(|| self.lower_layer_users());
            let in_use = users
                .iter()
                .find(|(_, lowers)| lowers.contains(&path))
                .map(|(r, _)| (r.name.clone(), r.target.clone()));
            report.problems.push(Problem::UnpackedLayerDiffers {
                path,
                diff_id,
                difference: difference.clone(),
                in_use,
            });
        }
    }

    /// Every layer record: blob → diff ID.
    fn layer_records(&self) -> Vec<(Digest, Digest)> {
        let dir = self.private().join("layers");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        listing
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let hex = name.to_str()?.strip_suffix(".json")?;
                let blob = digest::parse(&format!("sha256:{hex}")).ok()?;
                let bytes = std::fs::read(e.path()).ok()?;
                let info = serde_json::from_slice::<LayerInfo>(&bytes).ok()?;
                Some((blob, info.diff_id))
            })
            .collect()
    }

    /// The recorded overlay mounts that are mounted, each with its lower
    /// directories: the links its state directory keeps, and the cache
    /// directories of its image's diff IDs.
    fn lower_layer_users(&self) -> Vec<(MountRecord, HashSet<PathBuf>)> {
        let records = self.mounts().unwrap_or_default();
        let mounted = mount_points();
        let cache = rootfs::LayerCache::new(self.layer_cache_dir());
        let mut out = Vec::new();
        for r in records {
            if !matches!(r.kind, MountKind::Overlay | MountKind::OverlayRw)
                || !mounted.contains(&r.target)
            {
                continue;
            }
            let mut lowers = HashSet::new();
            if let Ok(links) = std::fs::read_dir(r.state.join("l")) {
                lowers.extend(
                    links
                        .flatten()
                        .filter_map(|l| std::fs::read_link(l.path()).ok()),
                );
            }
            if let Ok(bytes) = self.read_blob(&r.image)
                && let Ok(config) = crate::image::parse_config(&bytes)
            {
                lowers.extend(
                    config
                        .rootfs()
                        .diff_ids()
                        .iter()
                        .filter_map(|d| digest::parse(d).ok())
                        .filter_map(|d| cache.layer_path(&d)),
                );
            }
            out.push((r, lowers));
        }
        out
    }

    /// Checks each mount record; gives the records, for a repair.
    fn check_mounts(
        &self,
        images: &HashSet<Digest>,
        report: &mut CheckReport,
    ) -> Result<Vec<MountRecord>, StoreError> {
        let records = match self.mounts() {
            Ok(r) => r,
            Err(StoreError::CorruptIndex { reason, .. }) => {
                report.problems.push(Problem::UnreadableMounts { reason });
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mounted = mount_points();
        for r in &records {
            let reason = if !images.contains(&r.image) {
                Some(format!("image {} is not in the store", r.image))
            } else if !r.target.is_dir() {
                Some("the directory is not there".to_string())
            } else if matches!(r.kind, MountKind::Overlay | MountKind::OverlayRw)
                && !mounted.contains(&r.target)
            {
                Some("nothing is mounted there".to_string())
            } else if !r.state.is_dir() {
                Some(format!(
                    "its state directory {} is not there",
                    r.state.display()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                report.problems.push(Problem::BogusMount {
                    record: r.clone(),
                    reason,
                });
            }
        }
        Ok(records)
    }

    fn check_artifacts(&self, blobs: &HashMap<Digest, BlobState>, report: &mut CheckReport) {
        let dir = self.private().join("plugins/artifacts/sha256");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let named = entry
                .file_name()
                .to_str()
                .and_then(|n| digest::parse(&format!("sha256:{n}")).ok());
            let reason = if named.as_ref() != Some(&digest::sha256_of(&bytes)) {
                Some("its content does not hash to its name".to_string())
            } else {
                match serde_json::from_slice::<ImageManifest>(&bytes) {
                    Err(e) => Some(format!("not a manifest: {e}")),
                    Ok(m) => std::iter::once(m.config())
                        .chain(m.layers())
                        .find(|d| blobs.get(d.digest()) != Some(&BlobState::Sound(d.size())))
                        .map(|d| format!("blob {} is missing or corrupt", d.digest())),
                }
            };
            if let Some(reason) = reason {
                report
                    .problems
                    .push(Problem::BrokenArtifact { path, reason });
            }
        }
    }

    fn repair(
        &self,
        report: &mut CheckReport,
        raw: Option<serde_json::Value>,
        descriptors: &[(usize, Descriptor)],
        broken: &HashSet<Digest>,
        mounts: Vec<MountRecord>,
    ) -> Result<(), StoreError> {
        let problems = report.problems.clone();
        let mut bogus_mounts = Vec::new();
        let mut leased: Option<HashSet<Digest>> = None;
        for p in &problems {
            match p {
                Problem::CorruptBlob { digest, .. } => {
                    let path = self.blob_path(digest);
                    std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
                    self.drop_meta(digest);
                    report
                        .repaired
                        .push(format!("deleted corrupt blob {digest}"));
                }
                Problem::StaleLayerRecord { blob, correct, .. } => {
                    match correct {
                        Some(info) => self.write_layer_info(blob, info)?,
                        None => {
                            let _ = std::fs::remove_file(self.layer_meta_path(blob));
                        }
                    }
                    report
                        .repaired
                        .push(format!("rewrote the layer record of blob {blob}"));
                }
                Problem::BadCacheEntry { path, .. } => {
                    let removed = if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    };
                    removed.map_err(|e| StoreError::io("remove", path, e))?;
                    report.repaired.push(format!("removed {}", path.display()));
                }
                Problem::UnpackedLayerDiffers {
                    path,
                    diff_id,
                    in_use,
                    ..
                } => {
                    if let Some((name, target)) = in_use {
                        report.left.push(format!(
                            "unpacked layer {}: a lower layer of the mount of {name} at {}; \
                             unmount it, then repair again",
                            path.display(),
                            target.display()
                        ));
                        continue;
                    }
                    // A mount under way (its image leased) may be about to
                    // stack it: it goes when that command has ended.
                    if leased
                        .get_or_insert_with(|| self.leased_diff_ids())
                        .contains(diff_id)
                    {
                        report.left.push(format!(
                            "unpacked layer {}: a running strata command uses its image; \
                             run the repair again when it has ended",
                            path.display()
                        ));
                        continue;
                    }
                    rootfs::LayerCache::new(self.layer_cache_dir())
                        .remove(diff_id)
                        .map_err(|e| {
                            StoreError::io("remove", path, std::io::Error::other(e.to_string()))
                        })?;
                    report.repaired.push(format!(
                        "removed unpacked layer {} (a mount unpacks it again from its blob)",
                        path.display()
                    ));
                }
                Problem::BogusMount { record, .. } => bogus_mounts.push(record.clone()),
                Problem::BrokenArtifact { path, .. } => {
                    std::fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
                    report.repaired.push(format!(
                        "forgot plugin artifact {} (it is fetched again when needed)",
                        path.display()
                    ));
                }
                Problem::UnreadableMounts { .. } => {
                    let path = self.mounts_path();
                    let kept = path.with_extension("json.broken");
                    std::fs::rename(&path, &kept)
                        .map_err(|e| StoreError::io("rename", &path, e))?;
                    report.repaired.push(format!(
                        "set the unreadable mount records aside as {}",
                        kept.display()
                    ));
                }
                Problem::UnreadableIndex { .. }
                | Problem::BadEntry { .. }
                | Problem::BrokenImage { .. } => {}
            }
        }
        self.repair_index(report, raw, descriptors, broken)?;
        if !bogus_mounts.is_empty() {
            let kept: Vec<MountRecord> = mounts
                .into_iter()
                .filter(|m| !bogus_mounts.contains(m))
                .collect();
            self.update_mounts_locked(|records| {
                *records = kept;
                Ok(())
            })?;
            for m in bogus_mounts {
                report.repaired.push(format!(
                    "forgot the mount of {} at {}",
                    m.name,
                    m.target.display()
                ));
            }
        }
        Ok(())
    }

    /// Rewrites `index.json` without its bad entries and the names of
    /// broken images; an index that is no index is set aside and replaced
    /// by an empty one.
    fn repair_index(
        &self,
        report: &mut CheckReport,
        raw: Option<serde_json::Value>,
        descriptors: &[(usize, Descriptor)],
        broken: &HashSet<Digest>,
    ) -> Result<(), StoreError> {
        let path = self.index_path();
        let Some(mut doc) = raw else {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let kept = self.private().join(format!("index.json.broken-{secs}"));
            std::fs::rename(&path, &kept).map_err(|e| StoreError::io("rename", &path, e))?;
            blobs::write_atomic(
                &self.ingest_dir(),
                &path,
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
            )?;
            report.repaired.push(format!(
                "replaced index.json by an empty index (the unreadable one is kept as {})",
                kept.display()
            ));
            return Ok(());
        };
        let good: HashSet<usize> = descriptors.iter().map(|(i, _)| *i).collect();
        let Some(list) = doc.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
            return Ok(());
        };
        let before = list.len();
        let mut kept = Vec::new();
        for (i, item) in std::mem::take(list).into_iter().enumerate() {
            if !good.contains(&i) {
                report
                    .repaired
                    .push(format!("dropped index.json entry {i}: {item}"));
                continue;
            }
            let d = descriptors
                .iter()
                .find(|(p, _)| *p == i)
                .map(|(_, d)| d)
                .filter(|d| broken.contains(d.digest()));
            if let Some(d) = d {
                let what = match entry_name(d) {
                    Some(name) => format!("name {name}"),
                    None => "dangling image".to_string(),
                };
                report
                    .repaired
                    .push(format!("dropped {what} (image {})", d.digest()));
                continue;
            }
            kept.push(item);
        }
        if kept.len() != before {
            *list = kept;
            let bytes = serde_json::to_vec(&doc).map_err(|e| StoreError::CorruptIndex {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            blobs::write_atomic(&self.ingest_dir(), &path, &bytes)?;
        }
        Ok(())
    }
}

/// Walks images, remembering what it learned of each manifest and layer.
struct ImageChecker<'a> {
    store: &'a Store,
    blobs: &'a HashMap<Digest, BlobState>,
    /// Per layer blob, the diff IDs configs expect of it.
    layers: HashMap<Digest, HashSet<Digest>>,
    /// Per manifest, the verdict.
    manifests: HashMap<Digest, Result<(), String>>,
    /// The IDs of the images found whole.
    images: HashSet<Digest>,
}

impl ImageChecker<'_> {
    /// Whether a blob is here whole; `what` names it in the answer.
    fn blob(&self, d: &Descriptor, what: &str) -> Result<(), String> {
        match self.blobs.get(d.digest()) {
            None => Err(format!("{what} {} is missing", d.digest())),
            Some(BlobState::Corrupt(_)) => Err(format!("{what} {} is corrupt", d.digest())),
            Some(BlobState::Sound(size)) if *size != d.size() => Err(format!(
                "{what} {} is {size} bytes where {} are announced",
                d.digest(),
                d.size()
            )),
            Some(BlobState::Sound(_)) => Ok(()),
        }
    }

    fn manifest(&mut self, d: &Descriptor, top: bool) -> Result<(), String> {
        if let Some(verdict) = self.manifests.get(d.digest()) {
            return verdict.clone();
        }
        let verdict = self.manifest_uncached(d, top);
        self.manifests.insert(d.digest().clone(), verdict.clone());
        verdict
    }

    fn manifest_uncached(&mut self, d: &Descriptor, top: bool) -> Result<(), String> {
        self.blob(d, "manifest")?;
        let bytes = self
            .store
            .read_blob(d.digest())
            .map_err(|e| e.to_string())?;
        let media_type = sniff_media_type(&bytes, Some(d.media_type().as_ref()));
        let raw = RawManifest {
            bytes,
            digest: d.digest().clone(),
            media_type,
        };
        match raw.kind().map_err(|e| e.to_string())? {
            ManifestKind::Image => self.image(&raw),
            ManifestKind::Index => {
                let index = Index::new(raw).map_err(|e| e.to_string())?;
                let mut present = 0;
                for child in index.children() {
                    if !self.blobs.contains_key(child.digest()) {
                        // A pull for one platform keeps one child.
                        continue;
                    }
                    present += 1;
                    self.manifest(child, false)
                        .map_err(|e| format!("child {}: {e}", child.digest()))?;
                }
                if present == 0 && top {
                    return Err(format!(
                        "none of the index's {} images is here",
                        index.children().len()
                    ));
                }
                Ok(())
            }
        }
    }

    fn image(&mut self, raw: &RawManifest) -> Result<(), String> {
        let m: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| format!("manifest does not parse: {e}"))?;
        self.blob(m.config(), "config")?;
        let config_bytes = self
            .store
            .read_blob(m.config().digest())
            .map_err(|e| e.to_string())?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| format!("config does not parse: {e}"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != m.layers().len() {
            return Err(format!(
                "the manifest has {} layers, its config {} diff IDs",
                m.layers().len(),
                diff_ids.len()
            ));
        }
        for (layer, diff_id) in m.layers().iter().zip(diff_ids) {
            self.blob(layer, "layer")?;
            let diff_id =
                digest::parse(diff_id).map_err(|e| format!("config diff ID {diff_id:?}: {e}"))?;
            let verdict = self.layer(layer.digest(), &diff_id);
            verdict?;
        }
        self.images.insert(m.config().digest().clone());
        Ok(())
    }

    /// A layer blob against the diff ID a config expects: the record says
    /// so, or (no record, or one that disagrees) the blob is read.
    fn layer(&mut self, blob: &Digest, expected: &Digest) -> Result<(), String> {
        self.layers
            .entry(blob.clone())
            .or_default()
            .insert(expected.clone());
        let recorded = std::fs::read(self.store.layer_meta_path(blob))
            .ok()
            .and_then(|b| serde_json::from_slice::<LayerInfo>(&b).ok());
        if recorded.as_ref().map(|r| &r.diff_id) == Some(expected) {
            return Ok(());
        }
        if recorded.is_none() {
            // Not scanned yet (a pulled layer is, on first use): nothing
            // recorded can disagree. Its digest was checked above.
            return Ok(());
        }
        match self.scan(blob) {
            Ok(info) if &info.diff_id == expected => Ok(()),
            Ok(info) => Err(format!(
                "layer {blob} has diff ID {}, but the config expects {expected}",
                info.diff_id
            )),
            Err(e) => Err(format!("layer {blob} is not a valid layer: {e}")),
        }
    }

    fn scan(&self, blob: &Digest) -> Result<LayerInfo, String> {
        let file = self.store.open_blob(blob).map_err(|e| e.to_string())?;
        let stats = rootfs::scan_layer(BufReader::with_capacity(blobs::CHUNK, file))
            .map_err(|e| e.to_string())?;
        Ok(LayerInfo {
            diff_id: stats.diff_id.unwrap_or_else(|| blob.clone()),
            size: stats.unpacked_size,
        })
    }

    /// Layer records that disagree with their blob's content.
    fn stale_records(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut blobs: Vec<&Digest> = self.layers.keys().collect();
        blobs.sort_by_key(|d| d.to_string());
        for blob in blobs {
            let path = self.store.layer_meta_path(blob);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let recorded = serde_json::from_slice::<LayerInfo>(&bytes);
            let wanted = &self.layers[blob];
            if let Ok(r) = &recorded
                && wanted.contains(&r.diff_id)
            {
                continue;
            }
            let actual = self.scan(blob).ok();
            let reason = match (&recorded, &actual) {
                (Err(e), _) => format!("does not parse: {e}"),
                (Ok(r), Some(a)) if r.diff_id != a.diff_id => {
                    format!("says diff ID {}, the blob's is {}", r.diff_id, a.diff_id)
                }
                // The blob itself disagrees with its config: reported
                // with its image.
                (Ok(_), _) => continue,
            };
            out.push(Problem::StaleLayerRecord {
                blob: blob.clone(),
                reason,
                correct: actual,
            });
        }
        out
    }
}

/// The unpacked-layer cache as the check meets it.
#[derive(Debug, Default)]
struct CacheCheck {
    /// Entries not compared yet: diff ID → directory.
    pending: HashMap<Digest, PathBuf>,
    /// Per diff ID compared, the first difference (`None`: it agrees).
    verdicts: HashMap<Digest, Option<Difference>>,
    /// Differences found without the lock: compared again under it, since
    /// the entry may have been removed while it was read.
    unconfirmed: HashSet<Digest>,
}

impl CacheCheck {
    /// Lists the cache: what was not compared yet is pending; what is gone
    /// is forgotten; under the lock, differences found before it are
    /// pending again.
    fn list(&mut self, store: &Store, locked: bool) {
        let dir = store.layer_cache_dir().join("sha256");
        let mut present = HashMap::new();
        if let Ok(listing) = std::fs::read_dir(&dir) {
            for entry in listing.flatten() {
                let named = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| digest::parse(&format!("sha256:{n}")).ok());
                if let Some(d) = named
                    && entry.file_type().is_ok_and(|t| t.is_dir())
                {
                    present.insert(d, entry.path());
                }
            }
        }
        self.verdicts.retain(|d, _| present.contains_key(d));
        if locked {
            for d in self.unconfirmed.drain() {
                self.verdicts.remove(&d);
            }
        }
        present.retain(|d, _| !self.verdicts.contains_key(d));
        self.pending = present;
    }

    /// The diff ID of a pending entry that the blob's layer record names.
    fn wanted(&self, store: &Store, blob: &Digest) -> Option<Digest> {
        if self.pending.is_empty() {
            return None;
        }
        let bytes = std::fs::read(store.layer_meta_path(blob)).ok()?;
        let info = serde_json::from_slice::<LayerInfo>(&bytes).ok()?;
        self.pending
            .contains_key(&info.diff_id)
            .then_some(info.diff_id)
    }

    /// Compares the pending entry of `diff_id` with the tree its layer
    /// unpacks to. An entry that cannot be opened (gone meanwhile) stays
    /// pending.
    fn compare(&mut self, diff_id: &Digest, tree: &ExpectedTree, locked: bool) {
        let Some(path) = self.pending.get(diff_id) else {
            return;
        };
        let Ok(found) = tree.compare(path, &CompareOptions::default()) else {
            return;
        };
        if found.is_some() && !locked {
            self.unconfirmed.insert(diff_id.clone());
        }
        self.pending.remove(diff_id);
        self.verdicts.insert(diff_id.clone(), found);
    }
}

/// What hashing a blob file gave: its digest, its size, and when asked,
/// the tree it unpacks to as a layer.
type Hashed = (Digest, u64, Option<Result<ExpectedTree, RootfsError>>);

/// Hashes a blob file; with `walk`, a second thread fed the same chunks
/// over a bounded pipe decompresses it and foresees its unpacked tree, so
/// the blob is read once and never held whole. `None` when the file is
/// gone.
fn hash_file(path: &Path, label: &Digest, walk: bool) -> Result<Option<Hashed>, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let mut hasher = Hasher::new();
    if !walk {
        let mut reader = BufReader::with_capacity(blobs::CHUNK, file);
        let mut buf = vec![0u8; blobs::CHUNK];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| StoreError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let size = hasher.len();
        return Ok(Some((hasher.finish(), size, None)));
    }
    let (tx, rx) = pipe::pipe(4);
    let label = label.to_string();
    let tree = std::thread::scope(|s| {
        let walker =
            s.spawn(move || ExpectedTree::read(BufReader::with_capacity(blobs::CHUNK, rx), &label));
        let mut tx = Some(tx);
        loop {
            let chunk = pipe::read_chunk(&mut file, blobs::CHUNK)
                .map_err(|e| StoreError::io("read", path, e))?;
            if chunk.is_empty() {
                break;
            }
            hasher.update(&chunk);
            if let Some(t) = &tx
                && t.send(chunk).is_err()
            {
                // The walker gave up (not a layer): hashing goes on.
                tx = None;
            }
        }
        drop(tx);
        Ok::<_, StoreError>(walker.join().unwrap_or_else(|_| {
            Err(RootfsError::Read(std::io::Error::other(
                "the layer walker panicked",
            )))
        }))
    })?;
    let size = hasher.len();
    Ok(Some((hasher.finish(), size, Some(tree))))
}

/// The mount points of this process's mount namespace.
fn mount_points() -> HashSet<PathBuf> {
    crate::mountinfo::read()
        .into_iter()
        .map(|m| m.point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{BufferUi, Context, load};
    use crate::transport::registry::Registries;
    use crate::transport::store::ANNOTATION_IMAGE_NAME;

    const LAYER: &str = "sha256:4a13a924604417556c94be067c8fdf7df1b0e53ddd74e7e8ae006da2685e9592";

    /// A store holding the demo image, `strata-demo/hello:1.0`.
    fn demo() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let ctx = Context::new(root.clone(), Registries::new(&[]));
        let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.tar");
        let request = load::LoadRequest {
            input: Some(archive),
            quiet: true,
            transform: Vec::new(),
        };
        load::run(&ctx, &request, &BufferUi::default()).unwrap();
        (dir, Store::open(root).unwrap())
    }

    fn names(store: &Store) -> Vec<String> {
        store
            .entries()
            .unwrap()
            .descriptors()
            .iter()
            .filter_map(|d| entry_name(d).map(|n| n.to_string()))
            .collect()
    }

    fn layer() -> Digest {
        digest::parse(LAYER).unwrap()
    }

    /// Checks, repairs, and checks again: the second check finds nothing.
    fn repaired(store: &Store) -> CheckReport {
        let report = store.check(true).unwrap();
        assert!(!report.repaired.is_empty(), "{report:?}");
        let again = store.check(false).unwrap();
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        report
    }

    #[test]
    fn a_sound_store_has_no_problem_and_a_repair_changes_nothing() {
        let (_dir, store) = demo();
        let before = std::fs::read(store.index_path()).unwrap();
        let report = store.check(true).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.repaired.is_empty());
        assert_eq!(report.blobs, 4);
        assert_eq!(report.entries, 1);
        assert_eq!(std::fs::read(store.index_path()).unwrap(), before);
    }

    #[test]
    fn a_flipped_byte_is_found_and_the_blob_and_its_names_dropped() {
        let (_dir, store) = demo();
        let path = store.blob_path(&layer());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let report = store.check(false).unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("blob {LAYER}: its content hashes to sha256:")),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("(docker.io/strata-demo/hello:1.0)")
                && lines[1].ends_with(&format!("layer {LAYER} is corrupt")),
            "{lines:?}"
        );
        let report = repaired(&store);
        assert!(report.repaired[0].contains(&format!("deleted corrupt blob {LAYER}")));
        assert!(report.repaired[1].starts_with("dropped name docker.io/strata-demo/hello:1.0"));
        assert!(!store.has_blob(&layer()));
        assert!(names(&store).is_empty());
    }

    #[test]
    fn a_missing_layer_drops_the_names_but_no_sound_blob() {
        let (_dir, store) = demo();
        store.tag("strata-demo/hello:1.0", "other:2").unwrap();
        std::fs::remove_file(store.blob_path(&layer())).unwrap();
        let report = store.check(false).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let line = report.problems[0].to_string();
        assert!(line.contains("docker.io/strata-demo/hello:1.0, docker.io/library/other:2"));
        assert!(
            line.ends_with(&format!("layer {LAYER} is missing")),
            "{line}"
        );
        let blobs_before = std::fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count();
        let report = repaired(&store);
        assert_eq!(report.repaired.len(), 2, "{:?}", report.repaired);
        assert!(names(&store).is_empty());
        // The other blobs are sound: a repair leaves them to prune.
        assert_eq!(
            std::fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            blobs_before
        );
    }

    #[test]
    fn a_bad_entry_or_one_naming_an_absent_manifest_goes_and_the_rest_stays() {
        let (_dir, store) = demo();
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.index_path()).unwrap()).unwrap();
        let list = doc["manifests"].as_array_mut().unwrap();
        list.push(serde_json::json!({"mediaType": "x", "digest": "nonsense"}));
        list.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest::sha256_of(b"gone").to_string(),
            "size": 4,
            "annotations": {ANNOTATION_IMAGE_NAME: "docker.io/library/ghost:1"},
        }));
        std::fs::write(store.index_path(), serde_json::to_vec(&doc).unwrap()).unwrap();
        let report = store.check(false).unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("index.json: entry 1: "), "{lines:?}");
        assert!(
            lines[1].contains("(docker.io/library/ghost:1): manifest sha256:"),
            "{lines:?}"
        );
        repaired(&store);
        assert_eq!(names(&store), ["docker.io/strata-demo/hello:1.0"]);
    }

    #[test]
    fn an_index_that_does_not_parse_is_set_aside() {
        let (_dir, store) = demo();
        std::fs::write(store.index_path(), b"{\"manifests\": [").unwrap();
        let report = store.check(false).unwrap();
        assert!(matches!(
            report.problems.as_slice(),
            [Problem::UnreadableIndex { .. }]
        ));
        let report = repaired(&store);
        assert!(report.repaired[0].contains("index.json.broken-"));
        let kept = std::fs::read_dir(store.private())
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("index.json.broken-")
            })
            .unwrap();
        assert_eq!(std::fs::read(kept.path()).unwrap(), b"{\"manifests\": [");
    }

    #[test]
    fn a_stale_layer_record_is_rewritten_from_the_blob() {
        let (_dir, store) = demo();
        let good = store.layer_info(&layer()).unwrap();
        let wrong = LayerInfo {
            diff_id: digest::sha256_of(b"another layer"),
            size: 1,
        };
        store.write_layer_info(&layer(), &wrong).unwrap();
        let report = store.check(false).unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            lines,
            [format!(
                "layer record of blob {LAYER}: says diff ID {}, the blob's is {LAYER}",
                wrong.diff_id
            )]
        );
        repaired(&store);
        assert_eq!(store.layer_info(&layer()).unwrap(), good);
        assert_eq!(names(&store), ["docker.io/strata-demo/hello:1.0"]);
    }

    #[test]
    fn a_bogus_mount_record_and_a_bad_cache_entry_go() {
        let (dir, store) = demo();
        let id = store.lookup("strata-demo/hello:1.0").unwrap().id().clone();
        let real = dir.path().join("flat");
        std::fs::create_dir_all(&real).unwrap();
        let state = store.mounts_dir().join("s");
        std::fs::create_dir_all(&state).unwrap();
        let sound = MountRecord {
            image: id.clone(),
            name: "strata-demo/hello:1.0".into(),
            target: real,
            kind: MountKind::Flattened,
            state,
        };
        let bogus = MountRecord {
            target: dir.path().join("nowhere"),
            ..sound.clone()
        };
        store
            .update_mounts(|r| {
                r.push(sound.clone());
                r.push(bogus.clone());
                Ok(())
            })
            .unwrap();
        let cache = store.layer_cache_dir().join("sha256");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join(&LAYER[7..]), b"not a directory").unwrap();
        let report = store.check(false).unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("it is not a directory"), "{lines:?}");
        assert!(
            lines[1].ends_with("nowhere: the directory is not there"),
            "{lines:?}"
        );
        repaired(&store);
        assert_eq!(store.mounts().unwrap(), [sound]);
    }

    /// Unpacks the demo's first layer into the store's cache, as a mount
    /// does; gives its directory.
    fn unpack_first_layer(store: &Store) -> PathBuf {
        let blob = store.clone();
        let request = rootfs::CacheRequest {
            diff_id: layer(),
            label: LAYER.into(),
            open: Box::new(move || {
                let file = blob.open_blob(&layer()).map_err(std::io::Error::other)?;
                Ok(Box::new(BufReader::new(file)) as Box<dyn std::io::BufRead + Send>)
            }),
        };
        rootfs::LayerCache::new(store.layer_cache_dir())
            .ensure(request, &rootfs::UnpackOptions::default())
            .unwrap()
            .path
    }

    #[test]
    fn a_sound_unpacked_layer_passes_and_one_without_its_blob_is_left_alone() {
        let (_dir, store) = demo();
        let unpacked = unpack_first_layer(&store);
        // No blob has this diff ID: nothing to compare it with.
        let orphan = unpacked.with_file_name(digest::sha256_of(b"gone").digest());
        std::fs::create_dir(&orphan).unwrap();
        std::fs::write(orphan.join("whatever"), b"x").unwrap();
        let report = store.check(true).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.repaired.is_empty());
        assert!(unpacked.join("etc/motd").is_file() && orphan.is_dir());
    }

    #[test]
    fn an_unpacked_layer_that_differs_is_named_with_its_path_and_removed() {
        let (_dir, store) = demo();
        let unpacked = unpack_first_layer(&store);
        let motd = unpacked.join("etc/motd");
        let mut bytes = std::fs::read(&motd).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&motd, &bytes).unwrap();
        let report = store.check(false).unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            lines,
            [format!(
                "unpacked layer {}: /etc/motd: its content differs from the layer's",
                unpacked.display()
            )]
        );
        let report = repaired(&store);
        assert_eq!(
            report.repaired,
            [format!(
                "removed unpacked layer {} (a mount unpacks it again from its blob)",
                unpacked.display()
            )]
        );
        assert!(!unpacked.exists());
        // Unpacked again, it is sound.
        assert_eq!(unpack_first_layer(&store), unpacked);
        assert!(store.check(false).unwrap().problems.is_empty());
        assert_eq!(names(&store), ["docker.io/strata-demo/hello:1.0"]);
    }

    #[test]
    fn an_extra_file_or_a_changed_mode_is_found_even_without_a_layer_record() {
        let (_dir, store) = demo();
        let unpacked = unpack_first_layer(&store);
        // Without its record the layer is found through the image's config.
        std::fs::remove_file(store.layer_meta_path(&layer())).unwrap();
        std::fs::write(unpacked.join("usr/share/hello/extra"), b"x").unwrap();
        let lines: Vec<String> = store
            .check(false)
            .unwrap()
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            lines,
            [format!(
                "unpacked layer {}: /usr/share/hello/extra: a regular file the layer does not have",
                unpacked.display()
            )]
        );
        std::fs::remove_file(unpacked.join("usr/share/hello/extra")).unwrap();
        std::fs::set_permissions(
            unpacked.join("etc/os-release"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let problems = store.check(false).unwrap().problems;
        assert!(
            problems[0]
                .to_string()
                .ends_with(": /etc/os-release: mode 600 where the layer says 644"),
            "{problems:?}"
        );
    }
}
