//! What every registry command shares: settings gathered once (insecure
//! registries, CA directories) and a client per registry with the user's
//! credentials.

use std::sync::Arc;

use strata::transport::registry::{Client, ClientOptions, config, credentials, tls::TlsConfig};

/// Registry settings for one strata invocation.
pub struct Registries {
    insecure: Vec<String>,
    tls: TlsConfig,
}

impl Registries {
    /// Settings from the command line and the config files.
    pub fn new(flagged_insecure: &[String]) -> Registries {
        let mut insecure = flagged_insecure.to_vec();
        insecure.extend(config::insecure_registries());
        Registries {
            insecure,
            tls: TlsConfig::standard(),
        }
    }

    /// Options for `registry`, with its stored credential (if any).
    pub fn options(&self, registry: &str) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            insecure: self.insecure.clone(),
            tls: self.tls.clone(),
            credential: credentials::lookup(registry)?,
            ..ClientOptions::default()
        })
    }

    /// A client for `registry` using the stored credential.
    pub fn client(&self, registry: &str) -> anyhow::Result<Arc<Client>> {
        Ok(Arc::new(Client::new(registry, &self.options(registry)?)?))
    }
}
