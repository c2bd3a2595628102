//! The commands, one module each: a plain request struct (what to do) and
//! the library code that runs it. The command line and pipeline steps build
//! the same request, so a step and its command cannot drift apart; both
//! print through the same [`Ui`], so a step prints what its command prints.
//!
//! A request deserializes from a pipeline step's keys (the command's long
//! flag names in snake case, positional arguments named as the field) and
//! describes itself as JSON Schema for editors.

pub mod copy;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod mount;
pub mod plugin;
pub mod prune;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod save;
pub mod search;
pub mod system;
pub mod tag;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::cancel::Cancel;
use crate::progress::{Progress, Silent};
use crate::transport::registry::Registries;
use crate::transport::store::Store;

/// How a command's transfer progress is shown: docker's words differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// `load`: "Loading layer".
    Load,
    /// `pull`: "Pulling fs layer", "Downloading", "Pull complete".
    Pull,
    /// `push`: "Preparing", "Pushing", "Pushed".
    Push,
    /// `save` and other copies docker shows no progress for.
    Save,
    /// `copy`: "Waiting", "Copying", "Done".
    Copy,
}

/// A view of one command's transfers, as the front end draws them.
pub trait TransferView: Progress {
    /// Adds a line before any transfer (push's "Preparing").
    fn announce(&self, _digest: &crate::digest::Digest, _id: &str, _status: &str) {}
    /// Draws the final state.
    fn finish(&self) {}
}

impl TransferView for Silent {}

/// Where a command's output goes. The library never prints: the command
/// line gives its terminal, a pipeline the same, a test a buffer.
pub trait Ui: Send + Sync {
    /// Standard output, for the command's own text.
    fn stdout(&self) -> Box<dyn Write + '_>;
    /// One line on standard error (warnings, per-item errors).
    fn warn(&self, line: &str);
    /// A progress view for a transfer; `shown` is false for a quiet
    /// command (whose progress a front end may still count).
    fn transfer(&self, mode: TransferMode, shown: bool) -> Box<dyn TransferView + '_>;
    /// True when standard output is a terminal.
    fn is_terminal(&self) -> bool;
}

/// A [`Ui`] that keeps output in memory and shows no progress: for tests
/// and for library callers that only want the typed outputs.
#[derive(Default)]
pub struct BufferUi {
    out: std::sync::Mutex<Vec<u8>>,
    err: std::sync::Mutex<Vec<String>>,
}

impl BufferUi {
    /// What was written to standard output.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
    /// The warning lines.
    pub fn warnings(&self) -> Vec<String> {
        self.err.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct BufferWriter<'a>(&'a std::sync::Mutex<Vec<u8>>);

impl Write for BufferWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Ui for BufferUi {
    fn stdout(&self) -> Box<dyn Write + '_> {
        Box::new(BufferWriter(&self.out))
    }
    fn warn(&self, line: &str) {
        self.err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.to_string());
    }
    fn transfer(&self, _: TransferMode, _: bool) -> Box<dyn TransferView + '_> {
        Box::new(Silent)
    }
    fn is_terminal(&self) -> bool {
        false
    }
}

/// What every command runs with: the store (opened on first use, so
/// `search` and `login` never need one), the registry settings, and a
/// cancellation flag. Clones share the store and the registry clients.
#[derive(Clone)]
pub struct Context {
    root: PathBuf,
    store: Arc<OnceLock<Store>>,
    swept: Arc<OnceLock<()>>,
    registries: Arc<Registries>,
    cancel: Cancel,
    plugins: Arc<crate::plugin::catalog::Catalog>,
}

impl Context {
    /// A context for the store at `root` with these registry settings.
    pub fn new(root: PathBuf, registries: Registries) -> Context {
        let cache = root.join(".strata/plugins/compiled");
        Context {
            root,
            store: Arc::new(OnceLock::new()),
            swept: Arc::new(OnceLock::new()),
            registries: Arc::new(registries),
            cancel: Cancel::new(),
            plugins: Arc::new(crate::plugin::catalog::Catalog::new(
                Default::default(),
                Some(cache),
            )),
        }
    }

    /// The same context with these plugins declared (a pipeline's).
    pub fn with_plugins(
        &self,
        declared: std::collections::HashMap<String, crate::plugin::catalog::Declared>,
    ) -> Context {
        Context {
            plugins: Arc::new(crate::plugin::catalog::Catalog::new(
                declared,
                Some(self.root.join(".strata/plugins/compiled")),
            )),
            ..self.clone()
        }
    }

    /// The plugins of this run.
    pub fn plugins(&self) -> &crate::plugin::catalog::Catalog {
        &self.plugins
    }

    /// The transforms named (declared plugins, or component files), with
    /// their log lines collected into `lines` for the command to show.
    pub fn transforms(
        &self,
        names: &[String],
        lines: &Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Result<crate::plugin::image::Transforms, CommandError> {
        let sink = lines.clone();
        let log: crate::plugin::image::PluginLog = Arc::new(move |plugin: &str, line: &str| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{plugin}: {line}"));
        });
        let fetch = self.plugin_fetch();
        Ok(self.plugins.transforms(names, Some(&fetch), Some(log))?)
    }

    /// How this context gets a plugin artifact's component (a reference
    /// pinned by digest): from the store when kept there, else from the
    /// registry through this context's clients, then kept.
    pub fn plugin_fetch(&self) -> crate::plugin::catalog::Fetch {
        let ctx = self.clone();
        Arc::new(move |reference: &str| {
            let store = ctx.store().map_err(|e| e.to_string())?;
            crate::plugin::fetch::fetch(ctx.registries(), store, reference)
                .map_err(|e| e.to_string())
        })
    }

    /// The same context with its own cancellation flag.
    pub fn with_cancel(&self, cancel: Cancel) -> Context {
        Context {
            cancel,
            ..self.clone()
        }
    }

    /// The flag that stops this context's work.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Copy options for a command: its parallelism, this context's flag.
    pub fn copy_options(&self, parallelism: usize) -> crate::copy::CopyOptions {
        crate::copy::CopyOptions {
            parallelism: parallelism.max(1),
            cancel: self.cancel.clone(),
            ..crate::copy::CopyOptions::default()
        }
    }

    /// The store, opened on first use.
    pub fn store(&self) -> Result<&Store, CommandError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let opened = Store::open(&self.root).map_err(|source| CommandError::OpenStore {
            root: self.root.clone(),
            source,
        })?;
        Ok(self.store.get_or_init(|| opened))
    }

    /// The store, for a command that writes to it: on first use, what
    /// killed strata processes left in the ingest area is swept, so an
    /// interrupted `load` or `pull` costs no disk once anything writes again.
    pub fn store_for_writing(&self) -> Result<&Store, CommandError> {
        let store = self.store()?;
        self.swept.get_or_init(|| {
            store.sweep_ingest();
        });
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The registry settings and clients.
    pub fn registries(&self) -> &Registries {
        &self.registries
    }
}

/// Errors of the commands. Each wraps the module error that caused it, or
/// says what about the request cannot be done, in docker's words.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store could not be opened.
    #[error("cannot open the image store at {}: {source}", root.display())]
    OpenStore {
        /// The store's root.
        root: PathBuf,
        /// Why.
        #[source]
        source: crate::transport::store::StoreError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::transport::store::StoreError),
    /// An image was not found or is ambiguous.
    #[error(transparent)]
    Lookup(#[from] crate::transport::store::LookupError),
    /// A tag could not be made.
    #[error(transparent)]
    Tag(#[from] crate::transport::store::TagError),
    /// Copying failed.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// A registry failed.
    #[error(transparent)]
    Registry(#[from] crate::transport::registry::RegistryError),
    /// A registry client could not be set up.
    #[error(transparent)]
    Settings(#[from] crate::transport::registry::settings::SettingsError),
    /// Credentials could not be read or written.
    #[error(transparent)]
    Credential(#[from] crate::transport::registry::credentials::CredentialError),
    /// An image reference is not valid.
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    /// A `--format` template failed.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] crate::mount::MountError),
    /// An archive could not be read or written.
    #[error(transparent)]
    Archive(#[from] crate::transport::archive::ArchiveError),
    /// A plugin could not be loaded or failed.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// A plugin artifact could not be had.
    #[error(transparent)]
    Artifact(Box<crate::plugin::artifact::ArtifactError>),
    /// Transforming an image failed.
    #[error(transparent)]
    Transform(#[from] crate::plugin::image::TransformError),
    /// Logging in failed.
    #[error(transparent)]
    Login(#[from] login::LoginError),
    /// Searching failed.
    #[error(transparent)]
    Search(#[from] search::SearchError),
    /// An address (`docker://…`, `oci:…`) is not valid: a usage error.
    #[error(transparent)]
    Address(#[from] crate::transport::address::AddressError),
    /// Something failed at a named place (`copy`'s source or destination).
    #[error("{place}: {source}")]
    At {
        /// The place, as the user wrote it.
        place: String,
        /// What failed.
        #[source]
        source: Box<CommandError>,
    },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The request asks for something that cannot be done (a bad filter,
    /// a limit out of range), in docker's words.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist, in docker's words.
    #[error("{0}")]
    NotFound(String),
    /// `system check` found the store not as its records say.
    #[error("{problems} problem(s) found in the store at {}; `strata system check --repair` drops what is broken", root.display())]
    Unsound {
        /// The store's root.
        root: PathBuf,
        /// How many.
        problems: usize,
    },
    /// `system check --repair` had to leave some problems as they were.
    #[error("{problems} problem(s) in the store at {} were left as they are (see above)", root.display())]
    Unrepaired {
        /// The store's root.
        root: PathBuf,
        /// How many.
        problems: usize,
    },
    /// Several items were asked for and some failed; the rest were done.
    /// Each message is one line.
    #[error("{}", .0.join("; "))]
    Partial(Vec<String>),
    /// A batch (a mirror) finished with some items failed: the outputs say
    /// what was done, each failure is one line.
    #[error("{} failed: {}", failures.len(), failures.join("; "))]
    Incomplete {
        /// What the command would have returned.
        outputs: Box<serde_json::Value>,
        /// One line per failed item.
        failures: Vec<String>,
    },
}

impl CommandError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> CommandError {
        CommandError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<crate::plugin::artifact::ArtifactError> for CommandError {
    fn from(e: crate::plugin::artifact::ArtifactError) -> Self {
        CommandError::Artifact(Box::new(e))
    }
}

impl From<io::Error> for CommandError {
    fn from(source: io::Error) -> Self {
        CommandError::io("writing output", source)
    }
}

/// Shows what plugins logged, one line each on standard error.
pub(crate) fn show_plugin_lines(ui: &dyn Ui, lines: &Arc<std::sync::Mutex<Vec<String>>>) {
    for l in lines.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        ui.warn(&l);
    }
}

/// Deserializes a list given as one item or several (`image: x` or
/// `images: [x, y]`).
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(x) => vec![x],
    })
}

/// The default for docker's `-H`/`--human` (true).
pub(crate) fn yes() -> bool {
    true
}
