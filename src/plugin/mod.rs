//! WebAssembly plugins: components built against `wit/plugin.wit`, run by
//! wasmtime with no access to anything but what the contract offers.
//!
//! - `bindings`: the host side of the WIT, one module per world;
//! - `engine`: the wasmtime engine (epoch deadlines, a ticker), and the
//!   on-disk cache of compiled components;
//! - `load`: reading a component, checking what it imports and exports
//!   (world, contract version, WASI) and preparing instances;
//! - `state`: what a plugin's store holds (limits, the batch it reads);
//! - `config`, `tags`, `layer`: calling each world;
//! - `catalog`: how a pipeline or the command line names a plugin;
//! - `artifact`, `fetch`: plugins as OCI artifacts, pinned by digest, and
//!   getting their components (kept in the store for offline runs).

pub mod artifact;
pub mod bindings;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod fetch;
pub mod image;
pub mod layer;
pub mod load;
pub mod state;
pub mod tags;

use std::time::Duration;

pub use engine::PluginEngine;
pub use load::{Plugin, World};

/// The contract version this strata implements.
pub const CONTRACT: &str = "0.1.0";

/// Errors of plugins: loading, running, and what they answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("plugin {name}: cannot read {path}: {source}")]
    Read {
        /// The plugin's name.
        name: String,
        /// Where it was looked for.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component is not valid or does not fit the contract.
    #[error("plugin {name}: {detail}")]
    Invalid {
        /// The plugin's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The plugin trapped, ran out of time or memory, or answered an error.
    #[error("plugin {name} ({world}): {call}{}: {detail}", entry.as_ref().map(|e| format!(", entry {e:?}")).unwrap_or_default())]
    Failed {
        /// The plugin's name.
        name: String,
        /// Its world.
        world: &'static str,
        /// The call (`entries`, `transform`, …).
        call: &'static str,
        /// The tar entry concerned, for layers.
        entry: Option<String>,
        /// What happened.
        detail: String,
    },
    /// The host failed around the plugin (reading or writing a layer).
    #[error("plugin {name}: {context}: {source}")]
    Io {
        /// The plugin's name.
        name: String,
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PluginError {
    /// The plugin concerned.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Read { name, .. }
            | PluginError::Invalid { name, .. }
            | PluginError::Failed { name, .. }
            | PluginError::Io { name, .. } => name,
        }
    }
}

/// The limits every call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time a call may take.
    pub deadline: Duration,
    /// Linear memory a plugin may grow to, in bytes.
    pub memory: usize,
    /// Fuel (instructions, roughly) a call may burn, if metered.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            memory: 256 << 20,
            fuel: None,
        }
    }
}

/// What to do when a plugin fails on an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The step fails (nothing half-transformed is kept).
    #[default]
    Fail,
    /// The item is left as it was (untransformed, or unfiltered), with a
    /// warning.
    Skip,
}

/// What a pipeline grants a plugin beyond the contract: WASI, with
/// read-only directories and named environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// Give the plugin WASI at all (a plugin built to import it).
    pub wasi: bool,
    /// Directories visible read-only, as HOST_PATH or HOST_PATH:GUEST_PATH.
    pub dirs: Vec<String>,
    /// Environment variables passed through by name.
    pub env: Vec<String>,
}
