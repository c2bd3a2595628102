//! Where an image is, in skopeo's transport syntax:
//!
//! | text | place |
//! |---|---|
//! | `docker://NAME[:TAG\|@DIGEST]` | a registry |
//! | `oci:DIR[:REF]` | an OCI image layout directory |
//! | `oci-archive:FILE[:REF]` | a tar of an OCI image layout |
//! | `docker-archive:FILE[:NAME[:TAG]]` | a `docker save` archive |
//! | `NAME[:TAG]`, `NAME@DIGEST`, an image ID | strata's local store |
//!
//! Splitting follows skopeo: the transport is what comes before the first
//! `:`; for the three file transports the next `:` ends the path and the
//! rest is the reference, so a path cannot contain `:` (skopeo has the same
//! limit; reach such a file through a symlink or a relative path), while a
//! reference can (`oci:DIR:sha256:…`). An empty reference (`oci:DIR:`) is no
//! reference. `oci:` and `oci-archive:` references must fit the OCI ref-name
//! grammar skopeo checks; `docker://` and `docker-archive:` ones are docker
//! references, given `latest` when they have neither tag nor digest. Like
//! skopeo, `docker://` refuses a tag and a digest together and
//! `docker-archive:` refuses digests.
//!
//! Text whose prefix is no transport is a local image when it is a valid
//! reference or ID (`nginx:1.25`, `localhost:5000/app`, `sha256:3f…`), and
//! an error naming the transports otherwise. skopeo's other transports
//! (`dir:`, `containers-storage:`, …) are refused by name.

use std::fmt;
use std::path::PathBuf;

use crate::reference::{self, Reference, ReferenceError};
use crate::transport::layout::is_ref_name;

/// skopeo transports strata does not offer, refused by name rather than
/// read as a local image name.
const UNSUPPORTED: [&str; 7] = [
    "atomic",
    "containers-storage",
    "dir",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

/// The forms strata accepts, for error messages.
const KNOWN: &str = "docker://NAME, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME[:TAG]] or a local image name or ID";

/// A place an image is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `docker://NAME[:TAG|@DIGEST]`: a repository on a registry (`latest`
    /// when neither tag nor digest is given).
    Registry(Reference),
    /// `oci:DIR[:REF]`: an OCI image layout directory.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to read or write.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to read or write.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:NAME[:TAG]]`: a `docker save` archive.
    DockerArchive {
        /// The archive.
        path: PathBuf,
        /// The image's name (always tagged).
        reference: Option<Reference>,
    },
    /// A reference or image ID in strata's local store, as given.
    Store(String),
}

/// Why an address was refused. Each message quotes the address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Nothing was given.
    #[error("empty image address: use {KNOWN}")]
    Empty,
    /// A prefix that is no transport, on text that is no image name either.
    #[error("{text:?}: unknown transport {transport:?}; use {KNOWN}")]
    UnknownTransport {
        /// The prefix before the first `:`.
        transport: String,
        /// The whole address.
        text: String,
    },
    /// One of skopeo's transports that strata does not offer.
    #[error("{text:?}: strata does not support the {transport:?} transport; use {KNOWN}{hint}")]
    Unsupported {
        /// The transport.
        transport: String,
        /// The whole address.
        text: String,
        /// How to name a local image that happens to look like this.
        hint: String,
    },
    /// `docker:` without the `//`.
    #[error("{text:?}: a registry address starts with docker:// (as in docker://{rest})")]
    DockerWithoutSlashes {
        /// The whole address.
        text: String,
        /// What followed `docker:`.
        rest: String,
    },
    /// A docker reference that does not parse.
    #[error("{text:?}: {source}")]
    Reference {
        /// The whole address.
        text: String,
        /// Why the reference was refused.
        #[source]
        source: ReferenceError,
    },
    /// `docker://NAME:TAG@DIGEST`.
    #[error(
        "{text:?}: a registry reference with both a tag and a digest is not supported; give one"
    )]
    TagAndDigest {
        /// The whole address.
        text: String,
    },
    /// `docker-archive:FILE:NAME@DIGEST`.
    #[error("{text:?}: docker-archive names an image by NAME[:TAG], not by digest")]
    ArchiveDigest {
        /// The whole address.
        text: String,
    },
    /// `docker-archive:FILE:@N`.
    #[error(
        "{text:?}: choosing a docker-archive image by position (@N) is not supported; name it as NAME[:TAG]"
    )]
    ArchivePosition {
        /// The whole address.
        text: String,
    },
    /// `oci:` or another file transport with an empty path.
    #[error("{text:?}: {transport}: needs a path")]
    MissingPath {
        /// The transport.
        transport: &'static str,
        /// The whole address.
        text: String,
    },
    /// An `oci:` or `oci-archive:` reference outside the OCI ref-name grammar.
    #[error(
        "{text:?}: invalid image name {name:?}: use letters, digits and . _ - : @ + between them, and / between components"
    )]
    InvalidRefName {
        /// The whole address.
        text: String,
        /// The reference part.
        name: String,
    },
}

impl Address {
    /// Parses an address; see the module documentation for the rules.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        let Some((transport, rest)) = text.split_once(':') else {
            return store(text);
        };
        match transport {
            "docker" => registry(text, rest),
            "oci" => {
                let (dir, reference) = oci_parts(text, "oci", rest)?;
                Ok(Address::Layout { dir, reference })
            }
            "oci-archive" => {
                let (path, reference) = oci_parts(text, "oci-archive", rest)?;
                Ok(Address::OciArchive { path, reference })
            }
            "docker-archive" => docker_archive(text, rest),
            t if UNSUPPORTED.contains(&t) => {
                let hint = match Reference::parse(text) {
                    Ok(r) => format!("; for the local image, write {r}"),
                    Err(_) => String::new(),
                };
                Err(AddressError::Unsupported {
                    transport: t.to_string(),
                    text: text.to_string(),
                    hint,
                })
            }
            t => store(text).map_err(|_| AddressError::UnknownTransport {
                transport: t.to_string(),
                text: text.to_string(),
            }),
        }
    }
}

/// A local image name or ID, checked but kept as written (the store's
/// lookup gives it docker's meaning: full ID, name, then ID prefix).
fn store(text: &str) -> Result<Address, AddressError> {
    if reference::is_full_id(text) || reference::is_id_prefix(text) {
        return Ok(Address::Store(text.to_string()));
    }
    Reference::parse(text)
        .map(|_| Address::Store(text.to_string()))
        .map_err(|source| AddressError::Reference {
            text: text.to_string(),
            source,
        })
}

fn registry(text: &str, rest: &str) -> Result<Address, AddressError> {
    let Some(name) = rest.strip_prefix("//") else {
        return Err(AddressError::DockerWithoutSlashes {
            text: text.to_string(),
            rest: rest.to_string(),
        });
    };
    let r = Reference::parse(name).map_err(|source| AddressError::Reference {
        text: text.to_string(),
        source,
    })?;
    if r.tag().is_some() && r.digest().is_some() {
        return Err(AddressError::TagAndDigest {
            text: text.to_string(),
        });
    }
    Ok(Address::Registry(r.with_default_tag()))
}

/// `PATH[:REF]` split at the first `:`, the path non-empty, the reference
/// (when not empty) checked against the OCI ref-name grammar.
fn oci_parts(
    text: &str,
    transport: &'static str,
    rest: &str,
) -> Result<(PathBuf, Option<String>), AddressError> {
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, (!r.is_empty()).then_some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(AddressError::MissingPath {
            transport,
            text: text.to_string(),
        });
    }
    if let Some(r) = reference
        && !is_ref_name(r)
    {
        return Err(AddressError::InvalidRefName {
            text: text.to_string(),
            name: r.to_string(),
        });
    }
    Ok((PathBuf::from(path), reference.map(str::to_string)))
}

fn docker_archive(text: &str, rest: &str) -> Result<Address, AddressError> {
    let (path, name) = match rest.split_once(':') {
        Some((p, n)) => (p, (!n.is_empty()).then_some(n)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(AddressError::MissingPath {
            transport: "docker-archive",
            text: text.to_string(),
        });
    }
    let reference = match name {
        None => None,
        Some(n) if n.starts_with('@') => {
            return Err(AddressError::ArchivePosition {
                text: text.to_string(),
            });
        }
        Some(n) => {
            let r = Reference::parse(n).map_err(|source| AddressError::Reference {
                text: text.to_string(),
                source,
            })?;
            if r.digest().is_some() {
                return Err(AddressError::ArchiveDigest {
                    text: text.to_string(),
                });
            }
            Some(r.with_default_tag())
        }
    };
    Ok(Address::DockerArchive {
        path: PathBuf::from(path),
        reference,
    })
}

impl fmt::Display for Address {
    /// The text form, which [`Address::parse`] reads back to the same
    /// address (references in their full form: `docker.io/library/…`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = |r: &Option<String>| r.as_ref().map(|r| format!(":{r}")).unwrap_or_default();
        match self {
            Address::Registry(r) => write!(f, "docker://{r}"),
            Address::Layout { dir, reference } => {
                write!(f, "oci:{}{}", dir.display(), suffix(reference))
            }
            Address::OciArchive { path, reference } => {
                write!(f, "oci-archive:{}{}", path.display(), suffix(reference))
            }
            Address::DockerArchive { path, reference } => {
                let r = reference.as_ref().map(|r| r.to_string());
                write!(f, "docker-archive:{}{}", path.display(), suffix(&r))
            }
            Address::Store(s) => f.write_str(s),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    /// Same as [`Address::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Address {
        Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn fails(s: &str) -> AddressError {
        match Address::parse(s) {
            Ok(a) => panic!("{s} parsed as {a:?}"),
            Err(e) => e,
        }
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn registry_addresses_are_docker_references_with_a_default_tag() {
        assert_eq!(
            parse("docker://nginx"),
            Address::Registry(r("docker.io/library/nginx:latest"))
        );
        assert_eq!(
            parse("docker://localhost:5000/app:1.0"),
            Address::Registry(r("localhost:5000/app:1.0"))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let by_digest = parse(&format!("docker://quay.io/x/y@{digest}"));
        assert_eq!(
            by_digest,
            Address::Registry(r(&format!("quay.io/x/y@{digest}")))
        );
        assert_eq!(
            by_digest.to_string(),
            format!("docker://quay.io/x/y@{digest}")
        );
        assert_eq!(
            parse("docker://nginx").to_string(),
            "docker://docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn registry_errors() {
        assert!(matches!(
            fails("docker:nginx"),
            AddressError::DockerWithoutSlashes { .. }
        ));
        let e = fails("docker://Nginx");
        assert!(matches!(e, AddressError::Reference { .. }), "{e}");
        assert!(e.to_string().contains("must be lowercase"), "{e}");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            fails(&format!("docker://nginx:1@{digest}")),
            AddressError::TagAndDigest { .. }
        ));
        assert!(matches!(fails("docker://"), AddressError::Reference { .. }));
    }

    #[test]
    fn layout_addresses_split_at_the_first_colon_after_the_transport() {
        assert_eq!(
            parse("oci:/tmp/l"),
            Address::Layout {
                dir: "/tmp/l".into(),
                reference: None
            }
        );
        assert_eq!(
            parse("oci:out:v1"),
            Address::Layout {
                dir: "out".into(),
                reference: Some("v1".into())
            }
        );
        // The reference keeps every later colon: full names and digests fit.
        assert_eq!(
            parse("oci:/l:docker.io/library/debian:bookworm"),
            Address::Layout {
                dir: "/l".into(),
                reference: Some("docker.io/library/debian:bookworm".into())
            }
        );
        let digest = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            parse(&format!("oci:/l:{digest}")),
            Address::Layout {
                dir: "/l".into(),
                reference: Some(digest)
            }
        );
        // An empty reference is none.
        assert_eq!(
            parse("oci:/l:"),
            Address::Layout {
                dir: "/l".into(),
                reference: None
            }
        );
        for text in ["oci:/tmp/l", "oci:out:v1", "oci:/l:a/b:c"] {
            assert_eq!(parse(text).to_string(), text);
        }
    }

    #[test]
    fn oci_archive_addresses() {
        assert_eq!(
            parse("oci-archive:/tmp/a.tar:bookworm"),
            Address::OciArchive {
                path: "/tmp/a.tar".into(),
                reference: Some("bookworm".into())
            }
        );
        assert_eq!(
            parse("oci-archive:a.tar"),
            Address::OciArchive {
                path: "a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            parse("oci-archive:a.tar:x").to_string(),
            "oci-archive:a.tar:x"
        );
    }

    #[test]
    fn oci_errors() {
        assert!(matches!(
            fails("oci:"),
            AddressError::MissingPath {
                transport: "oci",
                ..
            }
        ));
        assert!(matches!(
            fails("oci-archive::v1"),
            AddressError::MissingPath {
                transport: "oci-archive",
                ..
            }
        ));
        for bad in [
            "oci:/l:-v1",
            "oci:/l:a b",
            "oci:/l:a//b",
            "oci:/l:a..b",
            "oci:/l:v1/",
        ] {
            let e = fails(bad);
            assert!(
                matches!(e, AddressError::InvalidRefName { .. }),
                "{bad}: {e}"
            );
        }
        assert!(is_ref_name("a--b"));
        assert!(!is_ref_name("a---b"));
    }

    #[test]
    fn docker_archive_addresses() {
        assert_eq!(
            parse("docker-archive:/tmp/d.tar"),
            Address::DockerArchive {
                path: "/tmp/d.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            parse("docker-archive:d.tar:peers/debian"),
            Address::DockerArchive {
                path: "d.tar".into(),
                reference: Some(r("peers/debian:latest"))
            }
        );
        // NAME:TAG: the path ends at the first colon, the tag's stays.
        let a = parse("docker-archive:d.tar:localhost:5000/app:2");
        assert_eq!(
            a,
            Address::DockerArchive {
                path: "d.tar".into(),
                reference: Some(r("localhost:5000/app:2"))
            }
        );
        assert_eq!(a.to_string(), "docker-archive:d.tar:localhost:5000/app:2");
        assert_eq!(parse(&a.to_string()), a);
    }

    #[test]
    fn docker_archive_errors() {
        let digest = format!("sha256:{}", "c".repeat(64));
        assert!(matches!(
            fails(&format!("docker-archive:d.tar:app@{digest}")),
            AddressError::ArchiveDigest { .. }
        ));
        assert!(matches!(
            fails("docker-archive:d.tar:@0"),
            AddressError::ArchivePosition { .. }
        ));
        assert!(matches!(
            fails("docker-archive::app"),
            AddressError::MissingPath { .. }
        ));
        assert!(matches!(
            fails("docker-archive:d.tar:App"),
            AddressError::Reference { .. }
        ));
    }

    #[test]
    fn bare_names_and_ids_are_the_store() {
        for text in [
            "nginx",
            "nginx:1.25",
            "localhost:5000/app",
            "foo:bar",
            "sha256:3f4e",
            "3f4e",
            &"d".repeat(64),
            &format!("sha256:{}", "d".repeat(64)),
        ] {
            assert_eq!(parse(text), Address::Store(text.to_string()));
            assert_eq!(parse(text).to_string(), text);
        }
    }

    #[test]
    fn unknown_and_unsupported_transports_are_named() {
        let e = fails("foo:/tmp/x");
        assert_eq!(
            e,
            AddressError::UnknownTransport {
                transport: "foo".into(),
                text: "foo:/tmp/x".into()
            }
        );
        assert!(e.to_string().contains("oci:DIR[:REF]"), "{e}");
        let e = fails("containers-storage:[overlay@/var/lib/c]nginx");
        assert!(
            matches!(&e, AddressError::Unsupported { transport, hint, .. } if transport == "containers-storage" && hint.is_empty()),
            "{e}"
        );
        // dir:x is also a valid image name: the message says how to write that.
        let e = fails("dir:x");
        assert!(
            e.to_string()
                .ends_with("; for the local image, write docker.io/library/dir:x"),
            "{e}"
        );
        assert_eq!(fails(""), AddressError::Empty);
        assert!(matches!(fails("Nginx"), AddressError::Reference { .. }));
    }
}
