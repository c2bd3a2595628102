//! Running `layer-transform` plugins over a layer. The host owns the tar
//! format: it reads the layer (any compression), hands the plugins entry
//! headers in batches, applies their decisions under the rootfs rules (no
//! `..`, no absolute paths, nothing written through a link made in the
//! layer, no entry renamed onto another, sizes as declared), writes a new
//! tar, compresses it (gzip on several cores, or zstd) and hashes both
//! sides as it goes. Content a plugin never reads is copied by the host
//! without crossing into the guest. Several plugins run as a chain: each
//! batch passes through them in order.
//!
//! The deciding is behind a seam, [`Decide`]: a plugin is one decider
//! ([`PluginDecider`]); a native implementation runs through the very same
//! pipeline, which is how the host's own cost is told from the guest's
//! (`benches/plugin_layer.rs`) and how the host's rules are tested without
//! WebAssembly.

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use wasmtime::Store;

use crate::digest::{Digest, Hasher};
use crate::rootfs::path::normalize;

use super::PluginError;
use super::bindings::layer as world;
use super::load::Plugin;
use super::state::{Content, ContentSource, HostState, LogSink};

pub use world::strata::plugin::types::{Decision, EntryHeader, EntryKind, LayerInfo, Replacement};

impl world::strata::plugin::log::Host for HostState {
    fn info(&mut self, message: String) {
        (self.log)(&message);
    }
}

impl world::strata::plugin::types::Host for HostState {}

impl world::strata::plugin::layer_host::Host for HostState {
    fn read(&mut self, index: u32, max: u32) -> Result<Vec<u8>, String> {
        let max = (max as usize).min(self.read_max);
        let content = self
            .batch
            .get_mut(index as usize)
            .ok_or_else(|| format!("no entry {index} in this batch"))?;
        content.read_next(max).map_err(|e| e.to_string())
    }
}

/// Entries per batch, at most.
const BATCH_ENTRIES: usize = 256;
/// Content bytes held in memory per batch, at most (larger contents are
/// spooled to a temporary file).
const BATCH_BYTES: u64 = 8 << 20;
/// Contents larger than this are spooled rather than kept in memory.
const IN_MEMORY: u64 = 1 << 20;

/// How the new layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip at a level, on several cores.
    Gzip(u32),
    /// zstd at a level.
    Zstd(i32),
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Gzip(1)
    }
}

/// Which layer is transformed.
#[derive(Debug, Clone)]
pub struct LayerMeta {
    /// The blob's digest.
    pub digest: Digest,
    /// Its diff ID.
    pub diff_id: Digest,
    /// Its place in the image, from 0.
    pub index: u32,
    /// How many layers the image has.
    pub count: u32,
}

/// What was written.
#[derive(Debug)]
pub struct Transformed {
    /// The compressed layer, a temporary file in the directory given.
    pub file: tempfile::NamedTempFile,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: Digest,
    /// Entries read.
    pub entries_in: u64,
    /// Entries written.
    pub entries_out: u64,
    /// Unpacked size as docker counts it (files, and symlinks by target).
    pub unpacked: u64,
}

/// One stage of a layer-transform chain: what the host asks of a plugin,
/// as a trait so that a native implementation can stand in its place.
pub trait Decide {
    /// The name its errors carry.
    fn name(&self) -> &str;
    /// Before the layer's first entry.
    fn begin(&mut self, layer: &LayerInfo) -> Result<(), PluginError>;
    /// One decision per header, in order. `contents` are the batch's
    /// contents, which it may read; the host takes them back afterwards
    /// (rewound), whatever the answer.
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError>;
    /// After the last entry: the entries to add.
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError>;
    /// A failure of one of its calls (the host's checks of its answers
    /// blame it with this).
    fn failed(&self, call: &'static str, entry: Option<&str>, detail: String) -> PluginError {
        PluginError::Failed {
            name: self.name().to_string(),
            world: "layer-transform",
            call,
            entry: entry.map(str::to_string),
            detail,
        }
    }
}

/// A `layer-transform` plugin, instantiated for one layer.
pub struct PluginDecider<'p> {
    plugin: &'p Plugin,
    store: Store<HostState>,
    instance: world::LayerTransform,
}

impl<'p> PluginDecider<'p> {
    /// A fresh instance of `plugin` (one per layer), its log lines to `log`.
    pub fn new(plugin: &'p Plugin, log: LogSink) -> Result<PluginDecider<'p>, PluginError> {
        let mut store = plugin.store(log, None)?;
        let pre = world::LayerTransformPre::new(plugin.pre().clone())
            .map_err(|e| plugin.trapped("instantiate", None, &e))?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| plugin.trapped("instantiate", None, &e))?;
        Ok(PluginDecider {
            plugin,
            store,
            instance,
        })
    }
}

impl Decide for PluginDecider<'_> {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn begin(&mut self, layer: &LayerInfo) -> Result<(), PluginError> {
        let p = self.plugin;
        self.instance
            .strata_plugin_layer_transformer()
            .call_begin(&mut self.store, p.settings(), layer)
            .map_err(|e| p.trapped("begin", None, &e))?
            .map_err(|m| p.failed("begin", None, m))
    }

    fn entries(
        &mut self,
        headers: &[EntryHeader],
        contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        let p = self.plugin;
        self.store.data_mut().batch = std::mem::take(contents);
        p.arm(&mut self.store);
        let called = self
            .instance
            .strata_plugin_layer_transformer()
            .call_entries(&mut self.store, headers);
        *contents = std::mem::take(&mut self.store.data_mut().batch);
        let first = headers.first().map(|h| h.path.as_str());
        called
            .map_err(|e| p.trapped("entries", first, &e))?
            .map_err(|m| p.failed("entries", first, m))
    }

    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        let p = self.plugin;
        p.arm(&mut self.store);
        self.instance
            .strata_plugin_layer_transformer()
            .call_finish(&mut self.store)
            .map_err(|e| p.trapped("finish", None, &e))?
            .map_err(|m| p.failed("finish", None, m))
    }

    fn failed(&self, call: &'static str, entry: Option<&str>, detail: String) -> PluginError {
        self.plugin.failed(call, entry, detail)
    }
}

/// An entry on its way: its header and where its content is.
struct Item {
    header: EntryHeader,
    content: Content,
}

fn kind_of(t: tar::EntryType) -> Option<EntryKind> {
    Some(match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::Hardlink,
        tar::EntryType::Char => EntryKind::CharDevice,
        tar::EntryType::Block => EntryKind::BlockDevice,
        tar::EntryType::Fifo => EntryKind::Fifo,
        _ => return None,
    })
}

fn tar_type(k: EntryKind) -> tar::EntryType {
    match k {
        EntryKind::File => tar::EntryType::Regular,
        EntryKind::Directory => tar::EntryType::Directory,
        EntryKind::Symlink => tar::EntryType::Symlink,
        EntryKind::Hardlink => tar::EntryType::Link,
        EntryKind::CharDevice => tar::EntryType::Char,
        EntryKind::BlockDevice => tar::EntryType::Block,
        EntryKind::Fifo => tar::EntryType::Fifo,
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor under the tar writer.
enum Compressor<W: Write> {
    Gzip(crate::pgzip::ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Compressor<W> {
    fn new(codec: Codec, out: W) -> io::Result<Compressor<W>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(match codec {
            Codec::Gzip(level) => {
                Compressor::Gzip(crate::pgzip::ParallelGzip::new(out, level, cores.min(8)))
            }
            Codec::Zstd(level) => {
                let mut e = zstd::stream::write::Encoder::new(out, level)?;
                e.multithread(cores.min(8) as u32)?;
                Compressor::Zstd(e)
            }
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(w) => w.finish(),
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

/// Runs `plugins` (layer transforms, in order) over the layer read from
/// `input` (compressed or not), writing the new layer into a temporary file
/// in `dir`. Nothing is left behind on failure.
pub fn transform(
    plugins: &[&Plugin],
    input: &mut (dyn Read + Send),
    meta: &LayerMeta,
    dir: &Path,
    codec: Codec,
    log: &dyn Fn(&Plugin) -> LogSink,
) -> Result<Transformed, PluginError> {
    let mut running = Vec::with_capacity(plugins.len());
    for &p in plugins {
        running.push(PluginDecider::new(p, log(p))?);
    }
    let mut chain: Vec<&mut dyn Decide> =
        running.iter_mut().map(|r| r as &mut dyn Decide).collect();
    transform_with(&mut chain, input, meta, dir, codec)
}

/// [`transform`] with any deciders as the chain: the same reading, rules,
/// writing, compression and hashing, whoever decides.
pub fn transform_with(
    running: &mut [&mut dyn Decide],
    input: &mut (dyn Read + Send),
    meta: &LayerMeta,
    dir: &Path,
    codec: Codec,
) -> Result<Transformed, PluginError> {
    let first = running.first().map_or("layer", |p| p.name()).to_string();
    let io_err = |context: String, source: io::Error| PluginError::Io {
        name: first.clone(),
        context,
        source,
    };
    let info = LayerInfo {
        digest: meta.digest.to_string(),
        diff_id: meta.diff_id.to_string(),
        index: meta.index,
        count: meta.count,
    };
    for r in running.iter_mut() {
        r.begin(&info)?;
    }

    let file = tempfile::Builder::new()
        .prefix(&format!("layer-{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(|e| io_err(format!("cannot create a file in {}", dir.display()), e))?;
    let out = Hashing {
        inner: io::BufWriter::with_capacity(
            1 << 20,
            file.reopen().map_err(|e| io_err("reopen".into(), e))?,
        ),
        hasher: Hasher::new(),
    };
    let compressor = Compressor::new(codec, out).map_err(|e| io_err("compressor".into(), e))?;
    let tar_side = Hashing {
        inner: compressor,
        hasher: Hasher::new(),
    };
    let mut writer = Writer {
        builder: tar::Builder::new(tar_side),
        paths: HashSet::new(),
        links: HashSet::new(),
        written: 0,
        unpacked: 0,
    };

    let (_, decoded) = crate::compression::auto_decoder(BufReader::with_capacity(1 << 20, input))
        .map_err(|e| io_err("read the layer".into(), e))?;
    let mut archive = tar::Archive::new(decoded);
    let mut batch: Vec<Item> = Vec::new();
    let mut held: u64 = 0;
    let mut entries_in = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| io_err("read the layer's tar".into(), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err("read the layer's tar".into(), e))?;
        let header =
            read_header(&mut entry).map_err(|e| io_err("read an entry header".into(), e))?;
        let Some(header) = header else { continue };
        entries_in += 1;
        if header.path.is_empty() {
            // The layer's root (`./`): not an entry a plugin can move or
            // drop; written as it was, in its place.
            if !batch.is_empty() {
                let items = std::mem::take(&mut batch);
                held = 0;
                let decided = decide(running, items)?;
                writer.write_all(decided, running)?;
            }
            writer
                .write_root(&header)
                .map_err(|e| io_err("write the root entry".into(), e))?;
            continue;
        }
        let size = header.size;
        let content = if size <= IN_MEMORY {
            let mut buf = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut buf)
                .map_err(|e| io_err(format!("read {:?}", header.path), e))?;
            Content::new(ContentSource::Memory(Arc::new(buf)), size)
        } else {
            let mut spool = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| io_err("spool a large entry".into(), e))?;
            io::copy(&mut (&mut entry).take(size), spool.as_file_mut())
                .map_err(|e| io_err(format!("read {:?}", header.path), e))?;
            Content::new(ContentSource::File(Arc::new(spool)), size)
        };
        held += size.min(IN_MEMORY + 1);
        batch.push(Item { header, content });
        if batch.len() >= BATCH_ENTRIES || held >= BATCH_BYTES {
            let items = std::mem::take(&mut batch);
            held = 0;
            let decided = decide(running, items)?;
            writer.write_all(decided, running)?;
        }
    }
    if !batch.is_empty() {
        let decided = decide(running, batch)?;
        writer.write_all(decided, running)?;
    }
    // Each plugin's additions pass through the plugins after it.
    for i in 0..running.len() {
        let added = running[i].finish()?;
        let mut items = Vec::new();
        for a in added {
            items.push(from_replacement(&*running[i], "finish", None, a)?);
        }
        let decided = decide(&mut running[i + 1..], items)?;
        writer.write_all(decided, running)?;
    }

    let tar_side = writer
        .builder
        .into_inner()
        .map_err(|e| io_err("finish the tar".into(), e))?;
    let diff_id = tar_side.hasher.finish();
    let mut out = tar_side
        .inner
        .finish()
        .map_err(|e| io_err("finish compressing".into(), e))?;
    out.flush()
        .map_err(|e| io_err("write the layer".into(), e))?;
    let size = out.hasher.len();
    let digest = out.hasher.finish();
    out.inner
        .into_inner()
        .map_err(|e| io_err("write the layer".into(), e.into_error()))?
        .sync_all()
        .map_err(|e| io_err("sync the layer".into(), e))?;
    Ok(Transformed {
        file,
        digest,
        size,
        diff_id,
        entries_in,
        entries_out: writer.written,
        unpacked: writer.unpacked,
    })
}

/// Reads a tar entry's header into the contract's form; `None` for entries
/// the contract has no kind for (PAX/GNU metadata the tar reader consumed).
fn read_header<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<EntryHeader>> {
    let h = entry.header();
    let Some(kind) = kind_of(h.entry_type()) else {
        return Ok(None);
    };
    let raw = entry.path_bytes().into_owned();
    let path = match normalize(&raw) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry {:?}: {e}", String::from_utf8_lossy(&raw)),
            ));
        }
    };
    let link_target = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let h = entry.header();
    let size = if kind == EntryKind::File {
        h.size()?
    } else {
        0
    };
    let mode = h.mode()? & 0o7777;
    let uid = h.uid()? as u32;
    let gid = h.gid()? as u32;
    let mtime = h.mtime()? as i64;
    let devmajor = h.device_major().ok().flatten().unwrap_or(0);
    let devminor = h.device_minor().ok().flatten().unwrap_or(0);
    let mut xattrs = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Some(EntryHeader {
        path,
        kind,
        size,
        mode,
        uid,
        gid,
        mtime,
        link_target,
        xattrs,
        devmajor,
        devminor,
    }))
}

fn from_replacement(
    plugin: &dyn Decide,
    call: &'static str,
    original: Option<&str>,
    r: Replacement,
) -> Result<Item, PluginError> {
    let path = r.header.path.clone();
    let entry = original.unwrap_or(&path).to_string();
    let len = r.content.len() as u64;
    match r.header.kind {
        EntryKind::File if len != r.header.size => {
            return Err(plugin.failed(
                call,
                Some(&entry),
                format!(
                    "replacement content is {len} bytes but its header declares {}",
                    r.header.size
                ),
            ));
        }
        EntryKind::File => {}
        _ if len != 0 => {
            return Err(plugin.failed(
                call,
                Some(&entry),
                format!(
                    "a {:?} entry cannot have content ({len} bytes given)",
                    r.header.kind
                ),
            ));
        }
        _ => {}
    }
    Ok(Item {
        header: r.header,
        content: Content::new(ContentSource::Memory(Arc::new(r.content)), len),
    })
}

/// Passes a batch through the chain; returns what is to be written.
fn decide(running: &mut [&mut dyn Decide], mut items: Vec<Item>) -> Result<Vec<Item>, PluginError> {
    for r in running.iter_mut() {
        if items.is_empty() {
            break;
        }
        let headers: Vec<EntryHeader> = items.iter().map(|i| i.header.clone()).collect();
        let mut contents: Vec<Content> = items
            .iter_mut()
            .map(|i| take_content(&mut i.content))
            .collect();
        let called = r.entries(&headers, &mut contents);
        let first_path = &headers[0].path;
        // A content not given back would leave its entry empty under a
        // header that declares its size: a corrupt tar.
        if contents.len() != items.len() {
            return Err(r.failed(
                "entries",
                Some(first_path),
                format!(
                    "gave back {} contents for a batch of {} entries",
                    contents.len(),
                    items.len()
                ),
            ));
        }
        // The contents come back whatever the answer, for the next plugin.
        for (item, c) in items.iter_mut().zip(contents) {
            item.content = rewound(c);
        }
        let decisions = called?;
        if decisions.len() != items.len() {
            return Err(r.failed(
                "entries",
                Some(first_path),
                format!(
                    "gave {} decisions for a batch of {} entries",
                    decisions.len(),
                    items.len()
                ),
            ));
        }
        let mut next = Vec::with_capacity(items.len());
        for (item, d) in items.into_iter().zip(decisions) {
            match d {
                Decision::Keep => next.push(item),
                Decision::Drop => {}
                Decision::Rewrite(h) => {
                    if h.kind == EntryKind::File && h.size != item.content.len() {
                        return Err(r.failed(
                            "entries",
                            Some(&item.header.path),
                            format!(
                                "rewrite declares {} bytes for content of {} (use replace to change content)",
                                h.size,
                                item.content.len()
                            ),
                        ));
                    }
                    if h.kind != EntryKind::File && !item.content.is_empty() {
                        return Err(r.failed(
                            "entries",
                            Some(&item.header.path),
                            format!("rewrite makes a {:?} of an entry with content", h.kind),
                        ));
                    }
                    next.push(Item {
                        header: h,
                        content: item.content,
                    });
                }
                Decision::Replace(rep) => {
                    next.push(from_replacement(
                        &**r,
                        "entries",
                        Some(&item.header.path),
                        rep,
                    )?);
                }
            }
        }
        items = next;
    }
    Ok(items)
}

/// Moves a content out (leaving an empty one), for the plugin's store.
fn take_content(c: &mut Content) -> Content {
    std::mem::replace(
        c,
        Content::new(ContentSource::Memory(Arc::new(Vec::new())), 0),
    )
}

/// The same content, read position back at the start (the next plugin, or
/// the writer, reads it whole).
fn rewound(c: Content) -> Content {
    c.rewound()
}

/// The tar being written, and what the rules need to remember.
struct Writer<W: Write> {
    builder: tar::Builder<W>,
    /// Paths written so far.
    paths: HashSet<String>,
    /// Symlinks written so far: nothing may be written through them.
    links: HashSet<String>,
    written: u64,
    unpacked: u64,
}

impl<W: Write> Writer<W> {
    fn write_all(
        &mut self,
        items: Vec<Item>,
        running: &[&mut dyn Decide],
    ) -> Result<(), PluginError> {
        // Who to blame: the last plugin of the chain had the last word.
        let blame = running.last().map(|r| &**r);
        for item in items {
            self.write(item, blame)?;
        }
        Ok(())
    }

    /// Writes the layer root's own entry (`./`) as it was read.
    fn write_root(&mut self, h: &EntryHeader) -> io::Result<()> {
        let mut th = tar::Header::new_gnu();
        th.set_entry_type(tar::EntryType::Directory);
        th.set_mode(h.mode & 0o7777);
        th.set_uid(u64::from(h.uid));
        th.set_gid(u64::from(h.gid));
        th.set_mtime(h.mtime.max(0) as u64);
        th.set_size(0);
        self.builder.append_data(&mut th, "./", io::empty())?;
        self.written += 1;
        Ok(())
    }

    fn write(&mut self, item: Item, blame: Option<&dyn Decide>) -> Result<(), PluginError> {
        let h = &item.header;
        let refuse = |detail: String| match blame {
            Some(p) => p.failed("entries", Some(&h.path), detail),
            None => PluginError::Invalid {
                name: "layer".into(),
                detail,
            },
        };
        // The rootfs rules, whatever the plugin said.
        if h.path.starts_with('/') {
            return Err(refuse(format!("path {:?} is absolute", h.path)));
        }
        let path = normalize(h.path.as_bytes())
            .map_err(|e| refuse(format!("path {:?}: {e}", h.path)))?
            .to_string_lossy()
            .into_owned();
        if path.is_empty() {
            return Err(refuse("an entry needs a path".into()));
        }
        // The tar writer pads whatever the content gives: a content shorter
        // or longer than its header says would shift every entry after it.
        if h.kind == EntryKind::File && item.content.len() != h.size {
            return Err(refuse(format!(
                "{path:?} declares {} bytes but has {}",
                h.size,
                item.content.len()
            )));
        }
        let mut parent = String::new();
        for comp in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            if self.links.contains(&parent) {
                return Err(refuse(format!(
                    "{path:?} would be written through the symlink {parent:?}"
                )));
            }
        }
        if h.kind == EntryKind::Hardlink {
            let target = h.link_target.as_deref().unwrap_or_default();
            if target.starts_with('/') || normalize(target.as_bytes()).is_err() || target.is_empty()
            {
                return Err(refuse(format!(
                    "hard link {path:?} names {target:?}, which is not a path inside the layer"
                )));
            }
        }
        if matches!(h.kind, EntryKind::Symlink | EntryKind::Hardlink) && h.link_target.is_none() {
            return Err(refuse(format!("link {path:?} has no target")));
        }
        if !self.paths.insert(path.clone()) && h.kind != EntryKind::Directory {
            return Err(refuse(format!(
                "{path:?} is written twice (a rename onto an existing entry)"
            )));
        }
        if h.kind == EntryKind::Symlink {
            self.links.insert(path.clone());
        }
        let mut th = tar::Header::new_gnu();
        th.set_entry_type(tar_type(h.kind));
        th.set_mode(h.mode & 0o7777);
        th.set_uid(u64::from(h.uid));
        th.set_gid(u64::from(h.gid));
        th.set_mtime(h.mtime.max(0) as u64);
        th.set_size(if h.kind == EntryKind::File { h.size } else { 0 });
        if matches!(h.kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
            let _ = th.set_device_major(h.devmajor);
            let _ = th.set_device_minor(h.devminor);
        }
        let io_err = |e: io::Error| refuse(format!("cannot write {path:?}: {e}"));
        if !h.xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = h
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            self.builder
                .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(io_err)?;
        }
        let name = if h.kind == EntryKind::Directory {
            format!("{path}/")
        } else {
            path.clone()
        };
        match h.kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                let target = h.link_target.clone().unwrap_or_default();
                self.builder
                    .append_link(&mut th, &name, &target)
                    .map_err(io_err)?;
            }
            EntryKind::File => {
                let reader = item.content.reader().map_err(io_err)?;
                self.builder
                    .append_data(&mut th, &name, reader)
                    .map_err(io_err)?;
            }
            _ => {
                self.builder
                    .append_data(&mut th, &name, io::empty())
                    .map_err(io_err)?;
            }
        }
        self.written += 1;
        self.unpacked += match h.kind {
            EntryKind::File => h.size,
            EntryKind::Symlink => h.link_target.as_ref().map_or(0, |t| t.len() as u64),
            _ => 0,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decider from a closure over each header, counting what it saw.
    struct Native<F> {
        name: &'static str,
        rule: F,
        seen: Vec<String>,
        added: Vec<Replacement>,
    }

    fn native<F: FnMut(&EntryHeader) -> Decision>(name: &'static str, rule: F) -> Native<F> {
        Native {
            name,
            rule,
            seen: Vec::new(),
            added: Vec::new(),
        }
    }

    impl<F: FnMut(&EntryHeader) -> Decision> Decide for Native<F> {
        fn name(&self) -> &str {
            self.name
        }
        fn begin(&mut self, _layer: &LayerInfo) -> Result<(), PluginError> {
            Ok(())
        }
        fn entries(
            &mut self,
            headers: &[EntryHeader],
            contents: &mut Vec<Content>,
        ) -> Result<Vec<Decision>, PluginError> {
            assert_eq!(headers.len(), contents.len());
            self.seen.extend(headers.iter().map(|h| h.path.clone()));
            Ok(headers.iter().map(&mut self.rule).collect())
        }
        fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
            Ok(std::mem::take(&mut self.added))
        }
    }

    /// A tar header with every numeric field set (a bare GNU header's are
    /// not numbers).
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    /// A gzip layer: `./`, a directory, files (path, content), a symlink.
    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for dir in ["./", "usr/"] {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, dir, io::empty()).unwrap();
        }
        for (path, data) in files {
            let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            h.set_mtime(1_700_000_000);
            h.set_uid(1000);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, "usr/link", "bin/a").unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn meta() -> LayerMeta {
        let d = crate::digest::sha256_of(b"layer");
        LayerMeta {
            digest: d.clone(),
            diff_id: d,
            index: 0,
            count: 1,
        }
    }

    fn run(chain: &mut [&mut dyn Decide], input: &[u8]) -> Result<Transformed, PluginError> {
        // The new layer is a temporary file, removed when dropped.
        let dir = std::env::temp_dir();
        transform_with(chain, &mut &input[..], &meta(), &dir, Codec::Gzip(1))
    }

    /// The written layer: (path, mode, mtime, uid, content) per entry.
    fn read_back(t: &Transformed) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(t.file.path()).unwrap());
        let mut a = tar::Archive::new(gz);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn a_native_decider_runs_the_same_pipeline() {
        let input = layer(&[
            ("usr/bin/a", b"alpha"),
            ("usr/share/doc/a/README", b"docs"),
            ("usr/bin/b", b"beta"),
        ]);
        let mut d = native("slimmer", |h| {
            if h.path.starts_with("usr/share/doc/") {
                Decision::Drop
            } else if h.path == "usr/bin/b" {
                let mut h = h.clone();
                h.mode = 0o755;
                h.mtime = 0;
                h.uid = 0;
                Decision::Rewrite(h)
            } else {
                Decision::Keep
            }
        });
        let t = run(&mut [&mut d], &input).unwrap();
        // The root is the host's: never handed to a decider.
        assert_eq!(
            d.seen,
            [
                "usr",
                "usr/bin/a",
                "usr/share/doc/a/README",
                "usr/bin/b",
                "usr/link"
            ]
        );
        assert_eq!((t.entries_in, t.entries_out), (6, 5));
        let out = read_back(&t);
        let paths: Vec<&str> = out.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(paths, ["./", "usr/", "usr/bin/a", "usr/bin/b", "usr/link"]);
        assert_eq!(out[2].4, b"alpha");
        assert_eq!((out[2].1, out[2].2, out[2].3), (0o644, 1_700_000_000, 1000));
        assert_eq!(out[3].4, b"beta");
        assert_eq!((out[3].1, out[3].2, out[3].3), (0o755, 0, 0));
        assert_eq!(t.unpacked, 5 + 4 + "bin/a".len() as u64);
        // The digests are of what was written.
        let bytes = std::fs::read(t.file.path()).unwrap();
        assert_eq!(t.digest, crate::digest::sha256_of(&bytes));
        assert_eq!(t.size, bytes.len() as u64);
    }

    #[test]
    fn a_chain_passes_on_what_the_first_kept_and_finish_adds_through_the_rest() {
        let input = layer(&[("usr/bin/a", b"alpha"), ("usr/bin/b", b"beta")]);
        let mut first = native("first", |h| {
            if h.path == "usr/bin/a" {
                Decision::Drop
            } else {
                Decision::Keep
            }
        });
        let mut header = EntryHeader {
            path: "usr/added".into(),
            kind: EntryKind::File,
            size: 3,
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: None,
            xattrs: Vec::new(),
            devmajor: 0,
            devminor: 0,
        };
        first.added.push(Replacement {
            header: header.clone(),
            content: b"new".to_vec(),
        });
        let mut second = native("second", |_| Decision::Keep);
        let t = run(&mut [&mut first, &mut second], &input).unwrap();
        assert_eq!(second.seen, ["usr", "usr/bin/b", "usr/link", "usr/added"]);
        let out = read_back(&t);
        assert_eq!(out.last().unwrap().0, "usr/added");
        assert_eq!(out.last().unwrap().4, b"new");

        // An addition whose content is not its declared size is refused.
        header.size = 4;
        let mut liar = native("liar", |_| Decision::Keep);
        liar.added.push(Replacement {
            header,
            content: b"new".to_vec(),
        });
        let err = run(&mut [&mut liar], &input).unwrap_err().to_string();
        assert!(
            err.contains("liar")
                && err.contains("replacement content is 3 bytes but its header declares 4"),
            "{err}"
        );
    }

    #[test]
    fn the_host_checks_a_native_decider_as_it_checks_a_plugin() {
        let input = layer(&[("usr/bin/a", b"alpha"), ("usr/bin/b", b"beta")]);

        let mut renames = native("renamer", |h| {
            let mut h = h.clone();
            if h.path == "usr/bin/b" {
                h.path = "usr/bin/a".into();
            }
            Decision::Rewrite(h)
        });
        let err = run(&mut [&mut renames], &input).unwrap_err().to_string();
        assert!(
            err.contains("renamer") && err.contains("\"usr/bin/a\" is written twice"),
            "{err}"
        );

        let mut grows = native("grower", |h| {
            let mut h = h.clone();
            if h.kind == EntryKind::File {
                h.size += 1;
            }
            Decision::Rewrite(h)
        });
        let err = run(&mut [&mut grows], &input).unwrap_err().to_string();
        assert!(
            err.contains("grower") && err.contains("rewrite declares 6 bytes for content of 5"),
            "{err}"
        );

        let mut escapes = native("escaper", |h| {
            let mut h = h.clone();
            h.path = format!("/{}", h.path);
            Decision::Rewrite(h)
        });
        let err = run(&mut [&mut escapes], &input).unwrap_err().to_string();
        assert!(
            err.contains("escaper") && err.contains("is absolute"),
            "{err}"
        );

        struct Short;
        impl Decide for Short {
            fn name(&self) -> &str {
                "short"
            }
            fn begin(&mut self, _: &LayerInfo) -> Result<(), PluginError> {
                Ok(())
            }
            fn entries(
                &mut self,
                _: &[EntryHeader],
                _: &mut Vec<Content>,
            ) -> Result<Vec<Decision>, PluginError> {
                Ok(vec![Decision::Keep])
            }
            fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
                Ok(Vec::new())
            }
        }
        let err = run(&mut [&mut Short], &input).unwrap_err().to_string();
        assert!(
            err.contains("plugin short (layer-transform): entries")
                && err.contains("gave 1 decisions for a batch of 4 entries"),
            "{err}"
        );
    }

    /// Found by fuzzing (tests/fuzz.rs, `decisions`): a decider that kept
    /// the batch's contents made the host write entries whose data was
    /// missing under headers declaring it, a tar that no longer read back.
    #[test]
    fn a_decider_that_keeps_the_contents_is_refused() {
        struct Keeper;
        impl Decide for Keeper {
            fn name(&self) -> &str {
                "keeper"
            }
            fn begin(&mut self, _: &LayerInfo) -> Result<(), PluginError> {
                Ok(())
            }
            fn entries(
                &mut self,
                headers: &[EntryHeader],
                contents: &mut Vec<Content>,
            ) -> Result<Vec<Decision>, PluginError> {
                contents.clear();
                Ok(vec![Decision::Keep; headers.len()])
            }
            fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
                Ok(Vec::new())
            }
        }
        let input = layer(&[("usr/bin/a", b"alpha")]);
        let err = run(&mut [&mut Keeper], &input).unwrap_err().to_string();
        assert!(
            err.contains("keeper") && err.contains("gave back 0 contents for a batch of 3 entries"),
            "{err}"
        );
    }
}
