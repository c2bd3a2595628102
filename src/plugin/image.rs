//! The transform stage: an image (or a multi-platform index) read from any
//! source, its layers passed through layer plugins and its config through
//! config plugins, made into a new image in the store. Every new document
//! is built, never patched: each transformed layer gets its own digest and
//! diff ID, the config its new `rootfs.diff_ids`, the manifest new
//! descriptors, an index its new children; untouched fields are carried
//! over. Results are remembered per (input, plugins, settings), so a base
//! layer shared by many tags is transformed once.

use std::sync::Arc;

use oci_spec::image::Descriptor;

use crate::copy::Copyable;
use crate::digest::{self, Digest, VerifyingReader};
use crate::image::{self as img, Image};
use crate::mutate;
use crate::progress::BlobKind;
use crate::transport::store::{LayerInfo, Store, StoreError, StoreSink, TransformRecord};
use crate::transport::{Sink, Source, TransportError};

use super::layer::{self, Codec, LayerMeta};
use super::load::Plugin;
use super::state::LogSink;
use super::{PluginError, World};

/// Errors of the transform stage.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Reading the input or staging the output failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document could not be rebuilt.
    #[error(transparent)]
    Image(#[from] img::ImageError),
}

/// Where plugins' log lines go: (plugin name, line).
pub type PluginLog = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The plugins applied to each image, in order, and how layers are written.
#[derive(Clone, Default)]
pub struct Transforms {
    /// Layer plugins, applied in order to every layer.
    pub layers: Vec<Arc<Plugin>>,
    /// Config plugins, applied in order to every config.
    pub configs: Vec<Arc<Plugin>>,
    /// How new layers are compressed.
    pub codec: Codec,
    /// Plugins whose failure leaves the item as it was (`on_error: skip`);
    /// any other's fails the step.
    pub skip: Vec<String>,
    /// Where plugins' log lines and skips go.
    pub log: Option<PluginLog>,
}

impl Transforms {
    /// Sorts plugins by world (layer, config), keeping their order.
    pub fn from_plugins(plugins: Vec<Arc<Plugin>>) -> Result<Transforms, PluginError> {
        let mut t = Transforms::default();
        for p in plugins {
            match p.world() {
                World::Layer => t.layers.push(p),
                World::Config => t.configs.push(p),
                World::Tags => {
                    return Err(PluginError::Invalid {
                        name: p.name().to_string(),
                        detail:
                            "is a tag filter, not a transform (use it as tag_filter: of a mirror)"
                                .into(),
                    });
                }
            }
        }
        Ok(t)
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty() && self.configs.is_empty()
    }

    /// What identifies the whole chain's results (plugins, their settings,
    /// the codec), for caching.
    pub fn identity(&self) -> String {
        let mut s = String::from("strata-transform-1");
        for p in self.layers.iter().chain(&self.configs) {
            s.push('\n');
            s.push_str(&p.identity());
        }
        s.push_str(&format!("\n{:?}", self.codec));
        s
    }

    fn layer_identity(&self) -> String {
        let mut s = String::from("strata-layer-transform-1");
        for p in &self.layers {
            s.push('\n');
            s.push_str(&p.identity());
        }
        s.push_str(&format!("\n{:?}", self.codec));
        s
    }

    fn sink_for(&self, plugin: &Plugin) -> LogSink {
        let name = plugin.name().to_string();
        let log = self.log.clone();
        Arc::new(move |line: &str| {
            if let Some(l) = &log {
                l(&name, line);
            }
        })
    }

    /// Whether a failure of this plugin is skipped.
    fn skips(&self, e: &PluginError) -> bool {
        self.skip.iter().any(|n| n == e.plugin())
    }

    fn warn(&self, name: &str, line: &str) {
        if let Some(l) = &self.log {
            l(name, line);
        }
    }
}

/// Layers being transformed now in this process: a second transform of
/// the same input waits for the first and takes its result, so a base
/// layer shared by tags copied at once is still transformed once.
fn in_flight() -> &'static (
    std::sync::Mutex<std::collections::HashSet<Digest>>,
    std::sync::Condvar,
) {
    static BUSY: std::sync::OnceLock<(
        std::sync::Mutex<std::collections::HashSet<Digest>>,
        std::sync::Condvar,
    )> = std::sync::OnceLock::new();
    BUSY.get_or_init(Default::default)
}

/// Holds a key while its transform runs.
struct Busy(Digest);

impl Busy {
    fn enter(key: &Digest) -> Busy {
        let (set, cond) = in_flight();
        let mut busy = set.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(key) {
            busy = cond.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(key.clone());
        Busy(key.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let (set, cond) = in_flight();
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
        cond.notify_all();
    }
}

/// The key a transform result is remembered under.
fn key(input: &Digest, identity: &str) -> Digest {
    digest::sha256_of(format!("{identity}\n{input}").as_bytes())
}

/// What an image becomes: its new manifest digest when this chain already
/// transformed it (and the result is still in the store).
pub fn known_result(store: &Store, input: &Digest, t: &Transforms) -> Option<Digest> {
    store
        .transform_record(&key(input, &t.identity()))
        .map(|r| r.digest)
}

/// Transforms `what` (read from `source`), staging every new blob in
/// `sink` and putting the new manifests there (unnamed: the caller names
/// the result). Returns the new copyable.
pub fn transform(
    store: &Store,
    sink: &StoreSink<'_>,
    source: &dyn Source,
    what: &Copyable,
    t: &Transforms,
) -> Result<Copyable, TransformError> {
    let out = match what {
        Copyable::Image(image) => {
            Copyable::Image(Box::new(transform_image(store, sink, source, image, t)?))
        }
        Copyable::Index(index, children) => {
            let mut new_children = Vec::with_capacity(children.len());
            for c in children {
                new_children.push(transform_image(store, sink, source, c, t)?);
            }
            let new_index = mutate::index_with_children(index, &new_children)?;
            sink.put_manifest(new_index.manifest(), &[])?;
            Copyable::Index(Box::new(new_index), new_children)
        }
    };
    let input = what.digest();
    let made = out.digest();
    let top = match &out {
        Copyable::Image(i) => i.manifest(),
        Copyable::Index(i, _) => i.manifest(),
    };
    store.write_transform_record(
        &key(input, &t.identity()),
        &TransformRecord {
            digest: made.clone(),
            size: top.bytes.len() as u64,
            media_type: top.media_type.clone(),
            diff_id: None,
        },
    )?;
    Ok(out)
}

fn transform_image(
    store: &Store,
    sink: &StoreSink<'_>,
    source: &dyn Source,
    image: &Image,
    t: &Transforms,
) -> Result<Image, TransformError> {
    let count = image.layers().len() as u32;
    let docker = image.manifest().media_type == img::DOCKER_MANIFEST;
    let mut layers: Vec<(Descriptor, Digest)> = Vec::with_capacity(image.layers().len());
    for (i, l) in image.layers().iter().enumerate() {
        if t.layers.is_empty() {
            layers.push((l.descriptor.clone(), l.diff_id.clone()));
            continue;
        }
        let k = key(l.descriptor.digest(), &t.layer_identity());
        let _busy = Busy::enter(&k);
        if let Some(r) = store.transform_record(&k) {
            let d = Descriptor::new(r.media_type.as_str().into(), r.size, r.digest);
            layers.push((d, r.diff_id.unwrap_or_else(|| l.diff_id.clone())));
            continue;
        }
        let meta = LayerMeta {
            digest: l.descriptor.digest().clone(),
            diff_id: l.diff_id.clone(),
            index: i as u32,
            count,
        };
        let mut input = VerifyingReader::new(
            source.open_blob(&l.descriptor)?,
            l.descriptor.digest().clone(),
            l.descriptor.size(),
        );
        let plugins: Vec<&Plugin> = t.layers.iter().map(|p| p.as_ref()).collect();
        let logs = |p: &Plugin| t.sink_for(p);
        match layer::transform(
            &plugins,
            &mut input,
            &meta,
            &store.ingest_dir(),
            t.codec,
            &logs,
        ) {
            Ok(done) => {
                let media_type = layer_media_type(t.codec, docker);
                let path = done
                    .file
                    .into_temp_path()
                    .keep()
                    .map_err(|e| TransportError::io("keep a transformed layer", e.error))?;
                // In place at once, not with the image: another tag's
                // transform of the same layer, waiting on this one, takes
                // the result from the store.
                let own = store.sink().unlisted();
                own.adopt(
                    path,
                    done.digest.clone(),
                    done.size,
                    Some(LayerInfo {
                        diff_id: done.diff_id.clone(),
                        size: done.unpacked,
                    }),
                );
                own.commit()?;
                store.write_transform_record(
                    &k,
                    &TransformRecord {
                        digest: done.digest.clone(),
                        size: done.size,
                        media_type: media_type.to_string(),
                        diff_id: Some(done.diff_id.clone()),
                    },
                )?;
                layers.push((
                    Descriptor::new(media_type.into(), done.size, done.digest),
                    done.diff_id,
                ));
            }
            Err(e) if t.skips(&e) => {
                t.warn(
                    e.plugin(),
                    &format!("{e}; the layer is kept as it was (on_error: skip)"),
                );
                copy_blob(
                    sink,
                    source,
                    &l.descriptor,
                    BlobKind::Layer {
                        diff_id: l.diff_id.clone(),
                    },
                )?;
                layers.push((l.descriptor.clone(), l.diff_id.clone()));
            }
            Err(e) => return Err(e.into()),
        }
    }

    // The config: plugins first, then the diff IDs the new layers have.
    let mut config = image.config_bytes().to_vec();
    for p in &t.configs {
        match super::config::transform(p, &config, t.sink_for(p)) {
            Ok(c) => config = c,
            Err(e) if t.skips(&e) => {
                t.warn(
                    p.name(),
                    &format!("{e}; the config is kept as it was (on_error: skip)"),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| d.clone()).collect();
    let config_bytes = mutate::config_with_diff_ids(&config, &diff_ids)?;
    let config_digest = digest::sha256_of(&config_bytes);
    let config_desc = Descriptor::new(
        image.config_descriptor().media_type().clone(),
        config_bytes.len() as u64,
        config_digest,
    );
    if sink.has_blob(&config_desc)? == crate::transport::Presence::Absent {
        sink.put_blob(
            &config_desc,
            &BlobKind::Config,
            &mut &config_bytes[..],
            &|_| {},
        )?;
    }
    for (d, diff_id) in &layers {
        if !store.has_blob(d.digest()) && sink.has_blob(d)? == crate::transport::Presence::Absent {
            // A remembered result the cache named but the sink lacks (it is
            // in the store: nothing to do), or an untouched layer.
            copy_blob(
                sink,
                source,
                d,
                BlobKind::Layer {
                    diff_id: diff_id.clone(),
                },
            )?;
        }
    }

    // The manifest: every field carried over, config and layers new.
    let descriptors: Vec<Descriptor> = layers.iter().map(|(d, _)| d.clone()).collect();
    let manifest = mutate::manifest_with(image.manifest(), &config_desc, &descriptors)?;
    let new = Image::new(manifest, config_bytes)?;
    sink.put_manifest(new.manifest(), &[])?;
    Ok(new)
}

fn layer_media_type(codec: Codec, docker: bool) -> &'static str {
    match (codec, docker) {
        (Codec::Gzip(_), true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (Codec::Gzip(_), false) => img::OCI_LAYER_GZIP,
        (Codec::Zstd(_), _) => img::OCI_LAYER_ZSTD,
    }
}

/// Copies a blob unchanged from `source` into the sink.
fn copy_blob(
    sink: &StoreSink<'_>,
    source: &dyn Source,
    d: &Descriptor,
    kind: BlobKind,
) -> Result<(), TransformError> {
    if sink.has_blob(d)? != crate::transport::Presence::Absent {
        return Ok(());
    }
    let mut reader = VerifyingReader::new(source.open_blob(d)?, d.digest().clone(), d.size());
    sink.put_blob(d, &kind, &mut reader, &|_| {})?;
    Ok(())
}
