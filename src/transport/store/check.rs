//! `strata system check`: is the store what its records say it is?
//!
//! Every blob must hash to its name; every entry of `index.json` must be a
//! descriptor of a manifest that is here whole (config and layers, or for an
//! index at least one child, each of those whole); a layer record must give
//! the diff ID the blob really has; an unpacked layer in the cache must be a
//! directory named by a diff ID; a mount record must name a stored image and
//! a tree that is there. A repair drops what is broken (a corrupt blob, the
//! names of an image that cannot be read whole, a wrong record, a bogus
//! mount record) and nothing else: what nothing names any more is left to
//! `prune`, so a repair never deletes a sound blob.
//!
//! What a killed command may leave (blobs no name reaches yet, unpacked
//! layers of removed images, records of removed blobs, ingest files) is not
//! wrong: the next collection sweeps it.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::digest::{self, Digest, Hasher};
use crate::image::{Index, ManifestKind, RawManifest, sniff_media_type};
use crate::rootfs;

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
        let mut blobs = HashMap::new();
        self.hash_blobs(&mut blobs)?;
        let _guard = self.lock()?;
        self.hash_blobs(&mut blobs)?;
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
        self.check_cache(&mut report);
        let mounts = self.check_mounts(&images, &mut report)?;
        self.check_artifacts(&blobs, &mut report);
        if repair {
            self.repair(&mut report, raw, &descriptors, &broken, mounts)?;
        }
        Ok(report)
    }

    /// Hashes every blob not hashed yet (`known`); forgets those gone. A
    /// blob is never changed once in place, only added or deleted, so a
    /// first pass without the lock stays true for what is still there.
    fn hash_blobs(&self, known: &mut HashMap<Digest, BlobState>) -> Result<(), StoreError> {
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
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                // Collected meanwhile (this pass may run without the lock).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("open", &path, e)),
            };
            let mut reader = BufReader::with_capacity(blobs::CHUNK, file);
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; blobs::CHUNK];
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| StoreError::io("read", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            let size = hasher.len();
            let actual = hasher.finish();
            let state = if actual == d {
                BlobState::Sound(size)
            } else {
                BlobState::Corrupt(actual)
            };
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

    fn check_cache(&self, report: &mut CheckReport) {
        let dir = self.layer_cache_dir().join("sha256");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let named = entry
                .file_name()
                .to_str()
                .is_some_and(|n| digest::parse(&format!("sha256:{n}")).is_ok());
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let reason = match (named, is_dir) {
                (false, _) => "its name is no diff ID",
                (true, false) => "it is not a directory",
                (true, true) => continue,
            };
            report.problems.push(Problem::BadCacheEntry {
                path,
                reason: reason.into(),
            });
        }
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

/// The mount points of this process's mount namespace.
fn mount_points() -> HashSet<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return HashSet::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mount_path(r"/plain\04"), r"/plain\04");
    }
}
