//! How commands find plugins: by the names a pipeline's `plugins:` section
//! declares (a file or an image reference pinned by digest, settings,
//! limits, grants), or, on the command line, by a file path or a pinned
//! reference (a path that exists wins). Each plugin is loaded once per run
//! and shared by every step that uses it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use super::image::{PluginLog, Transforms};
use super::layer::Codec;
use super::load::{LoadOptions, Plugin};
use super::{Grants, Limits, OnError, PluginEngine, PluginError};

/// A plugin as a pipeline declares it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// The component file (relative to the working directory).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Or an OCI artifact holding it, pinned by digest
    /// (`REGISTRY/REPO@sha256:…`).
    #[serde(default)]
    pub image: Option<String>,
    /// Settings passed to the plugin (key/value pairs).
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    /// Wall time a call may take (`10s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Memory the plugin may use, in MiB.
    #[serde(default)]
    pub memory_mib: Option<usize>,
    /// Fuel per call (instructions, roughly); unmetered when absent.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// `fail` (the step fails) or `skip` (the item is left untransformed).
    #[serde(default)]
    pub on_error: OnError,
    /// WASI, with read-only directories and named environment variables.
    #[serde(default)]
    pub wasi: Option<Grants>,
    /// How a layer plugin's layers are compressed: `gzip` (the default, on
    /// several cores) or `zstd`. In a chain, zstd when any plugin asks.
    #[serde(default)]
    pub compression: Option<String>,
}

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A file.
    File(PathBuf),
    /// An OCI artifact, by reference.
    Image(String),
}

/// A declared plugin, resolved to what loading needs.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Its bytes' source.
    pub source: PluginSource,
    /// How it runs.
    pub options: LoadOptions,
    /// What a failure does.
    pub on_error: OnError,
    /// The compression its layers get, when it names one.
    pub compression: Option<Codec>,
}

impl PluginSpec {
    /// The declaration, checked.
    pub fn declared(&self, name: &str) -> Result<Declared, String> {
        let source = match (&self.path, &self.image) {
            (Some(p), None) => PluginSource::File(p.clone()),
            (None, Some(r)) => {
                super::artifact::pinned(r).map_err(|e| format!("plugin {name}: {e}"))?;
                PluginSource::Image(r.clone())
            }
            (Some(_), Some(_)) => {
                return Err(format!("plugin {name}: a path or an image, not both"));
            }
            (None, None) => return Err(format!("plugin {name}: needs a path or an image")),
        };
        let mut limits = Limits::default();
        if let Some(t) = &self.timeout {
            limits.deadline = crate::pipeline::spec::duration(t)
                .map_err(|e| format!("plugin {name}: timeout: {e}"))?;
            if limits.deadline < Duration::from_millis(100) {
                return Err(format!(
                    "plugin {name}: a timeout under 100ms cannot be kept"
                ));
            }
        }
        if let Some(m) = self.memory_mib {
            limits.memory = m.max(1) << 20;
        }
        limits.fuel = self.fuel;
        let compression = match self.compression.as_deref() {
            None => None,
            Some("gzip") => Some(Codec::default()),
            Some("zstd") => Some(Codec::Zstd(3)),
            Some(other) => {
                return Err(format!(
                    "plugin {name}: compression `{other}`: use gzip or zstd"
                ));
            }
        };
        let grants = match &self.wasi {
            Some(g) => Grants {
                wasi: true,
                ..g.clone()
            },
            None => Grants::default(),
        };
        Ok(Declared {
            source,
            options: LoadOptions {
                settings: self
                    .settings
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                limits,
                grants,
            },
            on_error: self.on_error,
            compression,
        })
    }
}

/// Fetches an artifact's component bytes (an OCI reference, pinned) —
/// given by the command layer, which has the registries.
pub type Fetch = Arc<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// Where a plugin the command line names comes from: a file of that path
/// when there is one, else an artifact when the name reads as a reference
/// with a tag or digest (which must then be pinned by digest), else a file
/// (whose absence the load reports).
fn undeclared(name: &str) -> PluginSource {
    if !std::path::Path::new(name).exists() && super::artifact::is_reference(name) {
        PluginSource::Image(name.to_string())
    } else {
        PluginSource::File(PathBuf::from(name))
    }
}

/// The plugins of a run.
#[derive(Default)]
pub struct Catalog {
    declared: HashMap<String, Declared>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    engines: OnceLock<(PluginEngine, PluginEngine)>,
    cache: Option<PathBuf>,
}

impl Catalog {
    /// A catalog of `declared` plugins, compiled components cached in `cache`.
    pub fn new(declared: HashMap<String, Declared>, cache: Option<PathBuf>) -> Catalog {
        Catalog {
            declared,
            loaded: Mutex::new(HashMap::new()),
            engines: OnceLock::new(),
            cache,
        }
    }

    /// Whether `name` is declared.
    pub fn knows(&self, name: &str) -> bool {
        self.declared.contains_key(name)
    }

    fn engine(&self, fuel: bool) -> Result<PluginEngine, PluginError> {
        if self.engines.get().is_none() {
            let plain = PluginEngine::new(self.cache.clone(), false);
            let fueled = PluginEngine::new(self.cache.clone(), true);
            match (plain, fueled) {
                (Ok(p), Ok(f)) => {
                    let _ = self.engines.set((p, f));
                }
                (Err(e), _) | (_, Err(e)) => {
                    return Err(PluginError::Invalid {
                        name: "engine".into(),
                        detail: format!("cannot start the WebAssembly engine: {e}"),
                    });
                }
            }
        }
        let (p, f) = self.engines.get().expect("set above");
        Ok(if fuel { f.clone() } else { p.clone() })
    }

    /// The plugin `name`: a declared one, else (on the command line) a
    /// component file of that path. Loaded once.
    pub fn plugin(&self, name: &str, fetch: Option<&Fetch>) -> Result<Arc<Plugin>, PluginError> {
        if let Some(p) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(p.clone());
        }
        let declared = match self.declared.get(name) {
            Some(d) => d.clone(),
            None => Declared {
                source: undeclared(name),
                options: LoadOptions::default(),
                on_error: OnError::Fail,
                compression: None,
            },
        };
        let shown = match &declared.source {
            PluginSource::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|_| !self.declared.contains_key(name))
                .unwrap_or_else(|| name.to_string()),
            PluginSource::Image(r) if !self.declared.contains_key(name) => {
                crate::reference::Reference::parse(r)
                    .map(|r| super::artifact::short_name(&r))
                    .unwrap_or_else(|_| name.to_string())
            }
            PluginSource::Image(_) => name.to_string(),
        };
        let engine = self.engine(declared.options.limits.fuel.is_some())?;
        let plugin = match &declared.source {
            PluginSource::File(path) => {
                Plugin::load_file(&engine, &shown, path, &declared.options)?
            }
            PluginSource::Image(reference) => {
                let fetch = fetch.ok_or_else(|| PluginError::Invalid {
                    name: shown.clone(),
                    detail: "plugins from images need registry access here".into(),
                })?;
                let bytes = fetch(reference).map_err(|detail| PluginError::Invalid {
                    name: shown.clone(),
                    detail,
                })?;
                Plugin::load(&engine, &shown, &bytes, &declared.options)?
            }
        };
        let plugin = Arc::new(plugin);
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// What a plugin's failure does.
    pub fn on_error(&self, name: &str) -> OnError {
        self.declared
            .get(name)
            .map_or(OnError::Fail, |d| d.on_error)
    }

    /// The transforms named, in order, ready to apply.
    pub fn transforms(
        &self,
        names: &[String],
        fetch: Option<&Fetch>,
        log: Option<PluginLog>,
    ) -> Result<Transforms, PluginError> {
        let mut plugins = Vec::with_capacity(names.len());
        let mut skip = Vec::new();
        let mut codec = Codec::default();
        for n in names {
            let p = self.plugin(n, fetch)?;
            if self.on_error(n) == OnError::Skip {
                skip.push(p.name().to_string());
            }
            if let Some(c @ Codec::Zstd(_)) = self.declared.get(n).and_then(|d| d.compression) {
                codec = c;
            }
            plugins.push(p);
        }
        let mut t = Transforms::from_plugins(plugins)?;
        t.skip = skip;
        t.codec = codec;
        t.log = log;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PluginSpec {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
    }

    #[test]
    fn a_declaration_names_a_file_or_an_image_and_its_limits() {
        let d = spec(r#"{"path": "p.wasm", "timeout": "2s", "memory_mib": 64, "fuel": 1000, "compression": "zstd", "settings": {"a": "1"}}"#)
            .declared("p")
            .unwrap();
        assert_eq!(d.source, PluginSource::File("p.wasm".into()));
        assert_eq!(d.options.limits.deadline, Duration::from_secs(2));
        assert_eq!(d.options.limits.memory, 64 << 20);
        assert_eq!(d.options.limits.fuel, Some(1000));
        assert_eq!(d.compression, Some(Codec::Zstd(3)));
        assert_eq!(d.options.settings, [("a".to_string(), "1".to_string())]);
        assert!(!d.options.grants.wasi);
        // An image is pinned by digest.
        let image = format!("r/p@sha256:{}", "0".repeat(64));
        let w = spec(&format!(
            r#"{{"image": "{image}", "wasi": {{"dirs": ["/srv"]}}}}"#
        ))
        .declared("w")
        .unwrap();
        assert_eq!(w.source, PluginSource::Image(image));
        assert!(w.options.grants.wasi);
    }

    #[test]
    fn what_cannot_be_kept_is_refused_naming_the_plugin() {
        let e = |json: &str| spec(json).declared("x").unwrap_err();
        assert_eq!(
            e(r#"{"path": "a", "image": "b"}"#),
            "plugin x: a path or an image, not both"
        );
        assert_eq!(e("{}"), "plugin x: needs a path or an image");
        assert_eq!(
            e(r#"{"path": "a", "timeout": "50ms"}"#),
            "plugin x: a timeout under 100ms cannot be kept"
        );
        assert_eq!(
            e(r#"{"path": "a", "compression": "lz4"}"#),
            "plugin x: compression `lz4`: use gzip or zstd"
        );
    }

    #[test]
    fn on_the_command_line_a_name_is_a_file() {
        let c = Catalog::new(HashMap::new(), None);
        assert!(!c.knows("plugins/slim/slim.wasm"));
        assert_eq!(c.on_error("plugins/slim/slim.wasm"), OnError::Fail);
        let Err(err) = c.plugin("/nonexistent/p.wasm", None) else {
            panic!("a missing file loaded");
        };
        let err = err.to_string();
        assert!(
            err.starts_with("plugin p: cannot read /nonexistent/p.wasm: "),
            "{err}"
        );
    }

    #[test]
    fn a_declared_image_must_be_pinned() {
        let hex = "b".repeat(64);
        let pinned = format!("127.0.0.1:5000/p/stamp@sha256:{hex}");
        let d = spec(&format!(r#"{{"image": "{pinned}"}}"#))
            .declared("stamp")
            .unwrap();
        assert_eq!(d.source, PluginSource::Image(pinned));
        let e = spec(r#"{"image": "127.0.0.1:5000/p/stamp:v1"}"#)
            .declared("stamp")
            .unwrap_err();
        assert!(
            e.starts_with("plugin stamp: 127.0.0.1:5000/p/stamp:v1: not pinned by digest"),
            "{e}"
        );
    }

    #[test]
    fn the_command_line_names_a_file_or_a_pinned_reference() {
        let hex = "c".repeat(64);
        let reference = format!("reg.example/p/slim@sha256:{hex}");
        assert_eq!(
            undeclared(&reference),
            PluginSource::Image(reference.clone())
        );
        assert_eq!(
            undeclared("plugins/slim/slim.wasm"),
            PluginSource::File("plugins/slim/slim.wasm".into())
        );
    }
}
