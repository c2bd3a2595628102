//! Every blob crosses to a target registry at most once in a whole mirror,
//! however many tags and repositories share it and however many transfers
//! run at once: a ledger per target registry records which repositories
//! hold each blob and which blob is being uploaded right now. A transfer
//! that finds its blob in flight waits for it, then mounts it from the
//! repository it landed in (one request, no bytes).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::image::RawManifest;
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::registry::{Client, Repository, RepositorySink};
use crate::transport::{Presence, Sink, TransportError};

#[derive(Debug)]
enum Entry {
    /// Being uploaded by some transfer now.
    InFlight,
    /// Held by these repositories of the registry.
    In(Vec<String>),
}

/// What one target registry holds, as far as this run knows.
#[derive(Debug, Default)]
pub struct Ledger {
    blobs: Mutex<HashMap<Digest, Entry>>,
    changed: Condvar,
    uploads: std::sync::atomic::AtomicU64,
    mounts: std::sync::atomic::AtomicU64,
}

/// The right to upload a blob; dropped without [`Claim::landed`] it frees
/// the blob for another transfer.
pub struct Claim<'a> {
    ledger: &'a Ledger,
    digest: Digest,
    done: bool,
}

impl Claim<'_> {
    /// The upload succeeded into `repository`.
    pub fn landed(mut self, repository: &str) {
        self.done = true;
        let mut blobs = self.ledger.lock();
        blobs.insert(self.digest.clone(), Entry::In(vec![repository.to_string()]));
        drop(blobs);
        self.ledger
            .uploads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.ledger.changed.notify_all();
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut blobs = self.ledger.lock();
        if matches!(blobs.get(&self.digest), Some(Entry::InFlight)) {
            blobs.remove(&self.digest);
        }
        drop(blobs);
        self.ledger.changed.notify_all();
    }
}

/// What a transfer should do about a blob.
pub enum Turn<'a> {
    /// Upload it: nobody has or is uploading it.
    Upload(Claim<'a>),
    /// These repositories hold it: mount from one.
    Mount(Vec<String>),
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Entry>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The repositories known to hold `digest`.
    pub fn holders(&self, digest: &Digest) -> Vec<String> {
        match self.lock().get(digest) {
            Some(Entry::In(repos)) => repos.clone(),
            _ => Vec::new(),
        }
    }

    /// Records that `repository` holds `digest`.
    pub fn record(&self, digest: &Digest, repository: &str) {
        let mut blobs = self.lock();
        match blobs.get_mut(digest) {
            Some(Entry::In(repos)) => {
                if !repos.iter().any(|r| r == repository) {
                    repos.push(repository.to_string());
                }
            }
            // An upload in flight elsewhere will record its own landing.
            Some(Entry::InFlight) => {}
            None => {
                blobs.insert(digest.clone(), Entry::In(vec![repository.to_string()]));
            }
        }
    }

    /// Decides a transfer's turn: waits while another transfer uploads the
    /// blob, then says where it landed; claims it when nobody has it.
    /// Only a transfer about to upload claims, so a wait is always for an
    /// upload that is running, never for one that waits in turn.
    pub fn turn(&self, digest: &Digest) -> Turn<'_> {
        let mut blobs = self.lock();
        loop {
            match blobs.get(digest) {
                Some(Entry::InFlight) => {
                    blobs = self.changed.wait(blobs).unwrap_or_else(|p| p.into_inner());
                }
                Some(Entry::In(repos)) => return Turn::Mount(repos.clone()),
                None => {
                    blobs.insert(digest.clone(), Entry::InFlight);
                    return Turn::Upload(Claim {
                        ledger: self,
                        digest: digest.clone(),
                        done: false,
                    });
                }
            }
        }
    }

    /// Blobs uploaded and mounted so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.uploads.load(std::sync::atomic::Ordering::SeqCst),
            self.mounts.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    fn mounted(&self) {
        self.mounts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A repository of a target registry, pushed to through its registry's
/// ledger: blobs the run already put anywhere on that registry are
/// mounted, blobs in flight are waited for, the rest uploaded once.
pub struct LedgerSink {
    inner: RepositorySink,
    client: Arc<Client>,
    repo: String,
    ledger: Arc<Ledger>,
    also: Vec<String>,
}

/// Repositories of the target registry that hold a blob: those the ledger
/// knows, then `also` (the source repository, when source and target are
/// one registry).
fn candidates(ledger: &Ledger, also: &[String], d: &Digest) -> Vec<String> {
    let mut out = ledger.holders(d);
    for a in also {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

impl LedgerSink {
    /// A sink into `repo`, sharing `ledger` with every other sink of the
    /// same registry in the run; blobs may also be mounted from `also`
    /// (repositories of the same registry that hold them).
    pub fn new(repo: Repository, ledger: Arc<Ledger>, also: Vec<String>) -> LedgerSink {
        let client = repo.client().clone();
        let name = repo.name().to_string();
        let lookup = ledger.clone();
        let extra = also.clone();
        let inner = RepositorySink::new(repo, Box::new(move |d| candidates(&lookup, &extra, d)));
        LedgerSink {
            inner,
            client,
            repo: name,
            ledger,
            also,
        }
    }

    /// The target registry's name.
    pub fn registry(&self) -> &str {
        self.client.registry()
    }

    /// Whether the blob is here now, or was mounted here from a repository
    /// the run knows holds it (no bytes sent).
    pub fn mount_known(&self, digest: &Digest) -> bool {
        let from = candidates(&self.ledger, &self.also, digest);
        !from.is_empty() && self.mount_from(digest, &from).is_some()
    }

    /// The repository's name on its registry.
    pub fn repository(&self) -> &str {
        &self.repo
    }

    /// The target registry's client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Mounts `digest` from the first of `from` that has it.
    fn mount_from(&self, digest: &Digest, from: &[String]) -> Option<String> {
        for repo in from {
            if *repo == self.repo {
                return Some(repo.clone());
            }
            if self
                .client
                .mount_blob(&self.repo, digest, repo)
                .unwrap_or(false)
            {
                self.ledger.record(digest, &self.repo);
                self.ledger.mounted();
                return Some(repo.clone());
            }
        }
        None
    }
}

impl Sink for LedgerSink {
    fn place(&self) -> String {
        self.inner.place()
    }

    fn parallelism(&self) -> usize {
        self.inner.parallelism()
    }

    fn verifies_digests(&self) -> bool {
        false
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        let holders = self.ledger.holders(d.digest());
        if holders.contains(&self.repo) {
            return Ok(Presence::Present);
        }
        if !holders.is_empty()
            && let Some(from) = self.mount_from(d.digest(), &holders)
        {
            return Ok(Presence::Mounted { from });
        }
        let presence = self.inner.has_blob(d)?;
        match &presence {
            Presence::Present => self.ledger.record(d.digest(), &self.repo),
            Presence::Mounted { .. } => {
                self.ledger.record(d.digest(), &self.repo);
                self.ledger.mounted();
            }
            Presence::Absent => {}
        }
        Ok(presence)
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        match self.ledger.turn(d.digest()) {
            Turn::Upload(claim) => {
                self.inner.put_blob(d, kind, content, progress)?;
                claim.landed(&self.repo);
                Ok(())
            }
            Turn::Mount(from) => {
                if self.mount_from(d.digest(), &from).is_some() {
                    return Ok(());
                }
                // The registry would not mount it (the blob went, or the
                // repository is not readable): upload it here.
                self.inner.put_blob(d, kind, content, progress)?;
                self.ledger.record(d.digest(), &self.repo);
                Ok(())
            }
        }
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        self.inner.put_manifest(m, names)
    }

    fn commit(&self) -> Result<(), TransportError> {
        self.inner.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_upload_the_rest_wait_then_mount() {
        let ledger = Ledger::default();
        let d = crate::digest::sha256_of(b"blob");
        let Turn::Upload(claim) = ledger.turn(&d) else {
            panic!("the first transfer uploads");
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| match ledger.turn(&d) {
                Turn::Mount(from) => from,
                Turn::Upload(_) => panic!("a second upload of the same blob"),
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            claim.landed("a/app");
            assert_eq!(waiter.join().unwrap(), vec!["a/app".to_string()]);
        });
        assert_eq!(ledger.counts(), (1, 0));
    }

    #[test]
    fn a_failed_upload_frees_the_blob_for_another() {
        let ledger = Ledger::default();
        let d = crate::digest::sha256_of(b"blob");
        match ledger.turn(&d) {
            Turn::Upload(claim) => drop(claim),
            Turn::Mount(_) => panic!("nothing holds it yet"),
        }
        assert!(matches!(ledger.turn(&d), Turn::Upload(_)));
    }

    #[test]
    fn holders_accumulate() {
        let ledger = Ledger::default();
        let d = crate::digest::sha256_of(b"blob");
        ledger.record(&d, "a");
        ledger.record(&d, "b");
        ledger.record(&d, "a");
        assert_eq!(ledger.holders(&d), vec!["a".to_string(), "b".to_string()]);
        assert!(matches!(ledger.turn(&d), Turn::Mount(r) if r.len() == 2));
    }
}
