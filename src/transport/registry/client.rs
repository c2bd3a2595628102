//! A client for one registry: endpoint discovery (HTTPS, or plain HTTP for
//! registries marked insecure), authentication, retries, and the
//! distribution API calls strata uses.
//!
//! Every request goes through `Client::dispatch`, which holds room in the
//! registry's [`Limiter`] (and the global one) and counts it; every retry
//! goes through one loop ([`Client::retrying`]) that spends an [`Attempts`]
//! budget under the client's [`RetryPolicy`]. Uploads, whose bodies stream
//! and cannot be sent twice, are tried once: their caller retries the whole
//! upload.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};

use crate::digest::{self, Digest};
use crate::image::{RawManifest, sniff_media_type};

use super::auth::{Challenge, Credential, TokenCache, TokenResponse, parse_challenge};
use super::error::{RegistryError, parse_error_body};
use super::limit::{DEFAULT_MAX_IN_FLIGHT, Limiter, Permit};
use super::retry::{Attempts, RetryPolicy, parse_retry_after};
use super::tls::TlsConfig;

/// The manifest types strata asks for, most specific first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

/// How a registry is reached once discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host:port` or `http://host:port`.
    pub base: String,
    /// False when TLS certificates are not checked (an insecure registry).
    pub verified: bool,
}

/// How to reach registries (which are insecure, where CA certificates
/// are), how to retry, and how many requests may be in flight.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (host[:port]) that may be reached without TLS verification
    /// or over plain HTTP. Any registry on 127.0.0.0/8 or `localhost` is too.
    pub insecure: Vec<String>,
    /// TLS trust beyond the system's roots.
    pub tls: TlsConfig,
    /// How failed requests are retried (the copy engine retries uploads
    /// under the same policy).
    pub retry: RetryPolicy,
    /// Requests in flight to the registry at most: the ceiling of its
    /// adaptive limit.
    pub max_in_flight: usize,
    /// The registry's limiter. `None` takes the one that every client of
    /// the same registry in this process shares ([`Limiter::for_registry`]).
    pub limiter: Option<Arc<Limiter>>,
    /// A bound across registries: by default the process-wide one
    /// ([`Limiter::global`]); `None` for no such bound.
    pub global: Option<Arc<Limiter>>,
    /// The credential to use, if any.
    pub credential: Option<Credential>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            tls: TlsConfig::default(),
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            limiter: None,
            global: Some(Limiter::global()),
            credential: None,
        }
    }
}

/// What a client has done, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// HTTP requests tried: endpoint discovery's probes, tokens, uploads
    /// and every retry included.
    pub requests: u64,
    /// Answers with 429 (too many requests).
    pub throttled: u64,
    /// Requests sent again after a retryable failure.
    pub retries: u64,
    /// Broken downloads resumed from where they got to.
    pub resumed: u64,
    /// The registry's current limit on requests in flight.
    pub limit: usize,
    /// The most that limit may grow to.
    pub max_in_flight: usize,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    resumed: AtomicU64,
}

/// A request's room in the registry's limiter and the global one.
struct Permits {
    registry: Permit,
    global: Option<Permit>,
}

impl Permits {
    fn stream(&mut self) {
        self.registry.stream();
        if let Some(g) = &mut self.global {
            g.stream();
        }
    }
}

/// A registry's answer. It keeps its room in the limiters until dropped,
/// so a body read whole (a manifest, an error) counts as in flight.
pub struct Reply {
    response: Response,
    permits: Permits,
}

impl Reply {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The body's announced length.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }
}

impl Read for Reply {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.response.read(buf)
    }
}

/// A blob download's body. It counts as in flight until dropped, but does
/// not keep other requests waiting (see [`super::limit`]): whoever reads it
/// may need another request to the same registry first.
pub struct BlobBody {
    reply: Reply,
    start: u64,
}

impl BlobBody {
    /// Where in the blob the body starts: the offset asked for, or 0 when
    /// the registry ignored the range.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl Read for BlobBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reply.read(buf)
    }
}

/// A client for one registry.
pub struct Client {
    registry: String,
    api_host: String,
    verified: Http,
    lax: Http,
    insecure: bool,
    endpoint: OnceLock<Endpoint>,
    credential: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
    tokens: TokenCache,
    fetching: Mutex<()>,
    probing: Mutex<()>,
    retry: RetryPolicy,
    limiter: Arc<Limiter>,
    global: Option<Arc<Limiter>>,
    counters: Counters,
    roots: Vec<reqwest::Certificate>,
    uploader: OnceLock<Result<Uploader, String>>,
}

/// Uploads go through reqwest's async client on a small runtime of
/// strata's own: the blocking client re-chunks a request body into 8 KiB
/// writes, while a streamed async body sends the 1 MiB chunks strata reads.
struct Uploader {
    runtime: tokio::runtime::Runtime,
    verified: reqwest::Client,
    lax: reqwest::Client,
}

/// A request body fed chunk by chunk from another thread.
struct ChunkStream(tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>);

impl futures_core::Stream for ChunkStream {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The sending end of an upload body: chunks, or an error that aborts it.
pub type BodySender = tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>;

/// A body for [`Client::upload`] and the sender that feeds it.
pub fn upload_body() -> (BodySender, UploadBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    (tx, UploadBody(rx))
}

/// The receiving end of an upload body.
pub struct UploadBody(tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>);

/// One upload request: where, how, and how long its body is.
pub struct UploadRequest<'a> {
    /// `PUT` or `PATCH`.
    pub method: reqwest::Method,
    /// The upload session's URL (with `digest=` for the last request).
    pub url: &'a str,
    /// Extra headers (`Content-Type`, `Content-Range`).
    pub headers: &'a [(&'a str, String)],
    /// The body's length in bytes.
    pub len: u64,
}

/// What an upload request answered: its status and headers.
pub struct UploadReply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers (`Location` for the next chunk).
    pub headers: reqwest::header::HeaderMap,
}

/// True for registries docker treats as insecure by default.
pub fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn user_agent() -> String {
    format!("strata/{}", env!("CARGO_PKG_VERSION"))
}

impl Client {
    /// A client for `registry` (a reference's domain: `docker.io`, `host:port`).
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Client, RegistryError> {
        let api_host = if registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        let build = |verify: bool| {
            let mut b = Http::builder()
                .user_agent(user_agent())
                .timeout(None::<Duration>)
                .connect_timeout(Duration::from_secs(30))
                .tcp_keepalive(Duration::from_secs(30))
                .pool_max_idle_per_host(8);
            if verify {
                for cert in options.tls.roots_for(registry)? {
                    b = b.add_root_certificate(cert);
                }
            } else {
                b = b.danger_accept_invalid_certs(true);
            }
            b.build().map_err(|e| RegistryError::Policy {
                registry: registry.into(),
                detail: format!("cannot set up HTTP: {e}"),
            })
        };
        let insecure = is_loopback(registry) || options.insecure.iter().any(|r| r == registry);
        let roots = options.tls.roots_for(registry)?;
        Ok(Client {
            roots,
            uploader: OnceLock::new(),
            registry: registry.to_string(),
            api_host,
            verified: build(true)?,
            lax: build(false)?,
            insecure,
            endpoint: OnceLock::new(),
            credential: options.credential.clone(),
            challenge: Mutex::new(None),
            tokens: TokenCache::default(),
            fetching: Mutex::new(()),
            probing: Mutex::new(()),
            retry: options.retry,
            limiter: options
                .limiter
                .clone()
                .unwrap_or_else(|| Limiter::for_registry(registry, options.max_in_flight)),
            global: options.global.clone(),
            counters: Counters::default(),
        })
    }

    /// The registry's name as references write it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// How this client retries.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The limiter this client's requests share with other clients of the
    /// same registry.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// What this client has done so far, and the registry's current limit.
    pub fn stats(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&self.counters.requests),
            throttled: get(&self.counters.throttled),
            retries: get(&self.counters.retries),
            resumed: get(&self.counters.resumed),
            limit: self.limiter.limit(),
            max_in_flight: self.limiter.max(),
        }
    }

    /// Counts a broken download resumed by its reader.
    pub(crate) fn note_resumed(&self) {
        self.counters.resumed.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits for room in the registry's limiter, then the global one (always
    /// in this order, so two clients cannot hold one each and wait for the
    /// other).
    fn permits(&self) -> Permits {
        let registry = self.limiter.acquire();
        let global = self.global.as_ref().map(|g| g.acquire());
        Permits { registry, global }
    }

    /// Counts an answer and tells the registry's limiter how it went.
    fn observe(&self, permits: &Permits, status: StatusCode) {
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            permits.registry.throttled();
        } else if !status.is_server_error() {
            permits.registry.succeeded();
        }
    }

    /// Sends one request: the only place a repeatable request leaves. The
    /// caller must hold no other [`Reply`] of this client meanwhile (a
    /// reply's room goes back when it is dropped): two of one thread's
    /// requests waiting on each other could wait for ever.
    fn dispatch(&self, what: &str, req: RequestBuilder) -> Result<Reply, RegistryError> {
        let permits = self.permits();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let response = req.send().map_err(|e| self.connection_error(what, &e))?;
        self.observe(&permits, response.status());
        Ok(Reply { response, permits })
    }

    /// The one retry loop: runs `once` until it succeeds, fails for good,
    /// or `attempts` is spent, waiting as the policy (or the registry's
    /// `Retry-After`) says between tries. A failure that spent the budget
    /// comes back as [`RegistryError::Exhausted`], so nobody retries it again.
    pub fn retrying<T>(
        &self,
        attempts: &mut Attempts,
        mut once: impl FnMut() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        loop {
            let e = match once() {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !e.is_retryable() || e.retries_exhausted() {
                return Err(e);
            }
            let next = if e.status() == Some(429) {
                attempts.throttled(e.retry_after())
            } else {
                attempts.failed(e.retry_after())
            };
            match next {
                Some(wait) => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(wait);
                }
                None => {
                    return Err(RegistryError::Exhausted {
                        attempts: attempts.tries(),
                        last: Box::new(e),
                    });
                }
            }
        }
    }

    fn http(&self) -> &Http {
        match self.endpoint.get() {
            Some(e) if !e.verified => &self.lax,
            _ => &self.verified,
        }
    }

    fn connection_error(&self, what: &str, e: &reqwest::Error) -> RegistryError {
        // reqwest's text can include the URL, never headers: no secret leaks.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let text = s.to_string();
            if !detail.contains(&text) {
                detail = format!("{detail}: {text}");
            }
            source = s.source();
        }
        RegistryError::Connection {
            registry: self.registry.clone(),
            what: what.to_string(),
            detail,
            retryable: e.is_connect() || e.is_timeout() || e.is_body() || e.is_request(),
        }
    }

    /// Finds how to reach the registry: HTTPS with verification; for an
    /// insecure registry HTTPS without verification, then plain HTTP, as
    /// docker does. Remembered for the client's life. Retried under the
    /// client's policy.
    pub fn endpoint(&self) -> Result<&Endpoint, RegistryError> {
        if let Some(e) = self.endpoint.get() {
            return Ok(e);
        }
        self.retrying(&mut Attempts::new(self.retry), || self.discover())
    }

    /// One try at [`Client::endpoint`]. One thread probes; the others
    /// wait for its answer rather than each probing the registry.
    fn discover(&self) -> Result<&Endpoint, RegistryError> {
        if let Some(e) = self.endpoint.get() {
            return Ok(e);
        }
        let _one = self.probing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = self.endpoint.get() {
            return Ok(e);
        }
        let mut candidates = vec![(format!("https://{}", self.api_host), true, &self.verified)];
        if self.insecure {
            candidates.push((format!("https://{}", self.api_host), false, &self.lax));
            candidates.push((format!("http://{}", self.api_host), false, &self.verified));
        }
        let mut last: Option<RegistryError> = None;
        for (base, verified, http) in candidates {
            // HTTPS without verification is worth trying only when the
            // registry spoke TLS and its certificate was the problem; a
            // server that does not speak TLS at all is plain HTTP.
            if !verified
                && base.starts_with("https://")
                && last
                    .as_ref()
                    .is_some_and(|e| !e.to_string().to_lowercase().contains("certificate"))
            {
                continue;
            }
            match self.ping(http, &base) {
                Ok(()) => return Ok(self.endpoint.get_or_init(|| Endpoint { base, verified })),
                // The registry answered there: its error is the answer
                // (retried by the caller when it is worth it).
                Err(e @ RegistryError::Status { .. }) => return Err(e),
                // A TLS failure or a refused connection: the next candidate
                // is the answer.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Policy {
            registry: self.registry.clone(),
            detail: "no endpoint".into(),
        }))
    }

    fn ping(&self, http: &Http, base: &str) -> Result<(), RegistryError> {
        let url = format!("{base}/v2/");
        let reply = self.dispatch(&format!("cannot reach {url}"), http.get(&url))?;
        if let Some(c) = reply
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        {
            *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
        }
        if reply.status().is_success() || reply.status() == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        Err(self.status_error("ping", reply))
    }

    /// Builds an error from a failed response, reading its error body.
    pub fn status_error(&self, what: &str, resp: Reply) -> RegistryError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        let _ = resp.take(64 << 10).read_to_end(&mut body);
        RegistryError::Status {
            registry: self.registry.clone(),
            what: what.into(),
            status,
            errors: parse_error_body(&body),
            retry_after,
        }
    }

    /// The Authorization header for `scope`, fetching a token if the
    /// registry wants Bearer auth and none is cached.
    fn authorization(&self, scope: &str, fresh: bool) -> Result<Option<String>, RegistryError> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        match challenge.scheme.as_str() {
            "basic" => Ok(self.credential.as_ref().and_then(Credential::basic_header)),
            "bearer" => {
                if !fresh && let Some(t) = self.cached_token(scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                // One fetch at a time: parallel transfers that all lack a
                // token wait for the first one's instead of each asking.
                let _one = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
                if !fresh && let Some(t) = self.cached_token(scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&challenge, scope)?;
                Ok(Some(format!("Bearer {token}")))
            }
            _ => Ok(None),
        }
    }

    /// Gets (and caches) a token for `scope` ahead of use, so a push asks
    /// once for `pull,push` rather than first for `pull`.
    pub fn authorize(&self, scope: &str) -> Result<(), RegistryError> {
        self.retrying(&mut Attempts::new(self.retry), || {
            self.discover()?;
            self.authorization(scope, false).map(|_| ())
        })
    }

    /// A cached token for `scope`; a push token serves for pulls of the
    /// same repository too.
    fn cached_token(&self, scope: &str) -> Option<String> {
        self.tokens.get(scope).or_else(|| {
            let repo = scope.strip_suffix(":pull")?;
            self.tokens.get(&format!("{repo}:pull,push"))
        })
    }

    fn fetch_token(&self, challenge: &Challenge, scope: &str) -> Result<String, RegistryError> {
        let auth_err = |detail: String| RegistryError::Auth {
            registry: self.registry.clone(),
            what: "get a token".into(),
            detail,
        };
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| auth_err("the registry's Bearer challenge names no realm".into()))?;
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = challenge.params.get("service") {
            query.push(("service", service));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let http = self.http();
        let req = match &self.credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "strata"),
                ];
                form.extend(query.iter().copied());
                http.post(realm)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form_encode(&form))
            }
            Some(c) => {
                let mut r = http.get(with_form(realm, &query));
                if let Some(h) = c.basic_header() {
                    r = r.header(AUTHORIZATION, h);
                }
                r
            }
            None => http.get(with_form(realm, &query)),
        };
        let resp = self.dispatch("get a token", req)?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let detail = if self.credential.is_some() {
                "the token service refused the credentials (wrong user name or password?)"
            } else {
                "the token service requires credentials: run strata login"
            };
            return Err(auth_err(format!("{detail} (HTTP {})", status.as_u16())));
        }
        if !status.is_success() {
            return Err(self.status_error("get a token", resp));
        }
        let mut body = Vec::new();
        resp.take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| auth_err(format!("cannot read the token service's answer: {e}")))?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| auth_err(format!("the token service's answer is not a token: {e}")))?;
        let (token, expires) = parsed
            .into_token()
            .ok_or_else(|| auth_err("the token service's answer holds no token".into()))?;
        self.tokens.put(scope, token.clone(), expires);
        Ok(token)
    }

    /// Sends a request with authentication, answering one challenge, and
    /// retrying retryable failures under the client's policy (honouring
    /// `Retry-After`). `make` builds the request from the HTTP client and
    /// the base URL; it is called again for each attempt, so its body must
    /// be repeatable.
    pub fn send(
        &self,
        what: &str,
        scope: &str,
        make: &dyn Fn(&Http, &str) -> RequestBuilder,
        ok: &dyn Fn(StatusCode) -> bool,
    ) -> Result<Reply, RegistryError> {
        self.send_within(what, scope, make, ok, &mut Attempts::new(self.retry))
    }

    /// [`Client::send`], spending a budget the caller shares with other
    /// tries of the same operation.
    pub fn send_within(
        &self,
        what: &str,
        scope: &str,
        make: &dyn Fn(&Http, &str) -> RequestBuilder,
        ok: &dyn Fn(StatusCode) -> bool,
        attempts: &mut Attempts,
    ) -> Result<Reply, RegistryError> {
        self.retrying(attempts, || self.send_once(what, scope, make, ok))
    }

    /// One attempt: authenticate, send, and on a 401 refresh the token and
    /// send once more.
    pub fn send_once(
        &self,
        what: &str,
        scope: &str,
        make: &dyn Fn(&Http, &str) -> RequestBuilder,
        ok: &dyn Fn(StatusCode) -> bool,
    ) -> Result<Reply, RegistryError> {
        let endpoint = self.discover()?.clone();
        let mut fresh = false;
        loop {
            let mut req = make(self.http(), &endpoint.base);
            if let Some(h) = self.authorization(scope, fresh)? {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = self.dispatch(what, req)?;
            let status = resp.status();
            // A 401 with a challenge: the token expired or the scope grew.
            if status == StatusCode::UNAUTHORIZED
                && !fresh
                && let Some(c) = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge)
            {
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
                self.tokens.forget(scope);
                fresh = true;
                continue;
            }
            if ok(status) {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED {
                let detail = if self.credential.is_some() {
                    "the registry refused the credentials"
                } else {
                    "authentication required: run strata login"
                };
                return Err(RegistryError::Auth {
                    registry: self.registry.clone(),
                    what: what.into(),
                    detail: detail.into(),
                });
            }
            return Err(self.status_error(what, resp));
        }
    }

    /// Fetches a manifest or index by tag or digest, checking its digest
    /// when asked by digest and against `Docker-Content-Digest` otherwise.
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        let what = format!("manifest for {repository}:{reference}");
        let scope = super::auth::repository_scope(repository, &["pull"]);
        let resp = self.send(
            &what,
            &scope,
            &|h, base| {
                h.get(format!("{base}/v2/{repository}/manifests/{reference}"))
                    .header(ACCEPT, MANIFEST_ACCEPT)
            },
            &|s| s.is_success(),
        )?;
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        resp.take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| self.bad(&what, format!("cannot read the manifest: {e}")))?;
        let digest = digest::sha256_of(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            header_digest.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected
            && expected != digest.to_string()
        {
            return Err(self.bad(
                &what,
                format!("the manifest's bytes hash to {digest}, not {expected}"),
            ));
        }
        let media_type = sniff_media_type(&bytes, header_type.as_deref());
        Ok(RawManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Stores a manifest under a tag or its digest; returns the digest the
    /// registry reports.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        let what = format!("put manifest {repository}:{reference}");
        let scope = super::auth::repository_scope(repository, &["pull", "push"]);
        let body = m.bytes.clone();
        let media_type = m.media_type.clone();
        self.send(
            &what,
            &scope,
            &|h, base| {
                h.put(format!("{base}/v2/{repository}/manifests/{reference}"))
                    .header(CONTENT_TYPE, media_type.as_str())
                    .body(body.clone())
            },
            &|s| s == StatusCode::CREATED || s.is_success(),
        )?;
        Ok(())
    }

    /// The blob's size when the repository has it.
    pub fn blob_size(&self, repository: &str, d: &Digest) -> Result<Option<u64>, RegistryError> {
        let what = format!("check blob {d}");
        let scope = super::auth::repository_scope(repository, &["pull"]);
        let resp = self.send(
            &what,
            &scope,
            &|h, base| h.head(format!("{base}/v2/{repository}/blobs/{d}")),
            &|s| s.is_success() || s == StatusCode::NOT_FOUND,
        )?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(resp.content_length().unwrap_or(0)))
    }

    /// Opens a blob from `offset` (a `Range` request when not at 0),
    /// spending `attempts`, which the caller shares with the resumptions of
    /// the same download. The body says where it starts (0 when the server
    /// ignored the range).
    pub fn get_blob(
        &self,
        repository: &str,
        d: &Digest,
        offset: u64,
        attempts: &mut Attempts,
    ) -> Result<BlobBody, RegistryError> {
        let what = format!("download blob {d}");
        let scope = super::auth::repository_scope(repository, &["pull"]);
        let mut reply = self.send_within(
            &what,
            &scope,
            &|h, base| {
                let r = h.get(format!("{base}/v2/{repository}/blobs/{d}"));
                if offset > 0 {
                    r.header("range", format!("bytes={offset}-"))
                } else {
                    r
                }
            },
            &|s| s.is_success(),
            attempts,
        )?;
        let start = if reply.status() == StatusCode::PARTIAL_CONTENT {
            offset
        } else {
            0
        };
        reply.permits.stream();
        Ok(BlobBody { reply, start })
    }

    /// Asks the registry to link a blob from another repository of the
    /// same registry. True when it did (201).
    pub fn mount_blob(
        &self,
        repository: &str,
        d: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let what = format!("mount blob {d} from {from}");
        let scope = format!(
            "{} {}",
            super::auth::repository_scope(repository, &["pull", "push"]),
            super::auth::repository_scope(from, &["pull"])
        );
        let resp = self.send(
            &what,
            &scope,
            &|h, base| {
                h.post(format!(
                    "{base}/v2/{repository}/blobs/uploads/?mount={d}&from={from}"
                ))
                .header("content-length", "0")
            },
            &|s| s.is_success(),
        )?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let started = location(&resp);
        // Its room in the limiter goes back before the next request asks.
        drop(resp);
        // 202: the registry started an ordinary upload instead; cancel it.
        if let Some(loc) = started {
            let base = self.endpoint()?.base.clone();
            let url = absolute(&base, &loc);
            let _ = self.send_once(
                "cancel upload",
                &super::auth::repository_scope(repository, &["pull", "push"]),
                &|h, _| h.delete(url.as_str()),
                &|_| true,
            );
        }
        Ok(false)
    }

    /// Starts an upload session; returns its absolute URL and the minimum
    /// chunk size the registry asks for, if any.
    pub fn start_upload(&self, repository: &str) -> Result<(String, Option<u64>), RegistryError> {
        let what = format!("start an upload to {repository}");
        let scope = super::auth::repository_scope(repository, &["pull", "push"]);
        let resp = self.send(
            &what,
            &scope,
            &|h, base| {
                h.post(format!("{base}/v2/{repository}/blobs/uploads/"))
                    .header("content-length", "0")
            },
            &|s| s == StatusCode::ACCEPTED,
        )?;
        let min_chunk = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let loc = location(&resp)
            .ok_or_else(|| self.bad(&what, "the registry gave no upload location".into()))?;
        drop(resp);
        Ok((absolute(&self.endpoint()?.base, &loc), min_chunk))
    }

    /// Sets up the upload client now rather than at the first upload (it
    /// starts a runtime and loads the system's certificates), for a caller
    /// that can do so while it waits on something else.
    pub fn prepare_uploads(&self) -> Result<(), RegistryError> {
        self.uploader().map(|_| ())
    }

    fn uploader(&self) -> Result<&Uploader, RegistryError> {
        let made = self.uploader.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let build = |verify: bool| {
                let mut b = reqwest::Client::builder()
                    .user_agent(user_agent())
                    .connect_timeout(Duration::from_secs(30))
                    .tcp_keepalive(Duration::from_secs(30));
                if verify {
                    for cert in &self.roots {
                        b = b.add_root_certificate(cert.clone());
                    }
                } else {
                    b = b.danger_accept_invalid_certs(true);
                }
                b.build().map_err(|e| e.to_string())
            };
            Ok(Uploader {
                runtime,
                verified: build(true)?,
                lax: build(false)?,
            })
        });
        made.as_ref().map_err(|e| RegistryError::Policy {
            registry: self.registry.clone(),
            detail: format!("cannot set up uploads: {e}"),
        })
    }

    /// Sends one upload request (`PUT` or `PATCH` to `url`) whose body is
    /// `len` bytes streamed from `body`. It cannot be repeated: the caller
    /// retries the whole upload. Authentication was settled by
    /// [`Client::start_upload`].
    pub fn upload(
        &self,
        what: &str,
        repository: &str,
        request: UploadRequest<'_>,
        body: UploadBody,
        ok: &dyn Fn(StatusCode) -> bool,
    ) -> Result<UploadReply, RegistryError> {
        let UploadRequest {
            method,
            url,
            headers,
            len,
        } = request;
        let scope = super::auth::repository_scope(repository, &["pull", "push"]);
        let auth = self.authorization(&scope, false)?;
        let uploader = self.uploader()?;
        let http = match self.endpoint.get() {
            Some(e) if !e.verified => &uploader.lax,
            _ => &uploader.verified,
        };
        let mut req = http
            .request(method, url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(ChunkStream(body.0)));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        if let Some(h) = auth {
            req = req.header(AUTHORIZATION, h);
        }
        // The body is fed by a source that may itself need requests to this
        // registry: it streams from the start.
        let mut permits = self.permits();
        permits.stream();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result: Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> =
            uploader.runtime.block_on(async {
                let resp = req.send().await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = if ok(status) {
                    Vec::new()
                } else {
                    resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
                };
                Ok((status, headers, body))
            });
        let (status, headers, body) = result.map_err(|e| self.connection_error(what, &e))?;
        self.observe(&permits, status);
        drop(permits);
        if ok(status) {
            return Ok(UploadReply { status, headers });
        }
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Err(RegistryError::Status {
            registry: self.registry.clone(),
            what: what.into(),
            status: status.as_u16(),
            errors: parse_error_body(&body),
            retry_after,
        })
    }

    /// One page of a paginated list (`_catalog`, `tags/list`), and the next
    /// page's URL from the `Link` header.
    pub fn get_page(
        &self,
        what: &str,
        scope: &str,
        url: &str,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let resp = self.send(what, scope, &|h, base| h.get(absolute(base, url)), &|s| {
            s.is_success()
        })?;
        let next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let mut body = Vec::new();
        resp.take(64 << 20)
            .read_to_end(&mut body)
            .map_err(|e| self.bad(what, e.to_string()))?;
        Ok((body, next))
    }

    /// An error for an answer that breaks the API's promises.
    pub fn bad(&self, what: &str, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.registry.clone(),
            what: what.into(),
            detail,
        }
    }

    /// Checks the credential by asking for a push-free token (or the ping
    /// with Basic auth), as `docker login` does.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        self.endpoint()?;
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match challenge.map(|c| c.scheme) {
            None => Ok(()),
            Some(s) if s == "bearer" => {
                let c = self
                    .challenge
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| unreachable!("checked above"));
                self.retrying(&mut Attempts::new(self.retry), || self.fetch_token(&c, ""))
                    .map(|_| ())
            }
            Some(_) => self
                .send(
                    "log in",
                    "",
                    &|h, base| h.get(format!("{base}/v2/")),
                    &|s| s.is_success(),
                )
                .map(|_| ()),
        }
    }
}

fn location(resp: &Reply) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Resolves a possibly relative URL against the endpoint base.
pub fn absolute(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        format!("{base}/{url}")
    }
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

fn next_link(header: &str) -> Option<String> {
    header
        .split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_string())
        })
}

/// `url` with `pairs` appended as a query string.
fn with_form(url: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", form_encode(pairs))
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_insecure_by_default() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.3.4.5"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert!(!is_loopback("docker.io"));
    }

    #[test]
    fn links_and_urls() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(absolute("http://h:5", "/v2/x"), "http://h:5/v2/x");
        assert_eq!(absolute("http://h:5", "https://o/x"), "https://o/x");
        assert_eq!(
            with_query("http://h/u?a=1", "digest", "sha256:x"),
            "http://h/u?a=1&digest=sha256:x"
        );
        assert_eq!(url_escape("a b/c"), "a%20b%2Fc");
    }
}
