//! What a plugin's store holds: its limits, where its log lines go, the
//! layer batch it may read, the registry facts a tag filter may ask for,
//! and WASI when a pipeline grants it.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Where a plugin's log lines go (the front end shows them with its name).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Facts about a repository's tags, fetched on a tag filter's behalf.
pub trait TagFacts: Send + Sync {
    /// The manifest digest a tag names.
    fn digest(&self, tag: &str) -> Result<String, String>;
    /// The platforms of the image a tag names.
    fn platforms(&self, tag: &str) -> Result<Vec<String>, String>;
    /// The config's `created`.
    fn created(&self, tag: &str) -> Result<Option<String>, String>;
    /// The config's labels.
    fn labels(&self, tag: &str) -> Result<Vec<(String, String)>, String>;
}

/// One entry's content in the batch being decided, and how far the plugin
/// has read it.
pub struct Content {
    source: ContentSource,
    len: u64,
    pos: u64,
}

/// Where a batch entry's content is kept until the batch is written.
pub enum ContentSource {
    /// Small contents, in memory.
    Memory(Arc<Vec<u8>>),
    /// A large one, spooled to a temporary file (removed when dropped).
    File(Arc<tempfile::NamedTempFile>),
}

impl Content {
    /// Content `source` of `len` bytes, unread.
    pub fn new(source: ContentSource, len: u64) -> Content {
        Content {
            source,
            len,
            pos: 0,
        }
    }

    /// The whole content, from the start, as a reader (for writing it out).
    pub fn reader(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match &self.source {
            ContentSource::Memory(b) => Box::new(&b[..]),
            ContentSource::File(f) => {
                let mut file = f.reopen()?;
                file.seek(SeekFrom::Start(0))?;
                Box::new(file.take(self.len))
            }
        })
    }

    /// The next at most `max` bytes the plugin has not read.
    pub fn read_next(&mut self, max: usize) -> std::io::Result<Vec<u8>> {
        let want = (self.len - self.pos).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        match &self.source {
            ContentSource::Memory(b) => {
                let start = self.pos as usize;
                buf.copy_from_slice(&b[start..start + want]);
            }
            ContentSource::File(f) => {
                let mut file = f.reopen()?;
                file.seek(SeekFrom::Start(self.pos))?;
                file.read_exact(&mut buf)?;
            }
        }
        self.pos += want as u64;
        Ok(buf)
    }

    /// The same content with its read position back at the start.
    pub fn rewound(mut self) -> Content {
        self.pos = 0;
        self
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A plugin store's data.
pub struct HostState {
    /// Memory and instance limits.
    pub limits: StoreLimits,
    /// Where `log.info` lines go.
    pub log: LogSink,
    /// The contents of the layer batch being decided.
    pub batch: Vec<Content>,
    /// The most bytes one `read` may return.
    pub read_max: usize,
    /// Facts for a tag filter.
    pub facts: Option<Arc<dyn TagFacts>>,
    /// WASI, when granted.
    pub wasi: Option<WasiState>,
}

/// A granted WASI context and its resources.
pub struct WasiState {
    /// The context (directories, environment).
    pub ctx: WasiCtx,
    /// Its resource table.
    pub table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // The linker offers WASI only to a store made with it; a store
        // without gets an empty context, which nothing can call.
        let w = self.wasi.get_or_insert_with(|| WasiState {
            ctx: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        });
        WasiCtxView {
            ctx: &mut w.ctx,
            table: &mut w.table,
        }
    }
}
