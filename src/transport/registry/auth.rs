//! Authentication: `WWW-Authenticate` challenges, Bearer tokens (fetched
//! per scope and cached), and Basic credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// What a user authenticates with. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user.
        username: String,
        /// The secret.
        password: String,
    },
    /// An OAuth2 refresh token, as `docker login` stores for some registries.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for Basic auth.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Credential::IdentityToken(_) => None,
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower-cased.
    pub scheme: String,
    /// Its parameters (`realm`, `service`, `scope`, `error`).
    pub params: HashMap<String, String>,
}

/// Parses a `WWW-Authenticate` header: a scheme, then `key=value` pairs,
/// values quoted or not, separated by commas.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_lowercase(),
        params,
    })
}

/// Bearer tokens by scope, each kept until shortly before it expires.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// A cached, still valid token for the scope.
    pub fn get(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// Keeps a token for `expires_in` seconds, less a margin for slow requests.
    pub fn put(&self, scope: &str, token: String, expires_in: u64) {
        let life = Duration::from_secs(expires_in.max(60)).saturating_sub(Duration::from_secs(10));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(scope.to_string(), (token, Instant::now() + life));
    }

    /// Forgets a token the registry refused.
    pub fn forget(&self, scope: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope);
    }
}

/// A token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    /// The token (docker's name).
    #[serde(default)]
    pub token: Option<String>,
    /// The token (OAuth2's name).
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds (60 when absent, per the spec).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, whichever field carries it.
    pub fn into_token(self) -> Option<(String, u64)> {
        let expires = self.expires_in.unwrap_or(60);
        self.token
            .or(self.access_token)
            .filter(|t| !t.is_empty())
            .map(|t| (t, expires))
    }
}

/// The scope string for a repository and actions.
pub fn repository_scope(repository: &str, actions: &[&str]) -> String {
    format!("repository:{repository}:{}", actions.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare_values() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "Registry Realm");
        let bare = parse_challenge("Bearer realm=http://x/token, service=svc").unwrap();
        assert_eq!(bare.params["service"], "svc");
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn tokens_are_cached_per_scope() {
        let cache = TokenCache::default();
        cache.put("repository:a:pull", "t1".into(), 300);
        assert_eq!(cache.get("repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(cache.get("repository:a:pull,push"), None);
        cache.forget("repository:a:pull");
        assert_eq!(cache.get("repository:a:pull"), None);
    }
}
