//! Pipelines: `strata run PIPELINE.yaml`. A file of steps, each one of the
//! built-in commands by the same request its command line builds, checked
//! whole before anything runs, then run in order with expressions,
//! conditions, loops, retries and timeouts, and reported.
//!
//! - `yaml`: YAML with positions, and a serde Deserializer over it;
//! - `expr`: `${{ … }}` expressions;
//! - `spec`: loading and checking a file (every problem at `FILE:LINE:COL`);
//! - `action`: the actions and their requests;
//! - `run`: running steps and the report;
//! - `schema`: the JSON Schema editors use.

pub mod action;
pub mod expr;
pub mod run;
pub mod schema;
pub mod spec;
pub mod yaml;

pub use run::{Report, RunOptions, Status, run};
pub use spec::{Diagnostic, LoadError, Pipeline, load};

use crate::transport::registry::auth::Credential;
use crate::transport::registry::settings::{Override, Registries};

use expr::Scope;
use spec::RegistrySettings;
use yaml::Mode;

/// The plugins a pipeline's `plugins:` section declares (expressions there
/// may read the environment).
pub fn declared_plugins(
    pipeline: &Pipeline,
) -> Result<std::collections::HashMap<String, crate::plugin::catalog::Declared>, LoadError> {
    let mut problems = Vec::new();
    let mut out = std::collections::HashMap::new();
    let vars = serde_json::Map::new();
    let steps = serde_json::Map::new();
    let env = |name: &str| std::env::var(name).ok();
    let scope = Scope {
        vars: &vars,
        env: &env,
        steps: &steps,
        item: None,
    };
    for (name, node) in &pipeline.plugins {
        let declared = run::evaluate_node(node, &scope, &pipeline.file)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                yaml::from_node::<crate::plugin::catalog::PluginSpec>(&n, Mode::Strict)
                    .map_err(|e| e.to_string())
            })
            .and_then(|spec| spec.declared(name));
        match declared {
            Ok(d) => {
                out.insert(name.clone(), d);
            }
            Err(message) => problems.push(Diagnostic {
                file: pipeline.file.clone(),
                pos: Some(node.pos),
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(LoadError(problems))
    }
}

/// Applies a pipeline's `registries:` section (expressions there may read
/// the environment) to `registries`.
pub fn apply_registries(pipeline: &Pipeline, registries: &mut Registries) -> Result<(), LoadError> {
    let mut problems = Vec::new();
    let vars = serde_json::Map::new();
    let steps = serde_json::Map::new();
    let env = |name: &str| std::env::var(name).ok();
    let scope = Scope {
        vars: &vars,
        env: &env,
        steps: &steps,
        item: None,
    };
    for (registry, node) in &pipeline.registries {
        let settings = run::evaluate_node(node, &scope, &pipeline.file)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                yaml::from_node::<RegistrySettings>(&n, Mode::Strict).map_err(|e| e.to_string())
            });
        match settings {
            Ok(s) => registries.set_override(
                registry,
                Override {
                    insecure: s.insecure,
                    credential: s.credentials.map(|c| Credential::Basic {
                        username: c.username,
                        password: c.password,
                    }),
                    max_in_flight: s.max_concurrent,
                },
            ),
            Err(message) => problems.push(Diagnostic {
                file: pipeline.file.clone(),
                pos: Some(node.pos),
                message: format!("registry {registry}: {message}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadError(problems))
    }
}
