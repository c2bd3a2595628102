//! Docker image references, parsed and normalised the way docker does it.
//!
//! This follows `github.com/distribution/reference` v0.6 (what docker uses):
//! `ParseNormalizedNamed`, `ParseNamed`, `FamiliarName`, `FamiliarString`,
//! `TagNameOnly`, and the ID checks of `ParseAnyReference`. The grammar is
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | "[" ipv6-hex-and-colons "]"
//! domain-name      := domain-component ( "." domain-component )*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port             := [0-9]+
//! path             := path-component ( "/" path-component )*
//! path-component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex{32,}
//! ```
//!
//! Docker's regular expressions are replaced by small hand-written matchers
//! that accept exactly the same strings.

use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical domain.
const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's old "index" domain, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Reserved name that is always a domain when it is the first component.
const LOCALHOST: &str = "localhost";
/// Tag added by [`Reference::with_default_tag`].
const DEFAULT_TAG: &str = "latest";
/// Longest accepted tag (one leading character plus up to 127 more).
const MAX_TAG_LEN: usize = 128;

/// Longest accepted repository path. Since distribution/reference v0.6 the
/// domain does not count towards it, only the path (e.g. `library/nginx`).
pub const MAX_PATH_LEN: usize = 255;

/// A parsed, normalised image reference: domain, path, optional tag, optional digest.
///
/// Built by [`Reference::parse`], which normalises familiar names the way
/// docker does (`nginx` becomes `docker.io/library/nginx`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Empty only in docker's corner case where the first component looks
    /// like a domain (it has a `.`) but is not a valid one, e.g. `foo_bar.com/x`;
    /// docker then keeps the whole name as a domain-less path.
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a reference, tag or digest was refused.
///
/// Every message keeps docker's wording and names the offending input in
/// quotes, in the form `<docker's error>: "<input>"[: <docker's detail>]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The reference was the empty string.
    #[error("invalid reference format: \"\": repository name must have at least one component")]
    Empty,
    /// The reference does not match the grammar at all.
    #[error("invalid reference format: {input:?}")]
    InvalidFormat {
        /// The reference as given.
        input: String,
    },
    /// The repository path has uppercase letters (only the domain may).
    #[error("invalid reference format: {input:?}: repository name must be lowercase")]
    Uppercase {
        /// The reference as given.
        input: String,
    },
    /// The repository path is longer than [`MAX_PATH_LEN`].
    #[error(
        "invalid reference format: {input:?}: repository name must not be more than 255 characters"
    )]
    NameTooLong {
        /// The reference as given.
        input: String,
    },
    /// The name is 64 lowercase hex characters, which docker reserves for image IDs.
    #[error("invalid repository name: {input:?}: cannot specify 64-byte hexadecimal strings")]
    HexadecimalName {
        /// The reference as given.
        input: String,
    },
    /// [`Reference::parse_canonical`] was given a name that normalisation changes.
    #[error("invalid reference format: {input:?}: repository name must be canonical")]
    NotCanonical {
        /// The reference as given.
        input: String,
    },
    /// A tag outside `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid tag format: {input:?}")]
    InvalidTag {
        /// The tag (for [`Reference::with_tag`]).
        input: String,
    },
    /// A digest that is malformed, e.g. uppercase hex for a known algorithm.
    #[error("invalid digest format: {input:?}")]
    InvalidDigest {
        /// The digest, or the whole reference when it came from parsing.
        input: String,
    },
    /// A digest of a known algorithm with the wrong number of hex characters.
    #[error("invalid digest format: {input:?}: invalid checksum digest length")]
    DigestLength {
        /// The digest, or the whole reference when it came from parsing.
        input: String,
    },
    /// A well-formed digest whose algorithm is not sha256, sha384 or sha512.
    #[error("invalid digest format: {input:?}: unsupported digest algorithm")]
    UnsupportedDigest {
        /// The digest, or the whole reference when it came from parsing.
        input: String,
    },
}

impl ReferenceError {
    /// The input the error is about (empty for [`ReferenceError::Empty`]).
    pub fn input(&self) -> &str {
        match self {
            Self::Empty => "",
            Self::InvalidFormat { input }
            | Self::Uppercase { input }
            | Self::NameTooLong { input }
            | Self::HexadecimalName { input }
            | Self::NotCanonical { input }
            | Self::InvalidTag { input }
            | Self::InvalidDigest { input }
            | Self::DigestLength { input }
            | Self::UnsupportedDigest { input } => input,
        }
    }
}

impl Reference {
    /// Parses and normalises a reference like docker's `ParseNormalizedNamed`.
    ///
    /// `nginx` becomes `docker.io/library/nginx` (no tag is added; see
    /// [`Reference::with_default_tag`]), `index.docker.io/x/y` becomes
    /// `docker.io/x/y`, and `host:5000/app:1.0@sha256:…` keeps its domain,
    /// tag and digest.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // A bare 64-hex string is an image ID to docker, never a name.
        if is_identifier(s) {
            return Err(ReferenceError::HexadecimalName {
                input: s.to_string(),
            });
        }
        let (domain, remainder) = split_docker_domain(s);
        // Docker checks case on everything up to the first ':' before the
        // grammar, so an uppercase path wins over any other complaint.
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase {
                input: s.to_string(),
            });
        }
        let full = format!("{domain}/{remainder}");
        let parts = parse_parts(&full).map_err(|fault| fault.into_error(s))?;
        Ok(Reference {
            domain: parts.domain.to_string(),
            path: parts.path.to_string(),
            tag: parts.tag.map(str::to_string),
            digest: parts.digest.map(str::to_string),
        })
    }

    /// Parses like docker's `ParseNamed`: the input must already be in full
    /// canonical form (`docker.io/library/nginx`, not `nginx`).
    pub fn parse_canonical(s: &str) -> Result<Reference, ReferenceError> {
        let reference = Reference::parse(s)?;
        if reference.to_string() != s {
            return Err(ReferenceError::NotCanonical {
                input: s.to_string(),
            });
        }
        Ok(reference)
    }

    /// The registry domain, e.g. `docker.io`, `127.0.0.1:5000` or `[::1]:5000`.
    ///
    /// Empty only where docker leaves it empty: a first component with a `.`
    /// that is not a valid domain but is a valid path, as in `foo_bar.com/x`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest as written (e.g. `sha256:…`), if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The full repository name without tag or digest, e.g. `docker.io/library/nginx`.
    pub fn repository(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The repository as docker shows it: `nginx`, `user/app`, `127.0.0.1:5000/app`.
    ///
    /// `docker.io/` is dropped, and so is `library/` when exactly one
    /// component follows it (`docker.io/library/a/b` stays `library/a/b`).
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The reference as docker shows it: `nginx:latest`, `nginx@sha256:…`,
    /// `nginx:1.0@sha256:…`.
    pub fn familiar_string(&self) -> String {
        let mut out = self.familiar_name();
        push_suffix(&mut out, self.tag(), self.digest());
        out
    }

    /// True when the reference has neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// Docker's `TagNameOnly`: adds the `latest` tag when there is neither a
    /// tag nor a digest, and otherwise returns the reference unchanged.
    pub fn with_default_tag(self) -> Reference {
        if self.is_name_only() {
            Reference {
                tag: Some(DEFAULT_TAG.to_string()),
                ..self
            }
        } else {
            self
        }
    }

    /// The same repository with `tag` as its tag; any digest is dropped.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                input: tag.to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.without_tag_or_digest()
        })
    }

    /// The same repository with `digest` as its digest; any tag is dropped.
    ///
    /// Unlike docker's `WithDigest`, which trusts a typed digest, the string is
    /// checked as fully as when parsing (known algorithm, exact length).
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        if !is_digest_pattern(digest) {
            return Err(ReferenceError::InvalidDigest {
                input: digest.to_string(),
            });
        }
        validate_digest(digest).map_err(|fault| fault.into_error(digest))?;
        Ok(Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.without_tag_or_digest()
        })
    }

    /// The bare repository, without tag or digest.
    pub fn without_tag_or_digest(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/nginx:1.0@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository();
        push_suffix(&mut out, self.tag(), self.digest());
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Same as [`Reference::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// True when `s` is a full 64-hex image ID, with or without the "sha256:" prefix
/// (docker's `ParseAnyReference` treats these as IDs, not names).
pub fn is_full_id(s: &str) -> bool {
    is_identifier(s.strip_prefix("sha256:").unwrap_or(s))
}

/// True when `s` could be a (possibly short) image ID prefix: 1..=64 lowercase
/// hex chars, optionally prefixed "sha256:".
pub fn is_id_prefix(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (1..=64).contains(&hex.len()) && hex.bytes().all(is_lower_hex)
}

fn push_suffix(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// Docker's `splitDockerDomain`: decides whether the first component is a
/// registry, and puts single-component Docker Hub names under `library/`.
///
/// The returned remainder still carries any tag and digest.
fn split_docker_domain(s: &str) -> (&str, String) {
    let Some((first, rest)) = s.split_once('/') else {
        // A single component is always a Docker Hub name, even `localhost`
        // or `example.com`, so `name:tag` is never read as `host:port`.
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{s}"));
    };
    let (domain, remote) = if first == LOCALHOST {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        // Paths are lowercase-only, so an uppercase first component can only
        // be a domain (docker's rule: `Foo/bar` is domain `Foo`).
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, s)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote.to_string())
    }
}

/// The pieces of a reference that matched the grammar, borrowed from the input.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// What docker's un-normalised `Parse` can refuse; the caller adds the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Format,
    Uppercase,
    TooLong,
    Digest(DigestFault),
}

impl Fault {
    fn into_error(self, input: &str) -> ReferenceError {
        let input = input.to_string();
        match self {
            Fault::Format => ReferenceError::InvalidFormat { input },
            Fault::Uppercase => ReferenceError::Uppercase { input },
            Fault::TooLong => ReferenceError::NameTooLong { input },
            Fault::Digest(fault) => fault.into_error(&input),
        }
    }
}

/// What go-digest's `Digest.Validate` can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DigestFault {
    Format,
    Length,
    Unsupported,
}

impl DigestFault {
    fn into_error(self, input: &str) -> ReferenceError {
        let input = input.to_string();
        match self {
            DigestFault::Format => ReferenceError::InvalidDigest { input },
            DigestFault::Length => ReferenceError::DigestLength { input },
            DigestFault::Unsupported => ReferenceError::UnsupportedDigest { input },
        }
    }
}

/// Docker's `Parse`: the grammar without normalisation, then the length
/// limit, then digest validation, in that order.
fn parse_parts(s: &str) -> Result<Parts<'_>, Fault> {
    if s.is_empty() {
        return Err(Fault::Format);
    }
    let Some(parts) = match_reference(s) else {
        // Docker reports "must be lowercase" when lowercasing would have fixed it.
        let lower = s.to_lowercase();
        if lower != s && match_reference(&lower).is_some() {
            return Err(Fault::Uppercase);
        }
        return Err(Fault::Format);
    };
    if parts.path.len() > MAX_PATH_LEN {
        return Err(Fault::TooLong);
    }
    if let Some(digest) = parts.digest {
        validate_digest(digest).map_err(Fault::Digest)?;
    }
    Ok(parts)
}

/// Matches `name [":" tag] ["@" digest]` and splits it up.
fn match_reference(s: &str) -> Option<Parts<'_>> {
    // None of name, tag or digest may contain '@', so the first one splits.
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest_pattern(d)) {
        return None;
    }
    // A ':' can be in the name only inside the domain, which is followed by
    // a '/'; a ':' after the last '/' therefore starts the tag.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) {
        return None;
    }
    let (domain, path) = match_name(name)?;
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// Matches `[domain "/"] path`, preferring a domain when both readings fit,
/// as the greedy optional group in docker's expression does.
fn match_name(name: &str) -> Option<(&str, &str)> {
    if let Some((first, rest)) = name.split_once('/')
        && is_domain_and_port(first)
        && is_path(rest)
    {
        return Some((first, rest));
    }
    is_path(name).then_some(("", name))
}

fn is_path(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+ ( ("." | "_" | "__" | "-"+) [a-z0-9]+ )*`
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !is_lower_alnum(first) || !is_lower_alnum(last) {
        return false;
    }
    // Every run of non-alphanumerics between alphanumerics must be one separator.
    bytes
        .split(|&b| is_lower_alnum(b))
        .filter(|run| !run.is_empty())
        .all(|run| matches!(run, b"." | b"_" | b"__") || run.iter().all(|&b| b == b'-'))
}

/// `host [":" port]`, where host is a domain name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    if let Some(bracketed) = s.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        // Zone identifiers ("%eth0") and dotted IPv4 tails are deliberately refused.
        let address_ok =
            !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return address_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port));
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    host.split('.').all(is_domain_component) && port.is_none_or(is_port)
}

/// `[a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`; uppercase is allowed here.
fn is_domain_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        }
        _ => false,
    }
}

/// Any non-empty run of digits; docker does not range-check ports here.
fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[\w][\w.-]{0,127}` with Go's ASCII-only `\w`.
fn is_tag(s: &str) -> bool {
    let bytes = s.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match bytes.first() {
        Some(&first) => {
            bytes.len() <= MAX_TAG_LEN
                && is_word(first)
                && bytes[1..]
                    .iter()
                    .all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// The digest shape the reference grammar accepts:
/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
fn is_digest_pattern(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['-', '_', '+', '.']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Digest.Validate` with the algorithms docker registers.
fn validate_digest(s: &str) -> Result<(), DigestFault> {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(DigestFault::Format);
    };
    if encoded.is_empty() {
        return Err(DigestFault::Format);
    }
    let Some(hex_len) = registered_hex_len(algorithm) else {
        return Err(if is_go_digest_pattern(algorithm, encoded) {
            DigestFault::Unsupported
        } else {
            DigestFault::Format
        });
    };
    if encoded.len() != hex_len {
        return Err(DigestFault::Length);
    }
    if encoded.bytes().all(is_lower_hex) {
        Ok(())
    } else {
        Err(DigestFault::Format)
    }
}

/// Hex length of each algorithm docker can verify (go-digest registers
/// these when the Go crypto packages are linked, as they are in docker).
fn registered_hex_len(algorithm: &str) -> Option<usize> {
    match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    }
}

/// go-digest's looser shape, which decides "unsupported" versus "malformed":
/// `[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_go_digest_pattern(algorithm: &str, encoded: &str) -> bool {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    algorithm.split(['.', '+', '_', '-']).all(component_ok)
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

/// Exactly 64 lowercase hex characters: docker's image-ID "identifier".
fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

fn is_lower_alnum(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_F: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const SHA_BE: &str = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912";
    const HEX_ID: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

    /// (input, domain, path, tag, digest)
    type Expected<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &str) -> ReferenceError {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} should be refused, parsed as {r}"),
            Err(e) => e,
        }
    }

    // ---- the un-normalised grammar (distribution/reference TestReferenceParse) ----

    /// (input, domain, name, tag, digest) for inputs docker's `Parse` accepts;
    /// `Parse` round-trips them, so the string form is the input itself.
    #[test]
    fn strict_parse_accepts() {
        let long_path = format!("{}a", "a/".repeat(127));
        let long_input = format!("{long_path}:tag-puts-this-over-max");
        let at_limit = format!("{}a", "a/".repeat(128));
        let at_limit_input = format!("{at_limit}:tag");
        let a255 = format!("example.com/{}", "a".repeat(255));
        let a255_input = format!("{a255}:tag");
        let sha512 = format!("sha512:{}", "f".repeat(128));
        let xn_input = format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}");
        let t5_digest = format!("test:5000/repo@{SHA_F}");
        let t5_both = format!("test:5000/repo:tag@{SHA_F}");
        let v6_digest = format!("[2001:db8::1]:5000/repo@{SHA_F}");
        let v6_both = format!("[2001:db8::1]:5000/repo:tag@{SHA_F}");
        let cases: Vec<Expected> = vec![
            ("test_com", "", "test_com", None, None),
            ("test.com:tag", "", "test.com", Some("tag"), None),
            ("test.com:5000", "", "test.com", Some("5000"), None),
            ("test.com/repo:tag", "test.com", "repo", Some("tag"), None),
            ("test:5000/repo", "test:5000", "repo", None, None),
            ("test:5000/repo:tag", "test:5000", "repo", Some("tag"), None),
            (&t5_digest, "test:5000", "repo", None, Some(SHA_F)),
            (&t5_both, "test:5000", "repo", Some("tag"), Some(SHA_F)),
            (
                "lowercase:Uppercase",
                "",
                "lowercase",
                Some("Uppercase"),
                None,
            ),
            (
                &long_input,
                "a",
                &long_path[2..],
                Some("tag-puts-this-over-max"),
                None,
            ),
            (&at_limit_input, "a", &at_limit[2..], Some("tag"), None),
            (&a255_input, "example.com", &a255[12..], Some("tag"), None),
            (
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com",
                "bar/baz/quux",
                None,
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
                "sub-dom1.foo.com",
                "bar/baz/quux",
                Some("some-long-tag"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com",
                "b.gcr.io",
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com",
                "xn--n3h.com",
                "myimage",
                Some("xn--n3h.com"),
                None,
            ),
            (
                &xn_input,
                "xn--7o8h.com",
                "myimage",
                Some("xn--7o8h.com"),
                Some(&sha512),
            ),
            ("foo_bar.com:8080", "", "foo_bar.com", Some("8080"), None),
            (
                "foo/foo_bar.com:8080",
                "foo",
                "foo_bar.com",
                Some("8080"),
                None,
            ),
            ("192.168.1.1", "", "192.168.1.1", None, None),
            ("192.168.1.1:tag", "", "192.168.1.1", Some("tag"), None),
            ("192.168.1.1:5000", "", "192.168.1.1", Some("5000"), None),
            ("192.168.1.1/repo", "192.168.1.1", "repo", None, None),
            (
                "192.168.1.1:5000/repo",
                "192.168.1.1:5000",
                "repo",
                None,
                None,
            ),
            (
                "192.168.1.1:5000/repo:5050",
                "192.168.1.1:5000",
                "repo",
                Some("5050"),
                None,
            ),
            ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, None),
            (
                "[2001:db8:1:2:3:4:5:6]/repo:tag",
                "[2001:db8:1:2:3:4:5:6]",
                "repo",
                Some("tag"),
                None,
            ),
            (
                "[2001:db8::1]:5000/repo",
                "[2001:db8::1]:5000",
                "repo",
                None,
                None,
            ),
            (
                "[2001:db8::1]:5000/repo:tag",
                "[2001:db8::1]:5000",
                "repo",
                Some("tag"),
                None,
            ),
            (&v6_digest, "[2001:db8::1]:5000", "repo", None, Some(SHA_F)),
            (
                &v6_both,
                "[2001:db8::1]:5000",
                "repo",
                Some("tag"),
                Some(SHA_F),
            ),
            (
                "[2001:db8::]:5000/repo",
                "[2001:db8::]:5000",
                "repo",
                None,
                None,
            ),
            ("[::1]:5000/repo", "[::1]:5000", "repo", None, None),
        ];
        for (input, domain, path, tag, digest) in cases {
            let parts = parse_parts(input).unwrap_or_else(|f| panic!("{input:?}: {f:?}"));
            assert_eq!(
                parts,
                Parts {
                    domain,
                    path,
                    tag,
                    digest
                },
                "{input:?}"
            );
        }
    }

    #[test]
    fn strict_parse_refuses() {
        // v0.6 counts the path only: "a/" x 128 + "a" is domain "a" plus a
        // 255-character path (accepted), one more component goes over.
        let too_long = format!("{}a:tag", "a/".repeat(129));
        let too_long_path = format!("domain/{}:tag", "a".repeat(256));
        let short_digest = "repo@sha256:ffffffffffffffffffffffffffffffffff".to_string();
        let bad_alg = format!("validname@invaliddigest:{}", "f".repeat(64));
        let bare_digest = format!("@{SHA_F}");
        let upper_hex = format!("repo@sha256:{}", "F".repeat(64));
        let cases: Vec<(&str, Fault)> = vec![
            ("", Fault::Format),
            (":justtag", Fault::Format),
            (&bare_digest, Fault::Format),
            (&short_digest, Fault::Digest(DigestFault::Length)),
            (&bad_alg, Fault::Digest(DigestFault::Unsupported)),
            (&upper_hex, Fault::Digest(DigestFault::Format)),
            ("Uppercase:tag", Fault::Uppercase),
            ("test:5000/Uppercase/lowercase:tag", Fault::Uppercase),
            (&too_long, Fault::TooLong),
            (&too_long_path, Fault::TooLong),
            ("aa/asdf$$^/aa", Fault::Format),
            ("[2001:db8::1]", Fault::Format),
            ("[2001:db8::1]:5000", Fault::Format),
            ("[2001:db8::1]:tag", Fault::Format),
            ("[fe80::1%eth0]:5000/repo", Fault::Format),
            ("[fe80::1%@invalidzone]:5000/repo", Fault::Format),
            ("registry.com:8080/myapp@sha256:badbadbadbad", Fault::Format),
            ("registry.com:8080/myapp:invalid~tag", Fault::Format),
            ("bad_hostname.com:8080/myapp:tag", Fault::Format),
            ("localhost:http/name@sha256:abc", Fault::Format),
            ("registry.com:8080/myapp@bad", Fault::Format),
            ("registry.com:8080/myapp@2bad", Fault::Format),
            ("name:", Fault::Format),
            ("name@", Fault::Format),
            ("a@b@c", Fault::Format),
        ];
        for (input, fault) in cases {
            assert_eq!(parse_parts(input), Err(fault), "{input:?}");
        }
    }

    /// distribution/reference TestReferenceRegexp.
    #[test]
    fn reference_grammar() {
        let with_host_digest = format!("registry.com:8080/myapp@{SHA_BE}");
        let with_both = format!("registry.com:8080/myapp:tag2@{SHA_BE}");
        let localhost_tag = format!("localhost:8080@{SHA_BE}");
        let localhost_port = format!("localhost:8080/name@{SHA_BE}");
        let localhost_bare = format!("localhost@{SHA_BE}");
        let cases: Vec<Expected> = vec![
            (
                "registry.com:8080/myapp:tag",
                "registry.com:8080",
                "myapp",
                Some("tag"),
                None,
            ),
            (
                &with_host_digest,
                "registry.com:8080",
                "myapp",
                None,
                Some(SHA_BE),
            ),
            (
                &with_both,
                "registry.com:8080",
                "myapp",
                Some("tag2"),
                Some(SHA_BE),
            ),
            // "localhost" with no '/' is a name, so ":8080" is a tag.
            (&localhost_tag, "", "localhost", Some("8080"), Some(SHA_BE)),
            (
                &localhost_port,
                "localhost:8080",
                "name",
                None,
                Some(SHA_BE),
            ),
            (&localhost_bare, "", "localhost", None, Some(SHA_BE)),
        ];
        for (input, domain, path, tag, digest) in cases {
            assert_eq!(
                match_reference(input),
                Some(Parts {
                    domain,
                    path,
                    tag,
                    digest
                }),
                "{input:?}"
            );
        }
    }

    /// distribution/reference TestDomainRegexp.
    #[test]
    fn domain_grammar() {
        let cases = [
            ("test.com", true),
            ("test.com:10304", true),
            ("test.com:http", false),
            ("localhost", true),
            ("localhost:8080", true),
            ("a", true),
            ("a.b", true),
            ("ab.cd.com", true),
            ("a-b.com", true),
            ("-ab.com", false),
            ("ab-.com", false),
            ("ab.c-om", true),
            ("ab.-com", false),
            ("ab.com-", false),
            ("0101.com", true),
            ("001a.com", true),
            ("b.gbc.io:443", true),
            ("b.gbc.io", true),
            ("xn--n3h.com", true),
            ("Asdf.com", true),
            ("192.168.1.1:75050", true),
            ("192.168.1.1:750050", true),
            ("[fd00:1:2::3]:75050", true),
            ("[fd00:1:2::3]75050", false),
            ("[fd00:1:2::3]::75050", false),
            ("[fd00:1:2::3%eth0]:75050", false),
            ("[fd00123123123]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", true),
            ("fd00:1:2::3:75050", false),
            ("", false),
            ("a..b", false),
            ("a.", false),
            ("a:", false),
            ("[]", false),
        ];
        for (input, ok) in cases {
            assert_eq!(is_domain_and_port(input), ok, "{input:?}");
        }
    }

    /// distribution/reference TestFullNameRegexp: Some((domain, path)) or None.
    #[test]
    fn name_grammar() {
        let long = format!("{}a", "a/".repeat(128));
        let long_path = format!("{}a", "a/".repeat(127));
        let cases: Vec<(&str, Option<(&str, &str)>)> = vec![
            ("", None),
            ("short", Some(("", "short"))),
            ("simple/name", Some(("simple", "name"))),
            ("library/ubuntu", Some(("library", "ubuntu"))),
            ("docker/stevvooe/app", Some(("docker", "stevvooe/app"))),
            (
                "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
                Some(("aa", "aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb")),
            ),
            ("aa/aa/bb/bb/bb", Some(("aa", "aa/bb/bb/bb"))),
            ("a/a/a/a", Some(("a", "a/a/a"))),
            ("a/a/a/a/", None),
            ("a//a/a", None),
            ("a", Some(("", "a"))),
            ("a/aa", Some(("a", "aa"))),
            ("a/aa/a", Some(("a", "aa/a"))),
            ("foo.com", Some(("", "foo.com"))),
            ("foo.com/", None),
            ("foo.com:8080/bar", Some(("foo.com:8080", "bar"))),
            ("foo.com:http/bar", None),
            ("foo.com/bar", Some(("foo.com", "bar"))),
            ("foo.com/bar/baz", Some(("foo.com", "bar/baz"))),
            ("localhost:8080/bar", Some(("localhost:8080", "bar"))),
            (
                "sub-dom1.foo.com/bar/baz/quux",
                Some(("sub-dom1.foo.com", "bar/baz/quux")),
            ),
            ("blog.foo.com/bar/baz", Some(("blog.foo.com", "bar/baz"))),
            ("a^a", None),
            ("aa/asdf$$^/aa", None),
            ("asdf$$^/aa", None),
            ("aa-a/a", Some(("aa-a", "a"))),
            (&long, Some(("a", &long_path))),
            ("a-/a/a/a", None),
            ("foo.com/a-/a/a", None),
            ("-foo/bar", None),
            ("foo/bar-", None),
            ("foo-/bar", None),
            ("foo/-bar", None),
            ("_foo/bar", None),
            ("foo_bar", Some(("", "foo_bar"))),
            ("foo_bar.com", Some(("", "foo_bar.com"))),
            ("foo_bar.com:8080", None),
            ("foo_bar.com:8080/app", None),
            ("foo.com/foo_bar", Some(("foo.com", "foo_bar"))),
            ("____/____", None),
            ("_docker/_docker", None),
            ("docker_/docker_", None),
            (
                "b.gcr.io/test.example.com/my-app",
                Some(("b.gcr.io", "test.example.com/my-app")),
            ),
            ("xn--n3h.com/myimage", Some(("xn--n3h.com", "myimage"))),
            ("xn--7o8h.com/myimage", Some(("xn--7o8h.com", "myimage"))),
            (
                "example.com/xn--7o8h.com/myimage",
                Some(("example.com", "xn--7o8h.com/myimage")),
            ),
            (
                "example.com/some_separator__underscore/myimage",
                Some(("example.com", "some_separator__underscore/myimage")),
            ),
            ("example.com/__underscore/myimage", None),
            ("example.com/..dots/myimage", None),
            ("example.com/.dots/myimage", None),
            ("example.com/nodouble..dots/myimage", None),
            ("docker./docker", None),
            (".docker/docker", None),
            ("docker-/docker", None),
            ("-docker/docker", None),
            ("do..cker/docker", None),
            ("do__cker:8080/docker", None),
            ("do__cker/docker", Some(("", "do__cker/docker"))),
            ("do___cker/docker", None),
            ("do-_cker/docker", None),
            (
                "registry.io/foo/project--id.module--name.ver---sion--name",
                Some((
                    "registry.io",
                    "foo/project--id.module--name.ver---sion--name",
                )),
            ),
            ("Asdf.com/foo/bar", Some(("Asdf.com", "foo/bar"))),
            ("Foo/FarB", None),
        ];
        for (input, expected) in cases {
            assert_eq!(match_name(input), expected, "{input:?}");
        }
    }

    #[test]
    fn tag_grammar() {
        let max = "a".repeat(128);
        let over = "a".repeat(129);
        for ok in ["latest", "1.0", "_x", "A-b.C_d", "5000", &max] {
            assert!(is_tag(ok), "{ok:?}");
        }
        for bad in ["", "-foo", ".foo", "a:b", "a/b", "a@b", "tag~", "é", &over] {
            assert!(!is_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_validation() {
        let sha384 = format!("sha384:{}", "a".repeat(96));
        let sha512 = format!("sha512:{}", "0".repeat(128));
        for ok in [SHA_F, SHA_BE, &sha384, &sha512] {
            assert!(is_digest_pattern(ok), "{ok:?}");
            assert_eq!(validate_digest(ok), Ok(()), "{ok:?}");
        }
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(is_digest_pattern(&upper));
        assert_eq!(validate_digest(&upper), Err(DigestFault::Format));
        let short = format!("sha256:{}", "a".repeat(63));
        assert_eq!(validate_digest(&short), Err(DigestFault::Length));
        let unknown = format!("blake3:{}", "a".repeat(64));
        assert_eq!(validate_digest(&unknown), Err(DigestFault::Unsupported));
        let upper_alg = format!("SHA256:{}", "a".repeat(64));
        assert_eq!(validate_digest(&upper_alg), Err(DigestFault::Format));
        for bad in [
            "foo",
            "sha256:",
            ":abc",
            "sha256:abc",
            "sha256+:ffffffffffffffffffffffffffffffff",
        ] {
            assert!(!is_digest_pattern(bad), "{bad:?}");
        }
        assert!(is_digest_pattern(
            "a-b_c+d.e:ffffffffffffffffffffffffffffffff"
        ));
    }

    // ---- normalisation (distribution/reference normalize_test.go) ----

    #[test]
    fn nginx_normalises_to_docker_hub_library() {
        let r = parse("nginx");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/nginx");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), None);
        assert!(r.is_name_only());
        assert_eq!(r.repository(), "docker.io/library/nginx");
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(r.familiar_name(), "nginx");
        assert_eq!(r.familiar_string(), "nginx");
        let tagged = r.with_default_tag();
        assert_eq!(tagged.tag(), Some("latest"));
        assert!(!tagged.is_name_only());
        assert_eq!(tagged.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(tagged.familiar_string(), "nginx:latest");
    }

    #[test]
    fn host_port_project_name_tag() {
        let r = parse("myhost:5000/project/name:tag");
        assert_eq!(r.domain(), "myhost:5000");
        assert_eq!(r.path(), "project/name");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.repository(), "myhost:5000/project/name");
        assert_eq!(r.familiar_name(), "myhost:5000/project/name");
        assert_eq!(r.familiar_string(), "myhost:5000/project/name:tag");
        assert_eq!(r.to_string(), "myhost:5000/project/name:tag");
        assert_eq!(r.clone().with_default_tag(), r);
    }

    #[test]
    fn name_with_digest() {
        let r = parse(&format!("nginx@{SHA_BE}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(SHA_BE));
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{SHA_BE}"));
        assert_eq!(r.familiar_string(), format!("nginx@{SHA_BE}"));
        // A digest is enough: TagNameOnly adds no tag.
        assert_eq!(r.clone().with_default_tag(), r);
    }

    #[test]
    fn name_with_tag_and_digest() {
        let short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
        let r = parse(short);
        assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(
            r.digest(),
            Some("sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa")
        );
        assert_eq!(r.familiar_string(), short);
        let r = parse(&format!("user/app:1.0@{SHA_F}"));
        assert_eq!(r.to_string(), format!("docker.io/user/app:1.0@{SHA_F}"));
        assert_eq!(r.familiar_string(), format!("user/app:1.0@{SHA_F}"));
    }

    /// TestValidateReferenceName and TestValidateRemoteName, valid half.
    #[test]
    fn normalized_accepts() {
        let docker_io_hex = format!("docker.io/{HEX_ID}");
        for name in [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            &docker_io_hex,
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ] {
            parse(name);
        }
    }

    /// TestValidateReferenceName and TestValidateRemoteName, invalid half.
    #[test]
    fn normalized_refuses() {
        let long_namespace = format!("{}/docker", "this_is_not_a_valid_namespace".repeat(9));
        for name in [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            HEX_ID,
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            &long_namespace,
            "-foo",
            "",
            " nginx",
            "nginx ",
            "ngi nx",
            "nginx:",
            "nginx@",
            "nginx:-tag",
        ] {
            err(name);
        }
    }

    /// TestParseRepositoryInfo: every spelling gives the same familiar name,
    /// full name, domain and path.
    #[test]
    fn repository_info() {
        // (path, familiar, full, ambiguous, domain)
        let cases = [
            (
                "fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
            ),
            (
                "nonlibrary/ubuntu",
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
            ),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "privatebase",
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "private/moonbase",
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
            ),
            (
                "privatebase",
                "example.com/privatebase",
                "example.com/privatebase",
                "",
                "example.com",
            ),
            (
                "private/moonbase",
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
            ),
            (
                "privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
            ),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            (
                "library/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
            ),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for (path, familiar, full, ambiguous, domain) in cases {
            for input in [familiar, full, ambiguous] {
                if input.is_empty() {
                    continue;
                }
                let r = parse(input);
                assert_eq!(r.familiar_name(), familiar, "{input:?}");
                assert_eq!(r.to_string(), full, "{input:?}");
                assert_eq!(r.repository(), full, "{input:?}");
                assert_eq!(r.domain(), domain, "{input:?}");
                assert_eq!(r.path(), path, "{input:?}");
            }
        }
    }

    /// TestNormalizedSplitHostname.
    #[test]
    fn normalized_domain_and_path() {
        let cases = [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            ("localhost/foo", "localhost", "foo"),
            ("localhost:5000/foo", "localhost:5000", "foo"),
            ("localhost", "docker.io", "library/localhost"),
            ("example.com", "docker.io", "library/example.com"),
            ("[::1]:5000/app", "[::1]:5000", "app"),
        ];
        for (input, domain, path) in cases {
            let r = parse(input);
            assert_eq!((r.domain(), r.path()), (domain, path), "{input:?}");
        }
    }

    /// TestParseAnyReference's named cases, and TestParseDockerRef's
    /// normalisation (with `latest` added to name-only references).
    #[test]
    fn normalized_strings() {
        let d = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
        let owned = [
            ("redis".to_string(), "docker.io/library/redis".to_string()),
            (
                "redis:latest".into(),
                "docker.io/library/redis:latest".into(),
            ),
            (
                "docker.io/library/redis:latest".into(),
                "docker.io/library/redis:latest".into(),
            ),
            (format!("redis@{d}"), format!("docker.io/library/redis@{d}")),
            (
                format!("docker.io/library/redis@{d}"),
                format!("docker.io/library/redis@{d}"),
            ),
            ("dmcgowan/myapp".into(), "docker.io/dmcgowan/myapp".into()),
            (
                "dmcgowan/myapp:latest".into(),
                "docker.io/dmcgowan/myapp:latest".into(),
            ),
            (
                "docker.io/mcgowan/myapp:latest".into(),
                "docker.io/mcgowan/myapp:latest".into(),
            ),
            (
                format!("dmcgowan/myapp@{d}"),
                format!("docker.io/dmcgowan/myapp@{d}"),
            ),
            (
                format!("docker.io/dmcgowan/myapp@{d}"),
                format!("docker.io/dmcgowan/myapp@{d}"),
            ),
            // 63 hex characters is a name, not an ID.
            (
                "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9".into(),
                "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9"
                    .into(),
            ),
            ("dbcc1".into(), "docker.io/library/dbcc1".into()),
        ];
        for (input, full) in &owned {
            assert_eq!(parse(input).to_string(), *full, "{input:?}");
        }

        let e = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
        let defaulted = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:latest", "docker.io/library/busybox:latest"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            (
                "docker.io/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            ("library/busybox:latest", "docker.io/library/busybox:latest"),
            ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        ];
        for (input, full) in defaulted {
            assert_eq!(
                parse(input).with_default_tag().to_string(),
                full,
                "{input:?}"
            );
        }
        let r = parse(&format!("busybox@{e}")).with_default_tag();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{e}"));
    }

    #[test]
    fn familiar_forms() {
        let cases = [
            ("nginx", "nginx", "nginx"),
            ("nginx:1.25", "nginx", "nginx:1.25"),
            ("docker.io/library/nginx:1.25", "nginx", "nginx:1.25"),
            ("index.docker.io/library/nginx", "nginx", "nginx"),
            ("user/app:v1", "user/app", "user/app:v1"),
            ("docker.io/library/a/b:v1", "library/a/b", "library/a/b:v1"),
            (
                "127.0.0.1:5000/app:v1",
                "127.0.0.1:5000/app",
                "127.0.0.1:5000/app:v1",
            ),
            ("[::1]:5000/app", "[::1]:5000/app", "[::1]:5000/app"),
            (
                "quay.io/library/x",
                "quay.io/library/x",
                "quay.io/library/x",
            ),
            (
                "localhost/library/x",
                "localhost/library/x",
                "localhost/library/x",
            ),
        ];
        for (input, name, string) in cases {
            let r = parse(input);
            assert_eq!(r.familiar_name(), name, "{input:?}");
            assert_eq!(r.familiar_string(), string, "{input:?}");
        }
    }

    /// Docker keeps `foo_bar.com/x` as a domain-less path: the first component
    /// looks like a domain but is not a valid one, yet is a valid path component.
    #[test]
    fn invalid_domain_that_is_a_valid_path() {
        let r = parse("foo_bar.com/x:v1");
        assert_eq!(r.domain(), "");
        assert_eq!(r.path(), "foo_bar.com/x");
        assert_eq!(r.repository(), "foo_bar.com/x");
        assert_eq!(r.familiar_string(), "foo_bar.com/x:v1");
        assert_eq!(r.to_string(), "foo_bar.com/x:v1");
        assert_eq!(parse(&r.to_string()), r);
    }

    #[test]
    fn lengths() {
        // The 255 limit counts the path only, including the implied "library/".
        let fits = "a".repeat(255 - "library/".len());
        assert_eq!(parse(&fits).path().len(), 255);
        let over = "a".repeat(256 - "library/".len());
        assert_eq!(
            err(&over),
            ReferenceError::NameTooLong {
                input: over.clone()
            }
        );
        let host_fits = format!("example.com/{}", "a".repeat(255));
        assert_eq!(parse(&host_fits).path().len(), 255);
        let host_over = format!("example.com/{}", "a".repeat(256));
        assert!(matches!(
            err(&host_over),
            ReferenceError::NameTooLong { .. }
        ));
        let tag_fits = format!("nginx:{}", "t".repeat(128));
        assert_eq!(parse(&tag_fits).tag().map(str::len), Some(128));
        let tag_over = format!("nginx:{}", "t".repeat(129));
        assert!(matches!(
            err(&tag_over),
            ReferenceError::InvalidFormat { .. }
        ));
    }

    #[test]
    fn error_variants_and_messages() {
        assert_eq!(err(""), ReferenceError::Empty);
        assert_eq!(
            err("").to_string(),
            r#"invalid reference format: "": repository name must have at least one component"#
        );

        assert_eq!(
            err("Foo/Bar"),
            ReferenceError::Uppercase {
                input: "Foo/Bar".into()
            }
        );
        assert_eq!(
            err("Foo/Bar").to_string(),
            r#"invalid reference format: "Foo/Bar": repository name must be lowercase"#
        );
        for upper in [
            "Nginx",
            "docker/Docker",
            "docker.io/docker/Docker",
            "Uppercase:tag",
            "FOO_BAR.com/x",
        ] {
            assert!(
                matches!(err(upper), ReferenceError::Uppercase { .. }),
                "{upper:?}"
            );
        }

        assert_eq!(err("a b").to_string(), r#"invalid reference format: "a b""#);
        assert_eq!(
            err("-foo"),
            ReferenceError::InvalidFormat {
                input: "-foo".into()
            }
        );

        assert_eq!(
            err(HEX_ID),
            ReferenceError::HexadecimalName {
                input: HEX_ID.into()
            }
        );
        assert_eq!(
            err(HEX_ID).to_string(),
            format!(
                "invalid repository name: \"{HEX_ID}\": cannot specify 64-byte hexadecimal strings"
            )
        );

        let over = "a".repeat(300);
        assert_eq!(
            err(&over).to_string(),
            format!(
                "invalid reference format: \"{over}\": repository name must not be more than 255 characters"
            )
        );

        let short = "repo@sha256:ffffffffffffffffffffffffffffffffff";
        assert_eq!(
            err(short),
            ReferenceError::DigestLength {
                input: short.into()
            }
        );
        assert_eq!(
            err(short).to_string(),
            format!("invalid digest format: \"{short}\": invalid checksum digest length")
        );
        let unsupported = format!("validname@invaliddigest:{}", "f".repeat(64));
        assert_eq!(
            err(&unsupported),
            ReferenceError::UnsupportedDigest {
                input: unsupported.clone()
            }
        );
        let upper_hex = format!("repo@sha256:{}", "F".repeat(64));
        assert_eq!(
            err(&upper_hex),
            ReferenceError::InvalidDigest {
                input: upper_hex.clone()
            }
        );
        assert_eq!(err(&upper_hex).input(), upper_hex);
        // Too short for the grammar's 32 hex minimum: the whole reference is malformed.
        assert!(matches!(
            err("repo@sha256:abc"),
            ReferenceError::InvalidFormat { .. }
        ));
    }

    #[test]
    fn with_tag_and_digest() {
        let base = parse(&format!("test.com:8000/foo:old@{SHA_F}"));

        let tagged = base.with_tag("TAG5").unwrap();
        assert_eq!(tagged.to_string(), "test.com:8000/foo:TAG5");
        assert_eq!(tagged.digest(), None);
        assert_eq!(
            parse("foo").with_tag("tag2").unwrap().to_string(),
            "docker.io/library/foo:tag2"
        );

        let digested = base.with_digest(SHA_BE).unwrap();
        assert_eq!(digested.to_string(), format!("test.com:8000/foo@{SHA_BE}"));
        assert_eq!(digested.tag(), None);

        let bare = base.without_tag_or_digest();
        assert_eq!(bare.to_string(), "test.com:8000/foo");
        assert!(bare.is_name_only());
        assert_eq!(bare, parse("test.com:8000/foo"));

        let busybox = parse("busybox");
        assert_eq!(
            busybox.with_tag("-foo"),
            Err(ReferenceError::InvalidTag {
                input: "-foo".into()
            })
        );
        assert_eq!(
            busybox.with_tag("-foo").unwrap_err().to_string(),
            r#"invalid tag format: "-foo""#
        );
        assert_eq!(
            busybox.with_tag(""),
            Err(ReferenceError::InvalidTag {
                input: String::new()
            })
        );
        assert_eq!(
            busybox.with_digest("foo"),
            Err(ReferenceError::InvalidDigest {
                input: "foo".into()
            })
        );
        assert_eq!(
            busybox.with_digest("foo").unwrap_err().to_string(),
            r#"invalid digest format: "foo""#
        );
        let short = "sha256:1234567890098765432112345667890098765";
        assert_eq!(
            busybox.with_digest(short),
            Err(ReferenceError::DigestLength {
                input: short.into()
            })
        );
        let unknown = format!("md5x:{}", "a".repeat(32));
        assert_eq!(
            busybox.with_digest(&unknown),
            Err(ReferenceError::UnsupportedDigest {
                input: unknown.clone()
            })
        );
    }

    #[test]
    fn canonical_only() {
        let ok = [
            ("test.com/foo", "test.com", "foo"),
            ("test:8080/foo", "test:8080", "foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
        ];
        for (input, domain, path) in ok {
            let r = Reference::parse_canonical(input).unwrap();
            assert_eq!((r.domain(), r.path()), (domain, path), "{input:?}");
        }
        for input in [
            "test_com/foo",
            "test.com",
            "foo",
            "library/foo",
            "docker.io/foo",
            "index.docker.io/library/foo",
        ] {
            assert_eq!(
                Reference::parse_canonical(input),
                Err(ReferenceError::NotCanonical {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
        assert_eq!(
            Reference::parse_canonical("foo").unwrap_err().to_string(),
            r#"invalid reference format: "foo": repository name must be canonical"#
        );
    }

    #[test]
    fn from_str_and_display_round_trip() {
        for input in [
            "docker.io/library/nginx:latest".to_string(),
            format!("docker.io/library/nginx@{SHA_F}"),
            format!("docker.io/library/nginx:1.0@{SHA_F}"),
            "[::1]:5000/a/b:c".to_string(),
        ] {
            let r: Reference = input.parse().unwrap();
            assert_eq!(r.to_string(), input);
            assert_eq!(Reference::parse_canonical(&input).unwrap(), r);
        }
        assert_eq!(
            "Bad".parse::<Reference>(),
            Err(ReferenceError::Uppercase {
                input: "Bad".into()
            })
        );
    }

    #[test]
    fn ordering_is_by_domain_then_path() {
        let mut refs = [
            parse("zeta"),
            parse("alpha:2"),
            parse("alpha:1"),
            parse("a.io/x"),
        ];
        refs.sort();
        let names: Vec<String> = refs.iter().map(Reference::familiar_string).collect();
        assert_eq!(names, ["a.io/x", "alpha:1", "alpha:2", "zeta"]);
    }

    /// TestIdentifierRegexp, plus the "sha256:" forms ParseAnyReference accepts.
    #[test]
    fn image_ids() {
        let id = "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821";
        assert!(is_full_id(id));
        assert!(is_full_id(&format!("sha256:{id}")));
        assert!(!is_full_id(
            "7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C"
        ));
        assert!(!is_full_id(
            "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf"
        ));
        assert!(!is_full_id(
            "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482"
        ));
        assert!(!is_full_id(&format!("sha512:{id}")));
        assert!(!is_full_id("sha256:"));
        assert!(!is_full_id(""));

        assert!(is_id_prefix("d"));
        assert!(is_id_prefix("da304e82"));
        assert!(is_id_prefix("sha256:da304e82"));
        assert!(is_id_prefix(id));
        assert!(is_id_prefix(&format!("sha256:{id}")));
        assert!(!is_id_prefix(""));
        assert!(!is_id_prefix("sha256:"));
        assert!(!is_id_prefix("DA304E82"));
        assert!(!is_id_prefix("nginx"));
        assert!(!is_id_prefix(&format!("{id}0")));
        assert!(!is_id_prefix("sha512:da304e82"));
    }
}
