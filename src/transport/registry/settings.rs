//! What every registry operation of one strata invocation shares: the
//! insecure registries (flags and config files), CA directories, and one
//! client per registry with the user's stored credential. Clients are kept,
//! so a pipeline that talks to a registry in many steps authenticates once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::auth::Credential;
use super::credentials::{self, CredentialError};
use super::tls::TlsConfig;
use super::{Client, ClientOptions, RegistryError, config};

/// Errors setting up a registry client.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The stored credential could not be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The client could not be built.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Registry settings and clients for one strata invocation.
pub struct Registries {
    insecure: Vec<String>,
    tls: TlsConfig,
    overrides: HashMap<String, Override>,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

/// Per-registry settings that replace the defaults (a pipeline's
/// `registries:` section).
#[derive(Debug, Clone, Default)]
pub struct Override {
    /// Reach the registry without TLS verification or over plain HTTP.
    pub insecure: bool,
    /// Use this credential instead of the stored one.
    pub credential: Option<Credential>,
    /// Requests in flight at once to this registry, at most (the limit
    /// adapts below it on 429s).
    pub max_in_flight: Option<usize>,
}

impl Registries {
    /// Settings from the command line (`--insecure-registry`) and the config
    /// files (strata's `config.json`, docker's `daemon.json`).
    pub fn new(flagged_insecure: &[String]) -> Registries {
        let mut insecure = flagged_insecure.to_vec();
        insecure.extend(config::insecure_registries());
        Registries {
            insecure,
            tls: TlsConfig::standard(),
            overrides: HashMap::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the settings of `registry` (clients made later use them).
    pub fn set_override(&mut self, registry: &str, o: Override) {
        if o.insecure {
            self.insecure.push(registry.to_string());
        }
        self.overrides.insert(registry.to_string(), o);
    }

    /// Options for `registry`, with its credential (the override's, else the
    /// stored one).
    pub fn options(&self, registry: &str) -> Result<ClientOptions, SettingsError> {
        let credential = match self
            .overrides
            .get(registry)
            .and_then(|o| o.credential.clone())
        {
            Some(c) => Some(c),
            None => credentials::lookup(registry)?,
        };
        let defaults = ClientOptions::default();
        Ok(ClientOptions {
            insecure: self.insecure.clone(),
            tls: self.tls.clone(),
            credential,
            max_in_flight: self
                .overrides
                .get(registry)
                .and_then(|o| o.max_in_flight)
                .unwrap_or(defaults.max_in_flight),
            ..defaults
        })
    }

    /// The shared client for `registry`, made on first use.
    pub fn client(&self, registry: &str) -> Result<Arc<Client>, SettingsError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let client = Arc::new(Client::new(registry, &self.options(registry)?)?);
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }

    /// Forgets the client of `registry`, so the next one reads credentials
    /// again (after a login).
    pub fn forget(&self, registry: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(registry);
    }
}
