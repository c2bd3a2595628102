//! Credentials in docker's format: `config.json` (`auths`, `credsStore`,
//! `credHelpers`) and `docker-credential-*` helpers, read for every
//! registry request and written by `login` / `logout`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::auth::Credential;
use super::config::docker_config_dir;

/// Errors reading or writing credentials. None carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The config file cannot be read or written.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A credential helper failed.
    #[error(
        "credential helper docker-credential-{helper} failed to {action} credentials for {server}: {detail}"
    )]
    Helper {
        /// The helper's name.
        helper: String,
        /// get, store or erase.
        action: &'static str,
        /// The server key.
        server: String,
        /// What it said (its stderr, which helpers keep free of secrets).
        detail: String,
    },
    /// No home directory to keep credentials in.
    #[error("cannot find docker's config directory: set DOCKER_CONFIG or HOME")]
    NoConfigDir,
}

/// The key docker files a registry's credentials under.
pub fn server_key(registry: &str) -> String {
    if registry == "docker.io"
        || registry == "index.docker.io"
        || registry == "registry-1.docker.io"
    {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn config_path() -> Result<PathBuf, CredentialError> {
    Ok(docker_config_dir()
        .ok_or(CredentialError::NoConfigDir)?
        .join("config.json"))
}

fn read_config() -> Result<(PathBuf, Map<String, Value>), CredentialError> {
    let path = config_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| CredentialError::File {
                path: path.clone(),
                detail: format!("invalid JSON: {e}"),
            })?;
            match v {
                Value::Object(m) => Ok((path, m)),
                _ => Err(CredentialError::File {
                    path,
                    detail: "not a JSON object".into(),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, Map::new())),
        Err(e) => Err(CredentialError::File {
            path,
            detail: e.to_string(),
        }),
    }
}

fn write_config(path: &PathBuf, config: &Map<String, Value>) -> Result<(), CredentialError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| CredentialError::File {
        path: path.clone(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("json.strata-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    let text = serde_json::to_string_pretty(&Value::Object(config.clone())).unwrap_or_default();
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The helper configured for a server: `credHelpers[server]`, else `credsStore`.
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(Value::as_str)
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(
    helper: &str,
    action: &'static str,
    server: &str,
    input: &[u8],
) -> Result<Vec<u8>, CredentialError> {
    let fail = |detail: String| CredentialError::Helper {
        helper: helper.into(),
        action,
        server: server.into(),
        detail,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        // Helpers print "credentials not found in native keychain" to stdout.
        let text = String::from_utf8_lossy(if out.stderr.is_empty() {
            &out.stdout
        } else {
            &out.stderr
        })
        .trim()
        .to_string();
        return Err(fail(text));
    }
    Ok(out.stdout)
}

/// The credential docker would use for `registry`, if any: read with the
/// `docker_credential` crate (`credHelpers`, `auths`, `credsStore`, in
/// docker's order), trying the bare host and the URL forms old logins wrote.
pub fn lookup(registry: &str) -> Result<Option<Credential>, CredentialError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let path = config_path()?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialError::File {
                path,
                detail: e.to_string(),
            });
        }
    };
    let key = server_key(registry);
    for k in [
        key.clone(),
        format!("https://{key}"),
        format!("http://{key}"),
    ] {
        match docker_credential::get_credential_from_reader(&bytes[..], &k) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credential::Basic { username, password }));
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                return Ok(Some(Credential::IdentityToken(token)));
            }
            Err(E::NoCredentialConfigured) => continue,
            // A helper that has nothing for this server says so on stdout.
            Err(E::HelperFailure { stdout, .. }) if stdout.contains("not found") => continue,
            Err(E::HelperFailure {
                helper,
                stderr,
                stdout,
            }) => {
                let detail = if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                };
                return Err(CredentialError::Helper {
                    helper,
                    action: "get",
                    server: k,
                    detail: detail.trim().to_string(),
                });
            }
            Err(e @ (E::HelperCommunicationError | E::MalformedHelperResponse)) => {
                return Err(CredentialError::Helper {
                    helper: helper_for(&read_config()?.1, &k).unwrap_or_default(),
                    action: "get",
                    server: k,
                    detail: e.to_string(),
                });
            }
            Err(e) => {
                return Err(CredentialError::File {
                    path,
                    detail: format!("credentials for {k}: {e}"),
                });
            }
        }
    }
    Ok(None)
}

/// Where `store` put the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In `config.json`, base64 but unencrypted (docker warns about this).
    File(PathBuf),
    /// In a credential helper.
    Helper(String),
}

/// Saves a credential as `docker login` does.
pub fn store(registry: &str, username: &str, password: &str) -> Result<Stored, CredentialError> {
    let (path, mut config) = read_config()?;
    let key = server_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        let payload =
            serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        run_helper(&helper, "store", &key, payload.to_string().as_bytes())?;
        // docker leaves an empty entry so `docker logout` knows of the login.
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(a) = auths {
            a.insert(key, Value::Object(Map::new()));
        }
        write_config(&path, &config)?;
        return Ok(Stored::Helper(helper));
    }
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Value::Object(a) = auths {
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(encoded));
        a.insert(key, Value::Object(entry));
    }
    write_config(&path, &config)?;
    Ok(Stored::File(path))
}

/// Removes a credential as `docker logout` does. False when there was none.
pub fn erase(registry: &str) -> Result<bool, CredentialError> {
    let (path, mut config) = read_config()?;
    let key = server_key(registry);
    let mut found = false;
    if let Some(helper) = helper_for(&config, &key) {
        match run_helper(&helper, "erase", &key, key.as_bytes()) {
            Ok(_) => found = true,
            Err(CredentialError::Helper { detail, .. }) if detail.contains("not found") => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(Value::Object(a)) = config.get_mut("auths") {
        for k in [
            key.clone(),
            format!("https://{key}"),
            format!("http://{key}"),
        ] {
            found |= a.remove(&k).is_some();
        }
    }
    if found {
        write_config(&path, &config)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_filed_under_its_v1_url() {
        assert_eq!(server_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
