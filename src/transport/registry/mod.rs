//! Registries: the distribution API as a source (pull) and a sink (push).
//!
//! - `client`: endpoint discovery, auth, the request loop and the API calls;
//! - `retry`: the retry policy (backoff with jitter, `Retry-After`) and the
//!   attempt budget one operation spends;
//! - `limit`: requests in flight per registry (adaptive) and overall;
//! - `auth`: challenges, Bearer tokens per scope, Basic;
//! - `credentials`: docker's `config.json` and credential helpers;
//! - `config`: strata's and docker's settings (insecure registries);
//! - `tls`: CA certificates in docker's `certs.d` layout;
//! - `error`: the registry's error body and what is worth retrying.

pub mod auth;
pub mod client;
pub mod config;
pub mod credentials;
pub mod error;
#[cfg(test)]
mod fake;
pub mod limit;
pub mod manifests;
pub mod retry;
pub mod settings;
pub mod tls;

use std::io::{self, Read};
use std::sync::Arc;

use oci_spec::image::Descriptor;
use reqwest::StatusCode;

use crate::copy::Copyable;
use crate::digest::Digest;
use crate::image::{Image, Index, ManifestKind, Platform, RawManifest};
use crate::pipe;
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::{BlobReader, Presence, Sink, Source, TransportError};

pub use client::{Client, ClientOptions, ClientStats, UploadRequest};
pub use error::RegistryError;
pub use limit::Limiter;
pub use retry::RetryPolicy;
pub use settings::Registries;

impl From<RegistryError> for TransportError {
    fn from(e: RegistryError) -> Self {
        TransportError::Registry(Box::new(e))
    }
}

/// Which platforms a pull takes from a multi-platform index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// One platform (the host's by default).
    One(Platform),
    /// Every image the index lists; the index itself is kept.
    All,
}

/// One repository of a registry.
#[derive(Clone)]
pub struct Repository {
    client: Arc<Client>,
    name: String,
}

impl Repository {
    /// The repository `name` (`library/nginx`) on the client's registry.
    pub fn new(client: Arc<Client>, name: &str) -> Repository {
        Repository {
            client,
            name: name.to_string(),
        }
    }

    /// The repository's path on its registry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Fetches what `reference` (a tag or digest) names: an image, or for
    /// an index the chosen platform's image (or all of them). Returns it
    /// with the digest of the document the reference named.
    pub fn fetch(
        &self,
        reference: &str,
        choice: &PlatformChoice,
    ) -> Result<(Copyable, Digest), TransportError> {
        let top = self.client.get_manifest(&self.name, reference)?;
        let top_digest = top.digest.clone();
        let place = self.place();
        let image_err = |e| TransportError::Image {
            place: place.clone(),
            source: Box::new(e),
        };
        match top.kind().map_err(image_err)? {
            ManifestKind::Image => Ok((Copyable::Image(Box::new(self.image(top)?)), top_digest)),
            ManifestKind::Index => {
                let index = Index::new(top).map_err(image_err)?;
                match choice {
                    PlatformChoice::One(p) => {
                        let child = index.select(p).ok_or_else(|| TransportError::NoPlatform {
                            place: self.place(),
                            wanted: p.to_string(),
                            available: platforms(&index),
                        })?;
                        let m = self
                            .client
                            .get_manifest(&self.name, child.digest().as_ref())?;
                        Ok((Copyable::Image(Box::new(self.image(m)?)), top_digest))
                    }
                    PlatformChoice::All => {
                        let mut children = Vec::new();
                        for child in index.children() {
                            let m = self
                                .client
                                .get_manifest(&self.name, child.digest().as_ref())?;
                            if m.kind().map_err(image_err)? != ManifestKind::Image {
                                continue;
                            }
                            children.push(self.image(m)?);
                        }
                        Ok((Copyable::Index(Box::new(index), children), top_digest))
                    }
                }
            }
        }
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
        Image::new(manifest, config).map_err(|e| TransportError::Image {
            place: self.place(),
            source: Box::new(e),
        })
    }

    /// The repository's tags, every page.
    pub fn tags(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let scope = auth::repository_scope(&self.name, &["pull"]);
        let mut url = format!("/v2/{}/tags/list", self.name);
        let mut out = Vec::new();
        loop {
            let (body, next) = self.client.get_page("list tags", &scope, &url)?;
            let page: Tags = serde_json::from_slice(&body)
                .map_err(|e| self.client.bad("list tags", e.to_string()))?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
    }
}

fn platforms(index: &Index) -> String {
    index
        .children()
        .iter()
        .filter_map(|c| c.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s = format!("{s}/{v}");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registry's catalog, every page.
pub fn catalog(client: &Client) -> Result<Vec<String>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Catalog {
        #[serde(default)]
        repositories: Option<Vec<String>>,
    }
    let mut url = "/v2/_catalog?n=1000".to_string();
    let mut out = Vec::new();
    loop {
        let (body, next) = client.get_page("list repositories", "registry:catalog:*", &url)?;
        let page: Catalog = serde_json::from_slice(&body)
            .map_err(|e| client.bad("list repositories", e.to_string()))?;
        out.extend(page.repositories.unwrap_or_default());
        match next {
            Some(n) => url = n,
            None => return Ok(out),
        }
    }
}

impl Source for Repository {
    fn place(&self) -> String {
        format!("{}/{}", self.client.registry(), self.name)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, TransportError> {
        Ok(Box::new(ResumingBlob {
            repo: self,
            digest: d.digest().clone(),
            size: d.size(),
            pos: 0,
            skip: 0,
            body: None,
            attempts: retry::Attempts::new(*self.client.retry_policy()),
        }))
    }
}

/// A blob download that survives broken connections: on an error or a
/// body cut short, it asks again with `Range: bytes=N-` from where it got
/// to (and skips what it already has if the server ignores the range).
/// Opening requests and resumptions spend one attempt budget, which bytes
/// received renew: a blob that always fails costs the policy's attempts in
/// requests, while a download that keeps making progress goes on.
/// Its errors are [`RegistryError`]s inside `io::Error::other`, which
/// [`TransportError::from_content`] takes out again.
struct ResumingBlob<'a> {
    repo: &'a Repository,
    digest: Digest,
    size: u64,
    pos: u64,
    skip: u64,
    body: Option<client::BlobBody>,
    attempts: retry::Attempts,
}

impl ResumingBlob<'_> {
    /// The body broke: waits to resume, or gives up when the budget is spent.
    fn broken(&mut self, cause: String) -> io::Result<()> {
        self.body = None;
        let wait = self.attempts.failed(None);
        let e = RegistryError::Connection {
            registry: self.repo.client.registry().to_string(),
            what: format!("download of {} from {}", self.digest, self.repo.place()),
            detail: format!(
                "the connection broke after {} of {} bytes: {cause}",
                self.pos, self.size
            ),
            retryable: true,
        };
        match wait {
            Some(wait) => {
                self.repo.client.note_resumed();
                std::thread::sleep(wait);
                Ok(())
            }
            None => Err(io::Error::other(RegistryError::Exhausted {
                attempts: self.attempts.failures(),
                last: Box::new(e),
            })),
        }
    }
}

impl Read for ResumingBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.size {
                // Done: the body's room in the limiter goes back now.
                self.body = None;
                return Ok(0);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            if self.body.is_none() {
                let body = self
                    .repo
                    .client
                    .get_blob(&self.repo.name, &self.digest, self.pos, &mut self.attempts)
                    .map_err(io::Error::other)?;
                self.skip = self.pos - body.start();
                self.body = Some(body);
            }
            let want = buf
                .len()
                .min((self.size - self.pos + self.skip).min(usize::MAX as u64) as usize);
            let result = self
                .body
                .as_mut()
                .map_or(Ok(0), |r| r.read(&mut buf[..want]));
            match result {
                Ok(0) => self.broken("the body ended early".into())?,
                Ok(mut n) => {
                    if self.skip > 0 {
                        let dropped = (self.skip as usize).min(n);
                        buf.copy_within(dropped..n, 0);
                        n -= dropped;
                        self.skip -= dropped as u64;
                        if n == 0 {
                            continue;
                        }
                    }
                    self.pos += n as u64;
                    self.attempts.progressed();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.broken(e.to_string())?,
            }
        }
    }
}

/// How blobs are uploaded: in one request, or in chunks (for registries or
/// proxies that limit a request's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Blobs larger than this go in chunks.
    pub chunked_above: u64,
    /// The chunk size.
    pub chunk: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunked_above: 256 << 20,
            chunk: 64 << 20,
        }
    }
}

/// Names repositories of the same registry that may hold a blob.
pub type MountCandidates = Box<dyn Fn(&Digest) -> Vec<String> + Send + Sync>;

/// One blob upload under way: what it is, how far it got, who to tell.
struct Upload<'p> {
    what: String,
    digest: Digest,
    noun: &'static str,
    sent: u64,
    progress: &'p (dyn Fn(u64) + Sync),
}

/// Pushing into a repository. Blobs are checked with HEAD, mounted from
/// another repository of the same registry when one is known to have them,
/// otherwise streamed; manifests go last, children before their index.
pub struct RepositorySink {
    repo: Repository,
    mount_candidates: MountCandidates,
    /// Held while the first check gets the push token, so checks running
    /// in parallel wait for it rather than each asking for a pull token.
    authorized: std::sync::Mutex<bool>,
    upload: UploadOptions,
}

impl RepositorySink {
    /// A sink into `repo`; `mount_candidates` names repositories of the same
    /// registry that may hold a blob.
    pub fn new(repo: Repository, mount_candidates: MountCandidates) -> Self {
        RepositorySink {
            repo,
            mount_candidates,
            authorized: std::sync::Mutex::new(false),
            upload: UploadOptions::default(),
        }
    }

    /// Uploads with these chunking rules.
    pub fn with_upload(mut self, upload: UploadOptions) -> Self {
        self.upload = upload;
        self
    }

    /// Streams `len` bytes of `content` as one upload request's body, read
    /// in 1 MiB chunks on another thread (the body must own its data).
    fn stream_request(
        &self,
        upload: &mut Upload<'_>,
        content: &mut (dyn Read + Send),
        request: client::UploadRequest<'_>,
        ok: &dyn Fn(StatusCode) -> bool,
    ) -> Result<client::UploadReply, TransportError> {
        let len = request.len;
        let (tx, body) = client::upload_body();
        let start = upload.sent;
        let progress = upload.progress;
        std::thread::scope(|s| {
            // Fails with the source's error, or with none when the request
            // stopped taking the body (its reply says why).
            let feeder = s.spawn(move || -> Result<u64, Option<io::Error>> {
                let mut left = len;
                let mut done = start;
                while left > 0 {
                    let chunk =
                        match pipe::read_chunk(content, left.min(pipe::CHUNK as u64) as usize) {
                            Ok(c) if c.is_empty() => Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the blob ended early",
                            )),
                            other => other,
                        };
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            // Aborts the request body, so nothing half-sent is taken.
                            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Err(Some(e));
                        }
                    };
                    left -= chunk.len() as u64;
                    done += chunk.len() as u64;
                    if tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_err() {
                        return Err(None);
                    }
                    progress(done);
                }
                Ok(done)
            });
            let reply = self
                .repo
                .client
                .upload(&upload.what, &self.repo.name, request, body, ok);
            let fed = feeder
                .join()
                .unwrap_or_else(|_| Err(Some(io::Error::other("upload feeder panicked"))));
            match (fed, reply) {
                // A source failure (a digest mismatch, a download that gave
                // up) is the real cause.
                (Err(Some(e)), _) => Err(TransportError::from_content(
                    e,
                    |reason| TransportError::Corrupt {
                        place: self.place(),
                        what: upload.noun,
                        digest: upload.digest.clone(),
                        reason,
                    },
                    || format!("upload {} to {}", upload.digest, self.place()),
                )),
                (Ok(done), Ok(r)) => {
                    upload.sent = done;
                    Ok(r)
                }
                (_, Err(e)) => Err(e.into()),
                (Err(None), Ok(_)) => Err(TransportError::io(
                    format!("upload {} to {}", upload.digest, self.place()),
                    io::Error::other("the registry answered before taking the whole blob"),
                )),
            }
        })
    }
}

impl Sink for RepositorySink {
    fn place(&self) -> String {
        self.repo.place()
    }

    fn parallelism(&self) -> usize {
        // The caller's setting decides (docker pushes 5 at once, skopeo
        // copies 6); this only bounds what a registry is asked to take.
        8
    }

    fn verifies_digests(&self) -> bool {
        false
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        {
            let mut authorized = self.authorized.lock().unwrap_or_else(|p| p.into_inner());
            if !*authorized {
                self.repo
                    .client
                    .authorize(&auth::repository_scope(&self.repo.name, &["pull", "push"]))?;
                *authorized = true;
            }
        }
        if self
            .repo
            .client
            .blob_size(&self.repo.name, d.digest())?
            .is_some()
        {
            return Ok(Presence::Present);
        }
        for from in (self.mount_candidates)(d.digest()) {
            if from == self.repo.name {
                continue;
            }
            if self
                .repo
                .client
                .mount_blob(&self.repo.name, d.digest(), &from)
                .unwrap_or(false)
            {
                return Ok(Presence::Mounted { from });
            }
        }
        Ok(Presence::Absent)
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let (mut url, min_chunk) = self.repo.client.start_upload(&self.repo.name)?;
        let size = d.size();
        let mut upload = Upload {
            what: format!("upload blob {}", d.digest()),
            digest: d.digest().clone(),
            noun: crate::transport::blob_noun(kind),
            sent: 0,
            progress,
        };
        let octets = ("content-type", "application/octet-stream".to_string());
        let chunked =
            size > self.upload.chunked_above || min_chunk.is_some_and(|m| m > 0 && size > m);
        if chunked {
            let chunk = self.upload.chunk.max(min_chunk.unwrap_or(0)).max(1);
            while upload.sent < size {
                let len = chunk.min(size - upload.sent);
                let range = (
                    "content-range",
                    format!("{}-{}", upload.sent, upload.sent + len - 1),
                );
                let headers = [octets.clone(), range];
                let request = UploadRequest {
                    method: reqwest::Method::PATCH,
                    url: &url,
                    headers: &headers,
                    len,
                };
                let reply = self.stream_request(&mut upload, content, request, &|s| {
                    s == StatusCode::ACCEPTED
                })?;
                if let Some(loc) = reply.headers.get("location").and_then(|v| v.to_str().ok()) {
                    url = client::absolute(&self.repo.client.endpoint()?.base, loc);
                }
            }
            let done = client::with_query(&url, "digest", d.digest().as_ref());
            let request = UploadRequest {
                method: reqwest::Method::PUT,
                url: &done,
                headers: &[],
                len: 0,
            };
            self.stream_request(&mut upload, &mut io::empty(), request, &|s| {
                s == StatusCode::CREATED
            })?;
        } else {
            let done = client::with_query(&url, "digest", d.digest().as_ref());
            let headers = [octets];
            let request = UploadRequest {
                method: reqwest::Method::PUT,
                url: &done,
                headers: &headers,
                len: size,
            };
            self.stream_request(&mut upload, content, request, &|s| s == StatusCode::CREATED)?;
        }
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        let tags: Vec<&str> = names.iter().filter_map(|n| n.tag()).collect();
        if tags.is_empty() {
            self.repo
                .client
                .put_manifest(&self.repo.name, m.digest.as_ref(), m)?;
        }
        for tag in tags {
            self.repo.client.put_manifest(&self.repo.name, tag, m)?;
        }
        Ok(())
    }

    fn commit(&self) -> Result<(), TransportError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use oci_spec::image::MediaType;

    use super::fake::{Answer, Fake, ranged};
    use super::*;

    fn client(fake: &Fake, attempts: u32) -> Arc<Client> {
        let options = ClientOptions {
            retry: RetryPolicy {
                attempts,
                base: Duration::from_millis(1),
                max: Duration::from_millis(4),
            },
            limiter: Some(Limiter::adaptive(8)),
            global: None,
            ..ClientOptions::default()
        };
        Arc::new(Client::new(&fake.addr, &options).unwrap())
    }

    fn blob(content: &[u8]) -> Descriptor {
        Descriptor::new(
            MediaType::ImageLayerGzip,
            content.len() as u64,
            crate::digest::sha256_of(content),
        )
    }

    fn read(repo: &Repository, d: &Descriptor) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        repo.open_blob(d).unwrap().read_to_end(&mut out)?;
        Ok(out)
    }

    /// The registry error an I/O error from a blob reader carries.
    fn inner(e: io::Error) -> RegistryError {
        *e.into_inner()
            .expect("carries an error")
            .downcast::<RegistryError>()
            .expect("a registry error")
    }

    const CONTENT: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn a_blob_that_always_fails_costs_the_policys_attempts_in_requests() {
        let fake = Fake::start(|r, _| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            _ => Answer::status(503),
        });
        let c = client(&fake, 4);
        // Discovery tries HTTPS twice on loopback before plain HTTP: those
        // count as requests sent too.
        c.endpoint().unwrap();
        let before = c.stats().requests;
        let repo = Repository::new(c.clone(), "r");
        let e = inner(read(&repo, &blob(CONTENT)).unwrap_err());
        assert!(e.retries_exhausted() && e.status() == Some(503), "{e}");
        assert!(e.to_string().contains("download blob sha256:"), "{e}");
        assert_eq!(fake.count("GET", "/blobs/"), 4);
        let stats = c.stats();
        assert_eq!(
            (stats.requests - before, stats.retries),
            (4, 3),
            "{stats:?}"
        );
    }

    #[test]
    fn a_blob_that_fails_fewer_times_than_the_attempts_arrives() {
        let fake = Fake::start(|r, n| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            // The ping was request 0; blob requests 1 to 3 fail.
            _ if n <= 3 => Answer::status(502),
            _ => Answer::body(CONTENT),
        });
        let repo = Repository::new(client(&fake, 4), "r");
        assert_eq!(read(&repo, &blob(CONTENT)).unwrap(), CONTENT);
        assert_eq!(fake.count("GET", "/blobs/"), 4);
        // One attempt fewer is not enough.
        let fake = Fake::start(|r, n| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            _ if n <= 3 => Answer::status(502),
            _ => Answer::body(CONTENT),
        });
        let repo = Repository::new(client(&fake, 3), "r");
        assert!(read(&repo, &blob(CONTENT)).is_err());
        assert_eq!(fake.count("GET", "/blobs/"), 3);
    }

    #[test]
    fn opening_and_resuming_a_download_share_one_budget() {
        // 503, then a body broken before its first byte, and again: no
        // progress, so four tries end it whichever way each one failed.
        let fake = Fake::start(|r, n| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            _ if n % 2 == 1 => Answer::status(503),
            _ => Answer::body(CONTENT).cut(0),
        });
        let c = client(&fake, 4);
        let repo = Repository::new(c.clone(), "r");
        let e = inner(read(&repo, &blob(CONTENT)).unwrap_err());
        assert!(e.retries_exhausted(), "{e}");
        assert_eq!(fake.count("GET", "/blobs/"), 4);
        let stats = c.stats();
        assert_eq!(stats.retries + stats.resumed, 3, "{stats:?}");
        assert_eq!(c.limiter().in_flight(), 0);
    }

    #[test]
    fn a_download_that_keeps_making_progress_goes_on() {
        // Every answer breaks after half of what it has to send: far more
        // breaks than attempts, but each one brings bytes.
        let fake = Fake::start(|r, _| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            _ => {
                let a = ranged(CONTENT, r.range.as_deref());
                let half = a.body.len().div_ceil(2);
                a.cut(half)
            }
        });
        let c = client(&fake, 2);
        let repo = Repository::new(c.clone(), "r");
        assert_eq!(read(&repo, &blob(CONTENT)).unwrap(), CONTENT);
        let gets = fake
            .log()
            .into_iter()
            .filter(|s| s.path.contains("/blobs/"))
            .collect::<Vec<_>>();
        assert!(gets.len() > 3, "{gets:?}");
        assert!(
            gets[1..].iter().all(|s| s.range.is_some()),
            "resumed with Range: {gets:?}"
        );
        assert_eq!(c.stats().resumed as usize, gets.len() - 1);
        // Every body's room in the limiter went back.
        assert_eq!(c.limiter().in_flight(), 0);
    }

    #[test]
    fn throttled_requests_wait_lower_the_limit_and_succeed() {
        let fake = Fake::start(|r, n| match r.path.as_str() {
            "/v2/" => Answer::status(200),
            _ if n <= 2 => Answer::status(429).header("Retry-After", "0"),
            _ => Answer::status(200).header("Content-Length", "7"),
        });
        let c = client(&fake, 4);
        assert_eq!(
            c.blob_size("r", &crate::digest::sha256_of(b"x")).unwrap(),
            Some(0)
        );
        let stats = c.stats();
        assert_eq!((stats.throttled, stats.retries), (2, 2), "{stats:?}");
        assert!(stats.limit < stats.max_in_flight, "{stats:?}");
        assert_eq!(stats.max_in_flight, 8);
    }

    #[test]
    fn a_client_that_never_reaches_the_registry_tries_the_policys_attempts() {
        let fake = Fake::start(|_, _| Answer::status(503));
        let c = client(&fake, 3);
        let e = c.endpoint().unwrap_err();
        assert!(e.retries_exhausted(), "{e}");
        assert_eq!(fake.count("GET", "/v2/"), 3);
        // The retried failure is not retried again by the next call's loop.
        let e = c
            .blob_size("r", &crate::digest::sha256_of(b"x"))
            .unwrap_err();
        assert!(e.retries_exhausted(), "{e}");
        assert_eq!(fake.count("GET", "/v2/"), 6);
    }

    #[test]
    fn uploads_are_tried_once_and_say_they_were_not_retried() {
        let puts = Arc::new(AtomicUsize::new(0));
        let seen = puts.clone();
        let fake = Fake::start(move |r, _| match (r.method.as_str(), r.path.as_str()) {
            (_, "/v2/") => Answer::status(200),
            ("PUT", _) => {
                seen.fetch_add(1, Ordering::SeqCst);
                Answer::status(503)
            }
            _ => Answer::status(500),
        });
        let c = client(&fake, 5);
        c.endpoint().unwrap();
        let before = c.stats().requests;
        let (tx, body) = client::upload_body();
        tx.blocking_send(Ok(bytes::Bytes::from_static(b"abc")))
            .unwrap();
        drop(tx);
        let url = format!("http://{}/v2/r/blobs/uploads/x?digest=sha256:0", fake.addr);
        let request = UploadRequest {
            method: reqwest::Method::PUT,
            url: &url,
            headers: &[],
            len: 3,
        };
        let e = c
            .upload("upload blob", "r", request, body, &|s| {
                s == StatusCode::CREATED
            })
            .err()
            .expect("503");
        assert!(e.is_retryable() && !e.retries_exhausted(), "{e}");
        assert_eq!(puts.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats().requests - before, 1);
    }
}
