//! TLS trust for registries, in docker's `certs.d` layout:
//! `DIR/HOST:PORT/*.crt` are extra certificate authorities for that registry.

use std::path::PathBuf;

use super::error::RegistryError;

/// Where to look for per-registry CA certificates.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// `certs.d` roots, searched in order.
    pub cert_dirs: Vec<PathBuf>,
}

impl TlsConfig {
    /// docker's `/etc/docker/certs.d`, then strata's own
    /// `$XDG_CONFIG_HOME/strata/certs.d` (or `~/.config/strata/certs.d`).
    pub fn standard() -> TlsConfig {
        let mut cert_dirs = vec![PathBuf::from("/etc/docker/certs.d")];
        if let Some(dir) = crate::transport::registry::config::config_dir() {
            cert_dirs.push(dir.join("certs.d"));
        }
        TlsConfig { cert_dirs }
    }

    /// The extra roots for `registry`, from every `*.crt` in its directories.
    pub fn roots_for(&self, registry: &str) -> Result<Vec<reqwest::Certificate>, RegistryError> {
        let mut out = Vec::new();
        for dir in &self.cert_dirs {
            let dir = dir.join(registry);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            paths.sort();
            for path in paths {
                let pem = std::fs::read(&path).map_err(|e| RegistryError::Policy {
                    registry: registry.into(),
                    detail: format!("cannot read CA certificate {}: {e}", path.display()),
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::Policy {
                        registry: registry.into(),
                        detail: format!("{} is not a PEM certificate: {e}", path.display()),
                    }
                })?;
                out.extend(certs);
            }
        }
        Ok(out)
    }
}
