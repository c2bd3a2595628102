//! `strata plugin inspect|run|push`: what a WebAssembly plugin is, trying
//! it out on an image of the store, and publishing it as an OCI artifact.
//! Where a plugin is named, a file of that path wins; otherwise a reference
//! names an artifact, which must be pinned by digest
//! (`REGISTRY/REPO@sha256:…`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::copy::Copyable;
use crate::plugin::artifact::{self, ComponentFacts};
use crate::plugin::image::{Transforms, transform};
use crate::plugin::load::{LoadOptions, Plugin};
use crate::plugin::{CONTRACT, Grants, Limits, PluginEngine, World};
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::registry::{Repository, RepositorySink};
use crate::transport::{Presence, Sink, TransportError};

use super::{CommandError, Context, Ui};

/// `plugin inspect FILE|REF`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInspectRequest {
    /// The component file, or an artifact pinned by digest
    /// (`REGISTRY/REPO@sha256:…`).
    pub plugin: String,
}

/// `plugin push [--author TEXT] FILE REF`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginPushRequest {
    /// The component file.
    pub plugin: PathBuf,
    /// Where it goes: `REGISTRY/REPO[:TAG]` (`latest` when no tag).
    pub image: String,
    /// The config's `author`.
    #[serde(default)]
    pub author: Option<String>,
}

/// `plugin run [--set KEY=VALUE]... FILE|REF IMAGE`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginRunRequest {
    /// The component file (a layer or config transform), or an artifact
    /// pinned by digest.
    pub plugin: String,
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

/// A plugin's name and component: the file `text` names when there is
/// one, else the artifact when `text` is a reference (which must be pinned
/// by digest; the component comes from the store when kept there, else
/// from its registry).
pub fn component(ctx: &Context, text: &str) -> Result<(String, Vec<u8>), CommandError> {
    let path = Path::new(text);
    if !path.exists() && artifact::is_reference(text) {
        let pinned = artifact::pinned(text)?;
        let bytes = crate::plugin::fetch::fetch(ctx.registries(), ctx.store()?, text)?;
        return Ok((artifact::short_name(&pinned.reference), bytes));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CommandError::io(format!("cannot read {}", path.display()), e))?;
    Ok((name_of(path), bytes))
}

/// Runs `plugin inspect`: the world, the contract version, imports and
/// exports, size and digest.
pub fn inspect(
    ctx: &Context,
    req: &PluginInspectRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let engine = engine(ctx)?;
    let (name, bytes) = component(ctx, &req.plugin)?;
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
    let store = ctx.store_for_writing()?;
    let engine = engine(ctx)?;
    let (name, bytes) = component(ctx, &req.plugin)?;
    let mut limits = Limits::default();
    if let Some(t) = req.timeout {
        limits.deadline = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(m) = req.memory {
        limits.memory = m.max(1) << 20;
    }
    let plugin = Plugin::load(
        &engine,
        &name,
        &bytes,
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

/// Runs `plugin push`: the component as the CNCF TAG Runtime's Wasm OCI
/// artifact (config `application/vnd.wasm.config.v0+json` with what the
/// component exports and imports, one `application/wasm` layer), blobs
/// first, then the manifest under the tag. Prints docker push's last line;
/// the outputs are `reference`, `digest`, `size` and `pinned` (the
/// reference a pipeline names it by).
pub fn push(
    ctx: &Context,
    req: &PluginPushRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let file = req.plugin.display().to_string();
    let parsed = Reference::parse(&req.image)?;
    if parsed.digest().is_some() {
        return Err(CommandError::Invalid(
            "cannot push to a digest reference: name a tag".into(),
        ));
    }
    let bytes = std::fs::read(&req.plugin)
        .map_err(|e| CommandError::io(format!("cannot read {file}"), e))?;
    artifact::check_component(&bytes)
        .map_err(|detail| CommandError::Invalid(format!("{file}: {detail}")))?;
    // What the component exports and imports, as wasmtime reads it (the
    // compiled result is cached for the runs that load it next).
    let engine = engine(ctx)?;
    let digest = crate::digest::sha256_of(&bytes);
    let compiled = engine.component(&bytes, &digest).map_err(|e| {
        CommandError::Invalid(format!(
            "{file}: not a component strata can read: {}",
            crate::plugin::load::one_line(&e)
        ))
    })?;
    let anatomy = crate::plugin::load::anatomy(&engine, &compiled);
    let facts = ComponentFacts {
        exports: anatomy.exports.clone(),
        imports: anatomy.imports.clone(),
        target: match anatomy.worlds.as_slice() {
            [one] => Some(format!("strata:plugin/{}@{CONTRACT}", one.name())),
            _ => None,
        },
    };
    let package = artifact::package(&bytes, &facts, &created(), req.author.as_deref());
    if parsed.is_name_only() {
        writeln!(ui.stdout(), "Using default tag: latest")?;
    }
    let target = parsed.clone().with_default_tag();
    let client = ctx.registries().client(parsed.domain())?;
    let sink = RepositorySink::new(
        Repository::new(client.clone(), parsed.path()),
        Box::new(|_| Vec::new()),
    );
    let blobs = [
        (
            &package.config_descriptor,
            &package.config[..],
            BlobKind::Config,
        ),
        (
            &package.layer,
            &bytes[..],
            BlobKind::Layer {
                diff_id: package.layer.digest().clone(),
            },
        ),
    ];
    for (descriptor, content, kind) in &blobs {
        if sink.has_blob(descriptor)? != Presence::Absent {
            continue;
        }
        // An upload is sent once by the client; a failure that says a
        // later attempt may pass is tried again here, within its policy.
        let policy = *client.retry_policy();
        let mut retry = 0;
        loop {
            match sink.put_blob(descriptor, kind, &mut &content[..], &|_| {}) {
                Ok(()) => break,
                Err(e) if retryable(&e) && retry + 1 < policy.attempts => {
                    std::thread::sleep(policy.wait(retry, e.retry_after()));
                    retry += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    sink.put_manifest(&package.manifest, std::slice::from_ref(&target))?;
    sink.commit()?;
    let manifest = &package.manifest;
    writeln!(
        ui.stdout(),
        "{}: digest: {} size: {}",
        target.tag().unwrap_or("latest"),
        manifest.digest,
        manifest.bytes.len()
    )?;
    Ok(serde_json::json!({
        "reference": target.to_string(),
        "digest": manifest.digest.to_string(),
        "size": manifest.bytes.len(),
        "pinned": format!("{}@{}", target.repository(), manifest.digest),
    }))
}

fn retryable(e: &TransportError) -> bool {
    e.is_retryable() && !e.retries_exhausted()
}

/// The config's `created`: `SOURCE_DATE_EPOCH` when set (a reproducible
/// push gives the same digest), else now.
fn created() -> String {
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(chrono::Utc::now);
    when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
