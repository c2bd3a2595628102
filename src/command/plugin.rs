//! `strata plugin inspect|run`: what a WebAssembly plugin is, and trying it
//! out on an image of the store.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::copy::Copyable;
use crate::plugin::image::{Transforms, transform};
use crate::plugin::load::{LoadOptions, Plugin};
use crate::plugin::{Grants, Limits, PluginEngine, World};
use crate::reference::Reference;
use crate::transport::Sink;

use super::{CommandError, Context, Ui};

/// `plugin inspect FILE`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInspectRequest {
    /// The component file.
    pub plugin: PathBuf,
}

/// `plugin run [--set KEY=VALUE]... FILE IMAGE`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginRunRequest {
    /// The component file (a layer or config transform).
    pub plugin: PathBuf,
    /// The image in the store.
    pub image: String,
    /// The name the result gets (default: the image's repository, its tag
    /// followed by `-` and the plugin's name).
    #[serde(default)]
    pub tag: Option<String>,
    /// Settings passed to the plugin, as KEY=VALUE.
    #[serde(default)]
    pub settings: Vec<(String, String)>,
    /// Seconds a call may take.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Memory the plugin may use, in MiB.
    #[serde(default)]
    pub memory: Option<usize>,
}

/// The plugin engine of a context's store (compiled components cached
/// under `.strata/plugins/`).
pub fn engine(ctx: &Context) -> Result<PluginEngine, CommandError> {
    let cache = ctx.root().join(".strata/plugins/compiled");
    PluginEngine::new(Some(cache), false)
        .map_err(|e| CommandError::Invalid(format!("cannot start the WebAssembly engine: {e}")))
}

/// A plugin's name from its file: the file name without `.wasm`.
pub fn name_of(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
}

/// Runs `plugin inspect`: the world, the contract version, imports and
/// exports, size and digest.
pub fn inspect(
    ctx: &Context,
    req: &PluginInspectRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let engine = engine(ctx)?;
    let name = name_of(&req.plugin);
    let bytes = std::fs::read(&req.plugin)
        .map_err(|e| CommandError::io(format!("cannot read {}", req.plugin.display()), e))?;
    let digest = crate::digest::sha256_of(&bytes);
    // Inspect even what strata would refuse to run: that is what it is for.
    let component = engine.component(&bytes, &digest).map_err(|e| {
        CommandError::Invalid(format!(
            "plugin {name}: not a component: {}",
            crate::plugin::load::one_line(&e)
        ))
    })?;
    let anatomy = crate::plugin::load::anatomy(&engine, &component);
    let loadable = Plugin::load(
        &engine,
        &name,
        &bytes,
        &LoadOptions {
            grants: Grants::default(),
            ..LoadOptions::default()
        },
    );
    let mut out = ui.stdout();
    writeln!(out, "Name:     {name}")?;
    writeln!(out, "Digest:   {digest}")?;
    writeln!(
        out,
        "Size:     {}",
        crate::format::human_size(bytes.len() as u64)
    )?;
    let worlds: Vec<&str> = anatomy.worlds.iter().map(|w| w.name()).collect();
    writeln!(
        out,
        "Worlds:   {}",
        if worlds.is_empty() {
            "none".to_string()
        } else {
            worlds.join(", ")
        }
    )?;
    writeln!(out, "Imports:")?;
    for i in &anatomy.imports {
        writeln!(out, "  {i}")?;
    }
    writeln!(out, "Exports:")?;
    for e in &anatomy.exports {
        writeln!(out, "  {e}")?;
    }
    let status = match &loadable {
        Ok(_) => "runs in strata (no WASI needed)".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    writeln!(out, "Status:   {status}")?;
    Ok(serde_json::json!({
        "name": name,
        "digest": digest.to_string(),
        "size": bytes.len(),
        "worlds": worlds,
        "imports": anatomy.imports,
        "exports": anatomy.exports,
        "loadable": loadable.is_ok(),
    }))
}

/// Runs `plugin run`: the plugin applied to an image of the store, the
/// result stored under a new name.
pub fn run(
    ctx: &Context,
    req: &PluginRunRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let engine = engine(ctx)?;
    let name = name_of(&req.plugin);
    let mut limits = Limits::default();
    if let Some(t) = req.timeout {
        limits.deadline = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(m) = req.memory {
        limits.memory = m.max(1) << 20;
    }
    let plugin = Plugin::load_file(
        &engine,
        &name,
        &req.plugin,
        &LoadOptions {
            settings: req.settings.clone(),
            limits,
            grants: Grants::default(),
        },
    )?;
    if plugin.world() == World::Tags {
        return Err(CommandError::Invalid(format!(
            "plugin {name} is a tag filter: try it in a mirror step (tag_filter:) with --dry-run"
        )));
    }
    let found = store.lookup(&req.image)?;
    let (what, _) = store.copyable(&found)?;
    let target = match &req.tag {
        Some(t) => Reference::parse(t)?.with_default_tag(),
        None => {
            let base = found.tags().next().cloned().ok_or_else(|| {
                CommandError::Invalid(format!("{} has no name: give --tag", req.image))
            })?;
            base.with_tag(&format!("{}-{name}", base.tag().unwrap_or("latest")))?
        }
    };
    let log_ui = ui;
    let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let collected = lines.clone();
    let mut transforms = Transforms::from_plugins(vec![Arc::new(plugin)])?;
    transforms.log = Some(Arc::new(move |plugin: &str, line: &str| {
        collected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{plugin}: {line}"));
    }));
    let sink = store.sink();
    let made = transform(store, &sink, store, &what, &transforms)?;
    let top = match &made {
        Copyable::Image(i) => i.manifest().clone(),
        Copyable::Index(i, _) => i.manifest().clone(),
    };
    sink.put_manifest(&top, std::slice::from_ref(&target))?;
    sink.commit()?;
    for l in lines.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        log_ui.warn(l);
    }
    let id = match &made {
        Copyable::Image(i) => i.id().to_string(),
        Copyable::Index(_, c) => c.first().map(|c| c.id().to_string()).unwrap_or_default(),
    };
    let mut out = ui.stdout();
    writeln!(out, "{}", target.familiar_string())?;
    Ok(serde_json::json!({
        "reference": target.to_string(),
        "digest": top.digest.to_string(),
        "id": id,
    }))
}
