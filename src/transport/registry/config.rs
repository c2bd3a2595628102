//! Where registry settings come from: strata's config directory, docker's
//! `daemon.json` for insecure registries, docker's `config.json` for
//! credentials.

use std::path::PathBuf;

use serde::Deserialize;

/// strata's configuration directory: `$STRATA_CONFIG`, else
/// `$XDG_CONFIG_HOME/strata`, else `~/.config/strata`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STRATA_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("strata"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/strata"))
}

/// docker's client configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

#[derive(Deserialize, Default)]
struct InsecureList {
    #[serde(default, rename = "insecure-registries")]
    insecure_registries: Vec<String>,
}

/// Registries marked insecure in strata's `config.json` or docker's
/// `/etc/docker/daemon.json` (both use docker's `insecure-registries` key).
pub fn insecure_registries() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/docker/daemon.json")];
    if let Some(d) = config_dir() {
        files.push(d.join("config.json"));
    }
    let mut out = Vec::new();
    for f in files {
        if let Ok(bytes) = std::fs::read(&f)
            && let Ok(list) = serde_json::from_slice::<InsecureList>(&bytes)
        {
            out.extend(list.insecure_registries);
        }
    }
    out
}
