//! `strata copy SRC DST`: an image from any place strata reads to any place
//! it writes, both named in skopeo's transport syntax
//! ([`crate::transport::address`]), through the one copy engine. Manifests
//! travel byte for byte, so the digest at the destination is the source's;
//! by default a multi-platform index travels whole, as a mirror needs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use crate::copy::{self, Copyable};
use crate::digest::Digest;
use crate::progress::{BlobKind, Event, Outcome, Progress};
use crate::reference::{self, Reference};
use crate::transport::address::Address;
use crate::transport::archive::{
    ArchiveLayout, ArchiveSink, ArchiveSource, Input, OutputCompression,
};
use crate::transport::layout::{LayoutSink, LayoutSource};
use crate::transport::registry::{PlatformChoice, Repository, RepositorySink, auth};
use crate::transport::store::{Lease, Store, StoreSink, StoredImage, Target, temp_path};
use crate::transport::{Sink, Source, TransportError};

use super::{CommandError, Context, TransferMode, TransferView, Ui};

/// `copy [OPTIONS] SOURCE DESTINATION`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// Where the image is: `docker://NAME[:TAG|@DIGEST]`, `oci:DIR[:REF]`,
    /// `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME[:TAG]]`, or a
    /// local image name or ID.
    pub source: String,
    /// Where it goes, in the same forms (`destination` is accepted too).
    #[serde(alias = "destination")]
    pub target: String,
    /// Copy every platform of a multi-platform image, keeping its index
    /// byte for byte (the default); false copies the host's platform.
    #[serde(default = "super::yes")]
    pub all: bool,
    /// Copy this platform (os/arch[/variant]) alone instead.
    #[serde(default)]
    pub platform: Option<String>,
    /// Print only the digest.
    #[serde(default)]
    pub quiet: bool,
    /// Blobs copied at once.
    #[serde(default = "default_concurrent")]
    pub max_concurrent: usize,
    /// Plugins (layer and config transforms) applied on the way, in order:
    /// the destination gets the transformed image (the store keeps the
    /// results for the next time).
    #[serde(default, deserialize_with = "super::one_or_many")]
    pub transform: Vec<String>,
}

/// The default of [`CopyRequest::max_concurrent`].
pub fn default_concurrent() -> usize {
    6
}

/// Runs `copy`. Prints one line per blob as it lands (`Copying blob
/// 1a2b3c4d5e6f done`, `… skipped: already exists`, `… mounted from REPO`;
/// a progress view instead on a terminal), `Writing manifest to image
/// destination`, then the digest of what was written at the top (an index
/// or a manifest); `quiet` prints the digest alone. The outputs: `digest`,
/// `source`, `destination` (the addresses in full), `blobs_copied`,
/// `blobs_skipped` and `bytes` (copied).
pub fn run(
    ctx: &Context,
    req: &CopyRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let from = Address::parse(&req.source)?;
    let to = Address::parse(&req.target)?;
    let choice = match (&req.platform, req.all) {
        (None, true) => PlatformChoice::All,
        (platform, _) => super::pull::platform_choice(false, platform.as_deref())?,
    };
    let at = |address: &Address| {
        let place = address.to_string();
        move |e: CommandError| CommandError::At {
            place,
            source: Box::new(e),
        }
    };
    // The destination registry is reached (endpoint probe, token) while the
    // source is read: its round trips are then off the copy's path.
    let source = std::thread::scope(|s| {
        s.spawn(|| warm_up(ctx, &to));
        open_source(ctx, &from, &choice, ui)
    })
    .map_err(at(&from))?;
    let source = if req.transform.is_empty() {
        source
    } else {
        transformed(ctx, req, ui, source).map_err(at(&from))?
    };
    let what = &source.what;
    let destination = open_destination(ctx, &to, &source).map_err(at(&to))?;

    let shown = !req.quiet && ui.is_terminal();
    let view = ui.transfer(TransferMode::Copy, shown);
    let reporter = Reporter {
        ui,
        view: view.as_ref(),
        lines: !req.quiet && !shown,
        announce: !req.quiet,
        finished: AtomicBool::new(false),
    };
    let options = ctx.copy_options(req.max_concurrent);
    let report = copy::copy(
        source.source.as_ref(),
        destination.sink(),
        what,
        &destination.names,
        &options,
        &reporter,
    )?;
    destination.commit()?;
    reporter.finish();

    let mut record = Vec::new();
    record.extend(source.repository.as_ref());
    record.extend(destination.repository.as_ref());
    if !record.is_empty() {
        // So later pushes can mount these layers instead of uploading them.
        let store = ctx.store()?;
        for image in what.images() {
            for layer in image.layers() {
                for repository in &record {
                    store.add_layer_source(layer.descriptor.digest(), repository)?;
                }
            }
        }
    }
    writeln!(ui.stdout(), "{}", what.digest())?;
    Ok(serde_json::json!({
        "digest": what.digest().to_string(),
        "source": from.to_string(),
        "destination": to.to_string(),
        "blobs_copied": report.copied.len(),
        "blobs_skipped": report.skipped.len(),
        "bytes": report.bytes,
    }))
}

/// An opened source and what to copy from it.
struct Opened<'a> {
    source: Box<dyn Source + 'a>,
    what: Copyable,
    /// `registry/repository` when the source is a registry.
    repository: Option<String>,
    /// The registry and repository path, for mounts within one registry.
    registry: Option<(String, String)>,
    /// For a local image: keeps its blobs in the store until the copy ends.
    _lease: Option<Lease>,
}

fn open_source<'a>(
    ctx: &'a Context,
    address: &Address,
    choice: &PlatformChoice,
    ui: &dyn Ui,
) -> Result<Opened<'a>, CommandError> {
    let opened = |source: Box<dyn Source + 'a>, what| Opened {
        source,
        what,
        repository: None,
        registry: None,
        _lease: None,
    };
    match address {
        Address::Registry(name) => {
            let client = ctx.registries().client(name.domain())?;
            let repo = Repository::new(client, name.path());
            let wanted = name.digest().or(name.tag()).unwrap_or("latest");
            let (what, _) = repo.fetch(wanted, choice)?;
            Ok(Opened {
                source: Box::new(repo),
                what,
                repository: Some(format!("{}/{}", name.domain(), name.path())),
                registry: Some((name.domain().to_string(), name.path().to_string())),
                _lease: None,
            })
        }
        Address::Layout { dir, reference } => {
            let source = LayoutSource::open(dir).map_err(TransportError::from)?;
            let what = source.resolve(reference.as_deref(), choice)?;
            Ok(opened(Box::new(source), what))
        }
        Address::OciArchive { path, reference } => {
            let source = open_archive(ctx, path)?;
            let what = source.resolve(reference.as_deref(), choice)?;
            Ok(opened(Box::new(source), what))
        }
        Address::DockerArchive { path, reference } => {
            let source = open_archive(ctx, path)?;
            let wanted = reference.as_ref().map(|r| r.to_string());
            let what = source.resolve(wanted.as_deref(), choice)?;
            Ok(opened(Box::new(source), what))
        }
        Address::Store(query) => {
            let store = ctx.store()?;
            let image = store.lookup(query)?;
            let lease = store.lease(std::slice::from_ref(&image.descriptor))?;
            let what = from_store(store, query, image, choice, ui)?;
            Ok(Opened {
                _lease: Some(lease),
                ..opened(Box::new(store.clone()), what)
            })
        }
    }
}

/// The source passed through the transforms into the store (unlisted):
/// what is copied is the result, read from the store.
fn transformed<'a>(
    ctx: &'a Context,
    req: &CopyRequest,
    ui: &dyn Ui,
    source: Opened<'a>,
) -> Result<Opened<'a>, CommandError> {
    let store = ctx.store()?;
    let lines = std::sync::Arc::default();
    let t = ctx.transforms(&req.transform, &lines)?;
    let sink = store.sink().unlisted();
    let made =
        crate::plugin::image::transform(store, &sink, source.source.as_ref(), &source.what, &t)?;
    // Committed unlisted, the result is kept by this lease alone.
    let lease = store.lease_staged(&[super::pull::made_descriptor(&made)])?;
    sink.commit()?;
    super::show_plugin_lines(ui, &lines);
    Ok(Opened {
        source: Box::new(store.clone()),
        what: made,
        repository: None,
        registry: None,
        _lease: Some(lease),
    })
}

/// Finds a registry destination's endpoint, gets its push token and sets up
/// its upload client, so the first blob check and the first upload find
/// them ready. Failures are left for the copy itself to meet and report.
fn warm_up(ctx: &Context, address: &Address) {
    if let Address::Registry(name) = address
        && let Ok(client) = ctx.registries().client(name.domain())
    {
        let _ = client.authorize(&auth::repository_scope(name.path(), &["pull", "push"]));
        let _ = client.prepare_uploads();
    }
}

fn open_archive(ctx: &Context, path: &Path) -> Result<ArchiveSource, CommandError> {
    // A compressed archive is spooled where the store stages its blobs.
    let spool = ctx.store()?.ingest_dir();
    Ok(ArchiveSource::open(
        &Input::Path(path.to_path_buf()),
        &spool,
    )?)
}

/// A local image, whole or one platform of it.
fn from_store(
    store: &Store,
    query: &str,
    image: StoredImage,
    choice: &PlatformChoice,
    ui: &dyn Ui,
) -> Result<Copyable, CommandError> {
    let (what, cut) = store.copyable(&image)?;
    let place = format!("local image {query}");
    if !cut {
        return Ok(what.choose(choice, &place)?);
    }
    // Pulled for one platform: that child is all the store has.
    let Target::Index(index) = &image.target else {
        return Ok(what);
    };
    match choice {
        PlatformChoice::All => {
            ui.warn(&format!(
                "{query}: only {} of this multi-platform image is in the store; copying that image alone (pull it with --all-platforms to copy the index)",
                image.image.platform()
            ));
            Ok(what)
        }
        PlatformChoice::One(want) => match index.select(want) {
            Some(c) if c.digest() == what.digest() => Ok(what),
            _ => Err(TransportError::NoPlatform {
                place,
                wanted: want.to_string(),
                available: image.image.platform().to_string(),
            }
            .into()),
        },
    }
}

/// Where the copy goes: the sink, the names it gives the image, and what
/// committing takes.
struct Destination<'a> {
    kind: DestinationKind<'a>,
    names: Vec<Reference>,
    /// `registry/repository` when the destination is a registry.
    repository: Option<String>,
}

enum DestinationKind<'a> {
    Registry(RepositorySink),
    Store(StoreSink<'a>),
    Layout(LayoutSink),
    Archive(Box<ArchiveFile>),
}

/// An archive written beside its final path and renamed there on commit;
/// removed if the copy fails.
struct ArchiveFile {
    sink: ArchiveSink,
    temp: PathBuf,
    path: PathBuf,
    done: AtomicBool,
}

impl Drop for ArchiveFile {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Destination<'_> {
    fn sink(&self) -> &dyn Sink {
        match &self.kind {
            DestinationKind::Registry(s) => s,
            DestinationKind::Store(s) => s,
            DestinationKind::Layout(s) => s,
            DestinationKind::Archive(a) => &a.sink,
        }
    }

    fn commit(&self) -> Result<(), CommandError> {
        self.sink().commit()?;
        if let DestinationKind::Archive(a) = &self.kind {
            std::fs::rename(&a.temp, &a.path)
                .map_err(|e| CommandError::io(format!("cannot write {}", a.path.display()), e))?;
            a.done.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn open_destination<'a>(
    ctx: &'a Context,
    address: &Address,
    source: &Opened<'_>,
) -> Result<Destination<'a>, CommandError> {
    let top = source.what.digest();
    let plain = |kind| Destination {
        kind,
        names: Vec::new(),
        repository: None,
    };
    match address {
        Address::Registry(name) => {
            // A destination digest must be the one copied; the manifest
            // then goes up by digest alone, untagged (as skopeo does).
            check_digest(name, top)?;
            let store = ctx.store()?.clone();
            let client = ctx.registries().client(name.domain())?;
            let repo = Repository::new(client, name.path());
            let same_registry = source
                .registry
                .as_ref()
                .filter(|(registry, path)| registry == name.domain() && path != name.path())
                .map(|(_, path)| path.clone());
            let prefix = format!("{}/", name.domain());
            let candidates = Box::new(move |d: &Digest| {
                let mut out: Vec<String> = same_registry.iter().cloned().collect();
                for s in store.layer_sources(d) {
                    if let Some(path) = s.strip_prefix(&prefix)
                        && !out.iter().any(|o| o == path)
                    {
                        out.push(path.to_string());
                    }
                }
                out
            });
            Ok(Destination {
                kind: DestinationKind::Registry(RepositorySink::new(repo, candidates)),
                names: vec![name.clone()],
                repository: Some(format!("{}/{}", name.domain(), name.path())),
            })
        }
        Address::Store(text) => {
            if reference::is_full_id(text) {
                return Err(CommandError::Invalid(format!(
                    "{text}: an image ID cannot name a copy; give NAME[:TAG]"
                )));
            }
            let name = Reference::parse(text)?;
            check_digest(&name, top)?;
            let names = if name.digest().is_some() {
                vec![name]
            } else {
                let tagged = name.with_default_tag();
                let by_digest = tagged.with_digest(top.as_ref())?;
                vec![tagged, by_digest]
            };
            let sink = ctx.store_for_writing()?.sink().defer_compressed_scans();
            Ok(Destination {
                kind: DestinationKind::Store(sink),
                names,
                repository: None,
            })
        }
        Address::Layout { dir, reference } => {
            let mut sink = LayoutSink::create(dir).map_err(TransportError::from)?;
            if let Some(r) = reference {
                sink = sink.with_reference(r).map_err(TransportError::from)?;
            }
            Ok(plain(DestinationKind::Layout(sink)))
        }
        Address::OciArchive { path, reference } => {
            let file = archive_file(path, ArchiveLayout::Oci, reference.as_deref())?;
            Ok(plain(DestinationKind::Archive(Box::new(file))))
        }
        Address::DockerArchive { path, reference } => {
            let file = archive_file(path, ArchiveLayout::Docker, None)?;
            let mut d = plain(DestinationKind::Archive(Box::new(file)));
            d.names.extend(reference.iter().cloned());
            Ok(d)
        }
    }
}

/// Refuses a destination digest that is not the digest copied.
fn check_digest(name: &Reference, top: &Digest) -> Result<(), CommandError> {
    match name.digest() {
        Some(d) if d != top.as_ref() => Err(CommandError::Invalid(format!(
            "the destination names digest {d}, but the image copied has digest {top}"
        ))),
        _ => Ok(()),
    }
}

/// An archive sink on a temporary file; `reference` names the image in
/// `index.json` verbatim (`oci-archive:FILE:REF`).
fn archive_file(
    path: &Path,
    layout: ArchiveLayout,
    reference: Option<&str>,
) -> Result<ArchiveFile, CommandError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let temp = temp_path(dir, ".strata-copy");
    let file = std::fs::File::create(&temp)
        .map_err(|e| CommandError::io(format!("cannot create {}", temp.display()), e))?;
    let sink = ArchiveSink::new(&path.display().to_string(), file, OutputCompression::None)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })?
        .with_layout(layout);
    let sink = match reference {
        Some(r) => sink.with_reference(r).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })?,
        None => sink,
    };
    Ok(ArchiveFile {
        sink,
        temp,
        path: path.to_path_buf(),
        done: AtomicBool::new(false),
    })
}

/// Shows the copy: the front end's view (drawn on a terminal, hidden but
/// counting otherwise), plus, when not on a terminal, a plain line per blob.
struct Reporter<'a> {
    ui: &'a dyn Ui,
    view: &'a dyn TransferView,
    /// A line per blob.
    lines: bool,
    /// The "Writing manifest" line.
    announce: bool,
    finished: AtomicBool,
}

impl Reporter<'_> {
    /// Draws the view's last state, once.
    fn finish(&self) {
        if !self.finished.swap(true, Ordering::SeqCst) {
            self.view.finish();
        }
    }

    fn line(&self, text: &str) {
        // Progress cannot fail the copy; a closed stdout shows at the end.
        let _ = writeln!(self.ui.stdout(), "{text}");
    }
}

impl Progress for Reporter<'_> {
    fn event(&self, event: Event) {
        match &event {
            Event::BlobDone {
                digest,
                kind,
                outcome,
            } if self.lines => {
                let what = match kind {
                    BlobKind::Config => "config",
                    _ => "blob",
                };
                let how = match outcome {
                    Outcome::Moved => "done".to_string(),
                    Outcome::Present => "skipped: already exists".to_string(),
                    Outcome::Mounted { from } => format!("mounted from {from}"),
                };
                self.line(&format!("Copying {what} {} {how}", short(digest)));
            }
            Event::WritingManifests if self.announce => {
                // The view is complete: finish it before writing below it.
                self.view.event(event.clone());
                self.finish();
                self.line("Writing manifest to image destination");
                return;
            }
            _ => {}
        }
        self.view.event(event);
    }
}

/// The 12 hex digits that name a blob in messages.
fn short(d: &Digest) -> &str {
    let hex = d.digest();
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::BufferUi;
    use crate::transport::layout::testing::{entry, image_blobs, index_blob, layout};
    use crate::transport::registry::Registries;

    fn request(source: &str, destination: &str) -> CopyRequest {
        serde_json::from_value(serde_json::json!({
            "source": source, "destination": destination,
        }))
        .unwrap()
    }

    /// A layout holding a two-platform index named `v1`.
    fn two_platforms(dir: &Path) -> (crate::image::RawManifest, crate::image::RawManifest) {
        let amd = image_blobs(dir, "amd64", &["base", "amd"]);
        let arm = image_blobs(dir, "arm64", &["base", "arm"]);
        let index = index_blob(dir, &[(&amd, "amd64"), (&arm, "arm64")]);
        layout(dir, vec![entry(&index, Some("v1"))]);
        (index, amd)
    }

    fn context(dir: &Path) -> Context {
        Context::new(dir.join("store"), Registries::new(&[]))
    }

    #[test]
    fn a_request_defaults_to_every_platform_and_refuses_unknown_keys() {
        let r = request("a", "b");
        assert!(r.all && !r.quiet && r.platform.is_none());
        assert_eq!(r.max_concurrent, 6);
        let bad = serde_json::from_value::<CopyRequest>(serde_json::json!({
            "source": "a", "destination": "b", "all_platforms": true,
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn layout_to_layout_keeps_the_index_and_prints_a_line_per_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let (index, _) = two_platforms(&src);
        let ctx = context(tmp.path());
        let ui = BufferUi::default();
        let dst = tmp.path().join("dst");
        let req = request(
            &format!("oci:{}:v1", src.display()),
            &format!("oci:{}:mirror", dst.display()),
        );
        let out = run(&ctx, &req, &ui).unwrap();
        assert_eq!(out["digest"], index.digest.to_string());
        // Three layers (one shared) and two configs.
        assert_eq!(out["blobs_copied"], 5);
        assert_eq!(out["blobs_skipped"], 0);
        let text = ui.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("Copying blob "))
                .count(),
            3
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("Copying config ") && l.ends_with(" done"))
                .count(),
            2
        );
        assert_eq!(lines[5], "Writing manifest to image destination");
        assert_eq!(lines[6], index.digest.to_string());
        let copied = LayoutSource::open(&dst).unwrap();
        assert_eq!(
            copied.entry(Some("mirror")).unwrap().digest(),
            &index.digest
        );

        // Again: every blob is there; quiet prints the digest alone.
        let ui = BufferUi::default();
        let again = run(
            &ctx,
            &CopyRequest {
                quiet: true,
                ..req.clone()
            },
            &ui,
        )
        .unwrap();
        assert_eq!(again["blobs_skipped"], 5);
        assert_eq!(ui.stdout_text(), format!("{}\n", index.digest));
        let ui = BufferUi::default();
        run(&ctx, &req, &ui).unwrap();
        assert_eq!(
            ui.stdout_text()
                .lines()
                .filter(|l| l.ends_with(" skipped: already exists"))
                .count(),
            5
        );
    }

    #[test]
    fn one_platform_copies_that_image_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let (_, amd) = two_platforms(&src);
        let ctx = context(tmp.path());
        let ui = BufferUi::default();
        let mut req = request(
            &format!("oci:{}:v1", src.display()),
            &format!("oci-archive:{}:x", tmp.path().join("a.tar").display()),
        );
        req.platform = Some("linux/amd64".into());
        let out = run(&ctx, &req, &ui).unwrap();
        assert_eq!(out["digest"], amd.digest.to_string());
        assert_eq!(out["blobs_copied"], 3);
        assert!(tmp.path().join("a.tar").exists());
        req.platform = Some("linux/s390x".into());
        let e = run(&ctx, &req, &ui).unwrap_err();
        assert!(e.to_string().contains("linux/s390x"), "{e}");
    }

    #[test]
    fn a_blob_that_fails_its_digest_leaves_no_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        two_platforms(&src);
        // A layer changes on disk, its size kept.
        let layer = crate::transport::layout::testing::layer("f", b"amd");
        let path = crate::transport::layout::blob_path(&src, &crate::digest::sha256_of(&layer));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(3).position(|w| w == b"amd").unwrap();
        bytes[at] = b'A';
        std::fs::write(&path, bytes).unwrap();
        let ctx = context(tmp.path());
        let out = tmp.path().join("out.tar");
        let source = format!("oci:{}:v1", src.display());
        let e = run(
            &ctx,
            &request(&source, &format!("docker-archive:{}", out.display())),
            &BufferUi::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("digest"), "{e}");
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("src")]);
    }

    #[test]
    fn a_missing_source_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let source = format!("oci:{}", tmp.path().join("nothing").display());
        let e = run(&ctx, &request(&source, "x:1"), &BufferUi::default()).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{source}: ")), "{e}");
    }

    #[test]
    fn bad_addresses_and_digests_are_refused_before_anything_moves() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = context(tmp.path());
        let ui = BufferUi::default();
        let e = run(&ctx, &request("foo:/x", "oci:/y"), &ui).unwrap_err();
        assert!(matches!(e, CommandError::Address(_)), "{e}");
        let src = tmp.path().join("src");
        let (index, _) = two_platforms(&src);
        let source = format!("oci:{}:v1", src.display());
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = run(&ctx, &request(&source, &format!("copied@{wrong}")), &ui).unwrap_err();
        assert!(e.to_string().contains(&index.digest.to_string()), "{e}");
        // By its own digest, and then by tag and digest, into the store.
        let by_digest = format!("copied@{}", index.digest);
        run(&ctx, &request(&source, &by_digest), &ui).unwrap();
        run(&ctx, &request(&source, "copied:v2"), &ui).unwrap();
        let store = ctx.store().unwrap();
        let image = store.lookup("copied:v2").unwrap();
        assert_eq!(image.descriptor.digest(), &index.digest);
        assert!(
            image
                .names
                .iter()
                .any(|n| n.digest() == Some(index.digest.as_ref()))
        );
        // An ID names no destination.
        let id = "a".repeat(64);
        let e = run(&ctx, &request(&source, &id), &ui).unwrap_err();
        assert!(e.to_string().contains("image ID"), "{e}");
    }
}
