//! Loading a plugin: its bytes, digest and compiled component; what it
//! exports (which world, which version of the contract) and imports
//! (nothing beyond the world's own interfaces, WASI only when granted);
//! a pre-linked instance to make fresh instances from cheaply.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::{Store, StoreLimitsBuilder};

use crate::digest::{self, Digest};

use super::bindings;
use super::engine::PluginEngine;
use super::state::{HostState, LogSink, TagFacts, WasiState};
use super::{CONTRACT, Grants, Limits, PluginError};

const PACKAGE: &str = "strata:plugin/";

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `layer-transform`.
    Layer,
    /// `config-transform`.
    Config,
    /// `tag-filter`.
    Tags,
}

impl World {
    /// The world's name in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            World::Layer => "layer-transform",
            World::Config => "config-transform",
            World::Tags => "tag-filter",
        }
    }

    fn export(self) -> &'static str {
        match self {
            World::Layer => "layer-transformer",
            World::Config => "config-transformer",
            World::Tags => "tag-filterer",
        }
    }

    fn imports(self) -> &'static [&'static str] {
        match self {
            World::Layer => &["log", "layer-host", "types"],
            World::Config => &["log", "types"],
            World::Tags => &["log", "registry", "types"],
        }
    }

    fn all() -> [World; 3] {
        [World::Layer, World::Config, World::Tags]
    }
}

/// What a component says about itself, read without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anatomy {
    /// Its worlds (by its exports).
    pub worlds: Vec<World>,
    /// Every import, by name.
    pub imports: Vec<String>,
    /// Every export, by name.
    pub exports: Vec<String>,
}

/// A loaded plugin, ready to instantiate.
pub struct Plugin {
    name: String,
    digest: Digest,
    size: u64,
    world: World,
    anatomy: Anatomy,
    engine: PluginEngine,
    pre: InstancePre<HostState>,
    grants: Grants,
    limits: Limits,
    settings: Vec<(String, String)>,
}

/// How a plugin is to run.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Its settings, passed to every call.
    pub settings: Vec<(String, String)>,
    /// Limits on every call.
    pub limits: Limits,
    /// WASI, when granted.
    pub grants: Grants,
}

fn invalid(name: &str, detail: impl Into<String>) -> PluginError {
    PluginError::Invalid {
        name: name.to_string(),
        detail: detail.into(),
    }
}

/// The version of `strata:plugin` an interface name carries.
fn version_of(name: &str) -> Option<&str> {
    name.strip_prefix(PACKAGE)?.split_once('@').map(|(_, v)| v)
}

/// Reads a component's imports and exports.
pub fn anatomy(engine: &PluginEngine, component: &wasmtime::component::Component) -> Anatomy {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    let worlds = World::all()
        .into_iter()
        .filter(|w| exports.contains(&format!("{PACKAGE}{}@{CONTRACT}", w.export())))
        .collect();
    Anatomy {
        worlds,
        imports,
        exports,
    }
}

impl Plugin {
    /// Loads the component at `path` as `name`.
    pub fn load_file(
        engine: &PluginEngine,
        name: &str,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            name: name.to_string(),
            path: path.display().to_string(),
            source,
        })?;
        Plugin::load(engine, name, &bytes, options)
    }

    /// Loads a component from its bytes: compiles (or finds it compiled),
    /// checks its world, contract version and imports, and links it.
    pub fn load(
        engine: &PluginEngine,
        name: &str,
        bytes: &[u8],
        options: &LoadOptions,
    ) -> Result<Plugin, PluginError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(invalid(name, "not a WebAssembly file"));
        }
        let digest = digest::sha256_of(bytes);
        let component = engine.component(bytes, &digest).map_err(|e| {
            invalid(
                name,
                format!(
                    "not a WebAssembly component this strata can run: {}",
                    one_line(&e)
                ),
            )
        })?;
        let anatomy = anatomy(engine, &component);
        // A component built against another version of the contract says so
        // in its export names.
        for export in &anatomy.exports {
            if let Some(v) = version_of(export)
                && v != CONTRACT
            {
                return Err(invalid(
                    name,
                    format!(
                        "built against strata:plugin@{v} (it exports {export}); this strata implements strata:plugin@{CONTRACT}"
                    ),
                ));
            }
        }
        let world = match anatomy.worlds.as_slice() {
            [one] => *one,
            [] => {
                return Err(invalid(
                    name,
                    format!(
                        "exports none of strata:plugin@{CONTRACT}'s worlds (layer-transformer, config-transformer, tag-filterer); it exports: {}",
                        if anatomy.exports.is_empty() {
                            "nothing".to_string()
                        } else {
                            anatomy.exports.join(", ")
                        }
                    ),
                ));
            }
            _ => {
                return Err(invalid(
                    name,
                    "implements several worlds; a plugin implements one",
                ));
            }
        };
        for import in &anatomy.imports {
            if let Some(v) = version_of(import) {
                if v != CONTRACT {
                    return Err(invalid(
                        name,
                        format!(
                            "built against strata:plugin@{v} (it imports {import}); this strata implements strata:plugin@{CONTRACT}"
                        ),
                    ));
                }
                let iface = import
                    .strip_prefix(PACKAGE)
                    .and_then(|i| i.split('@').next())
                    .unwrap_or_default();
                if !world.imports().contains(&iface) {
                    return Err(invalid(
                        name,
                        format!(
                            "imports {import}, which the {} world does not offer",
                            world.name()
                        ),
                    ));
                }
                continue;
            }
            if import.starts_with("wasi:") {
                if !options.grants.wasi {
                    return Err(invalid(
                        name,
                        format!(
                            "imports {import}: WASI (files, sockets, clocks, environment) is not granted; a pipeline may grant it in the plugin's `wasi:` (`{{}}`, or `dirs:` and `env:` to share)"
                        ),
                    ));
                }
                continue;
            }
            return Err(invalid(
                name,
                format!("imports {import}, which strata does not offer"),
            ));
        }
        let mut linker: Linker<HostState> = Linker::new(engine.engine());
        let linked = match world {
            World::Layer => {
                bindings::layer::LayerTransform::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            }
            World::Config => bindings::config::ConfigTransform::add_to_linker::<_, HasSelf<_>>(
                &mut linker,
                |s| s,
            ),
            World::Tags => {
                bindings::tags::TagFilter::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            }
        };
        linked.map_err(|e| {
            invalid(
                name,
                format!("cannot link: {}", one_line(&format!("{e:#}"))),
            )
        })?;
        if options.grants.wasi {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| {
                invalid(
                    name,
                    format!("cannot link WASI: {}", one_line(&format!("{e:#}"))),
                )
            })?;
        }
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(
                name,
                format!("cannot link: {}", one_line(&format!("{e:#}"))),
            )
        })?;
        Ok(Plugin {
            name: name.to_string(),
            digest,
            size: bytes.len() as u64,
            world,
            anatomy,
            engine: engine.clone(),
            pre,
            grants: options.grants.clone(),
            limits: options.limits,
            settings: options.settings.clone(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The component's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// The component's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Its world.
    pub fn world(&self) -> World {
        self.world
    }
    /// Its imports and exports.
    pub fn anatomy(&self) -> &Anatomy {
        &self.anatomy
    }
    /// Its settings.
    pub fn settings(&self) -> &Vec<(String, String)> {
        &self.settings
    }
    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What identifies its results for caching: the component and its
    /// settings.
    pub fn identity(&self) -> String {
        let mut s = self.digest.to_string();
        for (k, v) in &self.settings {
            s.push_str(&format!("\n{k}={v}"));
        }
        digest::sha256_of(s.as_bytes()).to_string()
    }

    /// A fresh store with this plugin's limits, ready for one instance.
    pub fn store(
        &self,
        log: LogSink,
        facts: Option<Arc<dyn TagFacts>>,
    ) -> Result<Store<HostState>, PluginError> {
        let wasi = if self.grants.wasi {
            Some(self.wasi_state()?)
        } else {
            None
        };
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory)
                .trap_on_grow_failure(true)
                .instances(64)
                .build(),
            log,
            batch: Vec::new(),
            read_max: 4 << 20,
            facts,
            wasi,
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(PluginEngine::ticks(self.limits.deadline));
        if let Some(fuel) = self.limits.fuel {
            if !self.engine.fuel() {
                return Err(invalid(
                    &self.name,
                    "fuel asked for on an engine without metering",
                ));
            }
            store
                .set_fuel(fuel)
                .map_err(|e| invalid(&self.name, format!("cannot set fuel: {e}")))?;
        }
        Ok(store)
    }

    /// Re-arms the deadline (and fuel) before a call.
    pub fn arm(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(PluginEngine::ticks(self.limits.deadline));
        if let Some(fuel) = self.limits.fuel {
            let _ = store.set_fuel(fuel);
        }
    }

    fn wasi_state(&self) -> Result<WasiState, PluginError> {
        use wasmtime_wasi::{FsPerms, WasiCtx};
        let mut b = WasiCtx::builder();
        for name in &self.grants.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, &v);
            }
        }
        for dir in &self.grants.dirs {
            let (host, guest) = dir.split_once(':').unwrap_or((dir, dir));
            b.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| {
                    invalid(
                        &self.name,
                        format!(
                            "cannot grant directory {host}: {}",
                            one_line(&format!("{e:#}"))
                        ),
                    )
                })?;
        }
        Ok(WasiState {
            ctx: b.build(),
            table: wasmtime::component::ResourceTable::new(),
        })
    }

    /// The pre-linked instance.
    pub fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// A failure of a call, in one line naming the plugin, its world, the
    /// call and (for layers) the entry.
    pub fn failed(
        &self,
        call: &'static str,
        entry: Option<&str>,
        detail: impl Into<String>,
    ) -> PluginError {
        PluginError::Failed {
            name: self.name.clone(),
            world: self.world.name(),
            call,
            entry: entry.map(str::to_string),
            detail: one_line(&detail.into()),
        }
    }

    /// A trap or host error from wasmtime, in words: a deadline, a memory
    /// cap, fuel, or what the trap was.
    pub fn trapped(
        &self,
        call: &'static str,
        entry: Option<&str>,
        e: &wasmtime::Error,
    ) -> PluginError {
        let text = format!("{e:#}");
        let detail = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!(
                "stopped after its deadline of {} s",
                self.limits.deadline.as_secs_f64()
            ),
            Some(wasmtime::Trap::OutOfFuel) => "ran out of fuel".to_string(),
            _ if text.contains("when growing memory")
                || text.contains("memory growth failure")
                || text.contains("exceeds memory limits") =>
            {
                format!(
                    "went past its memory cap of {} MiB",
                    self.limits.memory >> 20
                )
            }
            // The backtrace of a guest without names says nothing to a
            // user; the trap's own words come last.
            _ if text.contains("wasm backtrace") => text
                .rsplit(": ")
                .next()
                .map(|t| format!("trapped: {t}"))
                .unwrap_or_else(|| text.clone()),
            _ => text,
        };
        self.failed(call, entry, detail)
    }
}

/// Text on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
