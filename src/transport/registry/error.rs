//! Registry errors: the distribution API's error body, HTTP statuses, and
//! whether trying again may help.

use std::time::Duration;

use serde::Deserialize;

/// One error from a registry's JSON error body.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// e.g. `MANIFEST_UNKNOWN`, `DENIED`, `UNAUTHORIZED`.
    #[serde(default)]
    pub code: String,
    /// The registry's message.
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// Reads a registry error body; empty when the body is not one.
pub fn parse_error_body(body: &[u8]) -> Vec<ApiError> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

/// Errors talking to a registry. No variant ever carries a credential or a
/// token: URLs are the registry's own, and headers are never included.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The connection failed or broke.
    #[error("{registry}: {what}: {detail}")]
    Connection {
        /// The registry host.
        registry: String,
        /// What was being done.
        what: String,
        /// What went wrong, without secrets.
        detail: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// The registry answered with an error status.
    #[error("{registry}: {what}: {}", status_text(*status, errors))]
    Status {
        /// The registry host.
        registry: String,
        /// What was being done.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The errors in the body, if any.
        errors: Vec<ApiError>,
        /// How long the registry asked us to wait (429, 503).
        retry_after: Option<Duration>,
    },
    /// Authentication failed or was refused.
    #[error("{registry}: {what}: {detail}")]
    Auth {
        /// The registry host.
        registry: String,
        /// What was being done.
        what: String,
        /// Why.
        detail: String,
    },
    /// The registry answered something that is not what the API promises.
    #[error("{registry}: {what}: {detail}")]
    BadResponse {
        /// The registry host.
        registry: String,
        /// What was being done.
        what: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The registry cannot be reached the way policy allows.
    #[error("{registry}: {detail}")]
    Policy {
        /// The registry host.
        registry: String,
        /// Why not.
        detail: String,
    },
    /// A retryable failure that the client already retried as often as
    /// its policy allows: nobody should retry it again.
    #[error("{last} (gave up after {attempts} {})", if *attempts == 1 { "attempt" } else { "attempts" })]
    Exhausted {
        /// Tries spent since the last progress.
        attempts: u32,
        /// The last try's failure.
        last: Box<RegistryError>,
    },
}

fn status_text(status: u16, errors: &[ApiError]) -> String {
    if let Some(e) = errors.first() {
        let code = e.code.to_lowercase().replace('_', " ");
        if e.message.is_empty() || e.message == code {
            return format!("{code} (HTTP {status})");
        }
        return format!("{}: {} (HTTP {status})", code, e.message);
    }
    match status {
        401 => "unauthorized: authentication required (HTTP 401)".into(),
        403 => "denied: requested access to the resource is denied (HTTP 403)".into(),
        404 => "not found (HTTP 404)".into(),
        429 => "too many requests (HTTP 429)".into(),
        s => format!("HTTP {s}"),
    }
}

impl RegistryError {
    /// True for failures a later attempt may not meet: broken connections,
    /// server errors, rate limits.
    /// Whether the client already spent its retries on it still shows in
    /// [`RegistryError::retries_exhausted`].
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Connection { retryable, .. } => *retryable,
            RegistryError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            RegistryError::Exhausted { last, .. } => last.is_retryable(),
            _ => false,
        }
    }

    /// True when the client already retried this failure as often as its
    /// policy allows, so a caller must not try again.
    pub fn retries_exhausted(&self) -> bool {
        matches!(self, RegistryError::Exhausted { .. })
    }

    /// How long the registry asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            RegistryError::Exhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status, when the registry answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// True when the registry said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_retryability() {
        let errors = parse_error_body(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
        );
        assert_eq!(errors[0].code, "MANIFEST_UNKNOWN");
        let e = RegistryError::Status {
            registry: "r".into(),
            what: "pull".into(),
            status: 404,
            errors,
            retry_after: None,
        };
        assert_eq!(e.to_string(), "r: pull: manifest unknown (HTTP 404)");
        assert!(!e.is_retryable());
        assert!(e.is_not_found());
        let busy = RegistryError::Status {
            registry: "r".into(),
            what: "pull".into(),
            status: 429,
            errors: vec![],
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(busy.is_retryable());
        assert!(!busy.retries_exhausted());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
        let spent = RegistryError::Exhausted {
            attempts: 5,
            last: Box::new(busy),
        };
        assert!(spent.is_retryable() && spent.retries_exhausted());
        assert_eq!(spent.status(), Some(429));
        assert_eq!(
            spent.to_string(),
            "r: pull: too many requests (HTTP 429) (gave up after 5 attempts)"
        );
        assert!(parse_error_body(b"<html>").is_empty());
    }
}
