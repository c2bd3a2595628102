//! The wasmtime engine plugins run in: one per process, with epoch
//! interruption driven by a ticker thread (so a call past its deadline
//! stops within a tick of it), and the cache of compiled components on
//! disk, keyed by the component's digest and wasmtime's version (Python and
//! JavaScript components take seconds to compile, milliseconds to load).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::digest::Digest;

/// How often the epoch advances: the granularity of deadlines.
pub const TICK: Duration = Duration::from_millis(100);

/// The engine and where compiled components are kept.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    fuel: bool,
    cache: Option<PathBuf>,
}

fn make_engine(fuel: bool) -> Result<Engine, String> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel)
        // Plain synchronous calls: no concurrent-call bookkeeping (about a
        // third of a small call's cost).
        .concurrency_support(false)
        .parallel_compilation(true);
    Engine::new(&config).map_err(|e| e.to_string())
}

/// The process's engines (with and without fuel metering), made once, and
/// their ticker.
fn shared(fuel: bool) -> Result<Engine, String> {
    static PLAIN: OnceLock<Result<Engine, String>> = OnceLock::new();
    static FUELED: OnceLock<Result<Engine, String>> = OnceLock::new();
    let cell = if fuel { &FUELED } else { &PLAIN };
    let engine = cell.get_or_init(|| {
        let engine = make_engine(fuel)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("strata-epoch".into())
            .spawn(move || {
                while let Some(e) = weak.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(engine)
    });
    engine.clone()
}

impl PluginEngine {
    /// The shared engine; compiled components are cached in `cache` (none:
    /// compile every time).
    pub fn new(cache: Option<PathBuf>, fuel: bool) -> Result<PluginEngine, String> {
        Ok(PluginEngine {
            engine: shared(fuel)?,
            fuel,
            cache,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether calls are metered with fuel.
    pub fn fuel(&self) -> bool {
        self.fuel
    }

    /// Epoch ticks for a deadline (at least one).
    pub fn ticks(deadline: Duration) -> u64 {
        (deadline.as_millis() / TICK.as_millis()).max(1) as u64 + 1
    }

    /// The component for `bytes` (whose digest is `digest`): from the cache
    /// when compiled before by this wasmtime, else compiled and cached.
    pub fn component(&self, bytes: &[u8], digest: &Digest) -> Result<Component, String> {
        let Some(dir) = &self.cache else {
            return Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"));
        };
        let file = dir.join(format!(
            "{}-{}{}.cwasm",
            digest.digest(),
            wasmtime_version(),
            if self.fuel { "-fuel" } else { "" }
        ));
        if file.exists() {
            // SAFETY: the file is native code this process family wrote
            // (its name is the component's digest and wasmtime's version);
            // wasmtime checks it was made by a compatible engine and
            // refuses it otherwise, in which case it is compiled anew.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &file) } {
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Ok(serialized) = component.serialize() {
            // A cache that cannot be written only costs time next run.
            let _ = write_atomic(dir, &file, &serialized);
        }
        Ok(component)
    }
}

/// wasmtime's version, part of every cache key.
pub fn wasmtime_version() -> &'static str {
    "wasmtime-48.0.8"
}

fn write_atomic(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = crate::transport::store::temp_path(dir, "cwasm");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The engine shared across a run (made on first use).
pub fn engine_for(cache: Option<PathBuf>, fuel: bool) -> Result<Arc<PluginEngine>, String> {
    PluginEngine::new(cache, fuel).map(Arc::new)
}
