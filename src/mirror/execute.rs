//! Copying one tag (or digest) of a planned repository to every target
//! that lacks it, its referrers with it, and pruning what a target should
//! no longer have.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use oci_spec::image::Descriptor;
use serde::Serialize;
use serde_json::Value;

use crate::cancel::Cancel;
use crate::copy::{self, CopyOptions, Copyable};
use crate::digest::{Digest, VerifyingReader};
use crate::image::{Index, ManifestKind, Platform, RawManifest};
use crate::mutate;
use crate::progress::{BlobKind, Progress};
use crate::reference::Reference;
use crate::transport::registry::manifests::referrers_tag;
use crate::transport::registry::{PlatformChoice, Repository};
use crate::transport::{Presence, Sink, Source, TransportError};

use super::fanout::{Branch, FanOut};
use super::ledger::LedgerSink;
use super::plan::{Endpoints, RepoPlan};

/// What a job copies: a tag, or a manifest by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A tag.
    Tag(String),
    /// A manifest by digest.
    Digest(Digest),
}

impl Wanted {
    fn text(&self) -> String {
        match self {
            Wanted::Tag(t) => t.clone(),
            Wanted::Digest(d) => d.to_string(),
        }
    }
    fn separator(&self) -> char {
        match self {
            Wanted::Tag(_) => ':',
            Wanted::Digest(_) => '@',
        }
    }
}

/// How one tag went for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Copied.
    Copied,
    /// The target already had it.
    UpToDate,
    /// Left out on purpose (no selected platform).
    Skipped,
    /// Failed.
    Failed,
}

/// One tag's result for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `REGISTRY/REPO:TAG` (or `@DIGEST`) on the source.
    pub source: String,
    /// The same on the target.
    pub target: String,
    /// The digest now there (or that would be).
    pub digest: String,
    /// How it went.
    pub status: Status,
    /// Blobs moved for it (uploaded or mounted).
    pub blobs: usize,
    /// Referrers copied with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<String>,
    /// Something worth knowing (an index rewritten for a platform subset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Settings every job of a run shares.
pub struct JobSettings<'a> {
    /// Platforms to keep (all when empty).
    pub platforms: &'a [Platform],
    /// Copy referrers.
    pub referrers: bool,
    /// Blob transfers per tag.
    pub blobs: usize,
    /// Stops the run.
    pub cancel: &'a Cancel,
    /// One transfer per blob at a time, run-wide.
    pub flights: &'a super::fanout::Flights,
    /// Blob streams in flight, run-wide.
    pub gate: &'a super::fanout::Gate,
    /// Plugins every image passes through, and the store that keeps their
    /// results.
    pub transforms: Option<(
        &'a crate::plugin::image::Transforms,
        &'a crate::transport::store::Store,
    )>,
}

fn top_error(place: &str, e: crate::image::ImageError) -> TransportError {
    TransportError::Image {
        place: place.to_string(),
        source: Box::new(e),
    }
}

/// Copies `wanted` of `plan`'s repository to every target lacking it.
/// Never fails as a whole: each target's outcome says how it went.
pub fn run_job(
    endpoints: &Endpoints,
    plan: &RepoPlan,
    wanted: &Wanted,
    settings: &JobSettings<'_>,
    progress: &dyn Progress,
) -> Vec<Outcome> {
    let source_name = format!(
        "{}/{}{}{}",
        endpoints.from,
        plan.source,
        wanted.separator(),
        wanted.text()
    );
    let target_names: Vec<String> = endpoints
        .targets
        .iter()
        .zip(&plan.targets)
        .map(|(t, repo)| {
            format!(
                "{}/{repo}{}{}",
                t.spec.registry,
                wanted.separator(),
                wanted.text()
            )
        })
        .collect();
    let outcome = |i: usize, digest: &str, status: Status| Outcome {
        source: source_name.clone(),
        target: target_names[i].clone(),
        digest: digest.to_string(),
        status,
        blobs: 0,
        referrers: Vec::new(),
        note: None,
        error: None,
    };
    let fail_all = |e: String| -> Vec<Outcome> {
        (0..target_names.len())
            .map(|i| Outcome {
                error: Some(e.clone()),
                ..outcome(i, "", Status::Failed)
            })
            .collect()
    };
    if settings.cancel.is_cancelled() {
        return fail_all("cancelled".into());
    }
    let src = Repository::new(endpoints.source.clone(), &plan.source);
    let place = src.place();
    // What the target should end up with: the source's digest, or the
    // rewritten index's when only some platforms are kept.
    let mut top: Option<RawManifest> = match wanted {
        Wanted::Tag(t) => plan.manifests.get(t).cloned(),
        Wanted::Digest(_) => None,
    };
    if top.is_none() && !settings.platforms.is_empty() {
        match endpoints.source.get_manifest(&plan.source, &wanted.text()) {
            Ok(m) => top = Some(m),
            Err(e) => return fail_all(e.to_string()),
        }
    }
    let source_digest = match (&top, wanted) {
        (Some(m), _) => m.digest.clone(),
        (None, Wanted::Digest(d)) => d.clone(),
        (None, Wanted::Tag(t)) => match endpoints.source.head_manifest(&plan.source, t) {
            Ok(Some(h)) => h.digest,
            Ok(None) => return fail_all(format!("{source_name} is gone from the source")),
            Err(e) => return fail_all(e.to_string()),
        },
    };
    let mut rewritten: Option<Index> = None;
    if let Some(m) = &top
        && !settings.platforms.is_empty()
    {
        match m.kind() {
            Ok(ManifestKind::Index) => {
                let index = match Index::new(m.clone()) {
                    Ok(i) => i,
                    Err(e) => return fail_all(top_error(&place, e).to_string()),
                };
                match mutate::index_for_platforms(&index, settings.platforms) {
                    Ok(r) => rewritten = r,
                    Err(e) => {
                        return (0..target_names.len())
                            .map(|i| Outcome {
                                note: Some(e.to_string()),
                                ..outcome(i, "", Status::Skipped)
                            })
                            .collect();
                    }
                }
            }
            Ok(ManifestKind::Image) => match image_platform(&src, m) {
                Ok(Some(p)) if !settings.platforms.iter().any(|w| w.matches(&p)) => {
                    return (0..target_names.len())
                        .map(|i| Outcome {
                            note: Some(format!("a {p} image, not one of the platforms asked for")),
                            ..outcome(i, m.digest.as_ref(), Status::Skipped)
                        })
                        .collect();
                }
                Ok(_) => {}
                Err(e) => return fail_all(e.to_string()),
            },
            Err(e) => return fail_all(top_error(&place, e).to_string()),
        }
    }
    let expected = rewritten
        .as_ref()
        .map_or(source_digest.clone(), |i| i.manifest().digest.clone());
    let note = rewritten.as_ref().map(|i| {
        format!(
            "index {source_digest} cut to {} as {}",
            settings
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            i.manifest().digest
        )
    });

    // Through plugins, the target holds what they make of the image: known
    // from an earlier run, or made now (before the HEADs, which compare
    // against it).
    let mut made: Option<Copyable> = None;
    let (expected, note) = match settings.transforms {
        None => (expected, note),
        Some((t, store)) => match crate::plugin::image::known_result(store, &expected, t) {
            Some(d) => (d, Some(transform_note(t, &expected))),
            None => match transform_now(&src, &source_digest, rewritten.as_ref(), t, store) {
                Ok(c) => {
                    let d = c.digest().clone();
                    made = Some(c);
                    (d, Some(transform_note(t, &expected)))
                }
                Err(e) => return fail_all(e.to_string()),
            },
        },
    };

    // One HEAD per target: an unchanged tag costs nothing more.
    let mut results: Vec<Option<Outcome>> = vec![None; target_names.len()];
    let mut needing = Vec::new();
    for (i, t) in endpoints.targets.iter().enumerate() {
        let reference = match wanted {
            Wanted::Tag(tag) => tag.clone(),
            Wanted::Digest(_) => expected.to_string(),
        };
        match t.client.head_manifest(&plan.targets[i], &reference) {
            Ok(Some(h)) if h.digest == expected => {
                results[i] = Some(outcome(i, expected.as_ref(), Status::UpToDate));
            }
            Ok(_) => needing.push(i),
            Err(e) => {
                results[i] = Some(Outcome {
                    error: Some(e.to_string()),
                    ..outcome(i, expected.as_ref(), Status::Failed)
                });
            }
        }
    }
    if !needing.is_empty() {
        let copied = match settings.transforms {
            None => copy_to(
                endpoints,
                plan,
                wanted,
                &src,
                &source_digest,
                rewritten.as_ref(),
                &needing,
                settings,
                progress,
            ),
            Some((_, store)) => {
                let what = match made.take() {
                    Some(w) => Ok(w),
                    None => stored(store, &expected),
                };
                what.and_then(|w| {
                    copy_made(
                        endpoints, plan, wanted, store, &w, &needing, settings, progress,
                    )
                })
            }
        };
        for &i in &needing {
            results[i] = Some(match &copied {
                Ok((blobs, referrers)) => Outcome {
                    blobs: *blobs,
                    referrers: referrers.clone(),
                    note: note.clone(),
                    ..outcome(i, expected.as_ref(), Status::Copied)
                },
                Err(e) => Outcome {
                    error: Some(e.to_string()),
                    ..outcome(i, expected.as_ref(), Status::Failed)
                },
            });
        }
    }
    results.into_iter().flatten().collect()
}

fn transform_note(t: &crate::plugin::image::Transforms, input: &Digest) -> String {
    let names: Vec<&str> = t
        .layers
        .iter()
        .chain(&t.configs)
        .map(|p| p.name())
        .collect();
    format!("{input} transformed by {}", names.join(", "))
}

/// Fetches the image by digest (cut to the platforms asked for) and passes
/// it through the plugins into the store (unlisted); the result.
fn transform_now(
    src: &Repository,
    source_digest: &Digest,
    rewritten: Option<&Index>,
    t: &crate::plugin::image::Transforms,
    store: &crate::transport::store::Store,
) -> Result<Copyable, TransportError> {
    let (what, _) = src.fetch(source_digest.as_ref(), &PlatformChoice::All)?;
    let what = cut(what, rewritten);
    let sink = store.sink().unlisted();
    let made = crate::plugin::image::transform(store, &sink, src, &what, t)
        .map_err(|e| TransportError::io("transform", std::io::Error::other(e.to_string())))?;
    sink.commit()?;
    Ok(made)
}

/// The image or index a transform made before, from the store.
fn stored(
    store: &crate::transport::store::Store,
    digest: &Digest,
) -> Result<Copyable, TransportError> {
    let bytes = store.read_blob(digest)?;
    let media_type = crate::image::sniff_media_type(&bytes, None);
    let top = RawManifest::new(bytes, media_type);
    match top.kind() {
        Ok(ManifestKind::Index) => {
            let index = Index::new(top).map_err(|e| top_error("store", e))?;
            let mut children = Vec::new();
            for c in index.children() {
                if store.has_blob(c.digest()) {
                    children.push(store.load_image(store.read_manifest(c)?)?);
                }
            }
            Ok(Copyable::Index(Box::new(index), children))
        }
        _ => Ok(Copyable::Image(Box::new(store.load_image(top)?))),
    }
}

/// `what` with its index cut to the rewritten one's children.
fn cut(what: Copyable, rewritten: Option<&Index>) -> Copyable {
    match (what, rewritten) {
        (Copyable::Index(_, children), Some(new)) => {
            let keep: HashSet<&Digest> = new.children().iter().map(|c| c.digest()).collect();
            let children = children
                .into_iter()
                .filter(|c| keep.contains(&c.manifest().digest))
                .collect();
            Copyable::Index(Box::new(new.clone()), children)
        }
        (what, _) => what,
    }
}

/// Copies an image the plugins made (in the store) to the targets lacking
/// it. Referrers are not carried: they name the image before the plugins.
#[allow(clippy::too_many_arguments)]
fn copy_made(
    endpoints: &Endpoints,
    plan: &RepoPlan,
    wanted: &Wanted,
    store: &crate::transport::store::Store,
    what: &Copyable,
    needing: &[usize],
    settings: &JobSettings<'_>,
    progress: &dyn Progress,
) -> Result<(usize, Vec<String>), TransportError> {
    let sinks = target_sinks(endpoints, plan, needing);
    let branches = branches(endpoints, plan, wanted, needing, &sinks)?;
    let names = branches[0].names.clone();
    let fan = FanOut::new(branches, settings.flights, settings.gate);
    let options = CopyOptions {
        parallelism: settings.blobs.max(1),
        cancel: settings.cancel.clone(),
        ..CopyOptions::default()
    };
    let report = copy::copy(store, &fan, what, &names, &options, progress)?;
    fan.commit()?;
    Ok((report.copied.len() + report.skipped.len(), Vec::new()))
}

/// The platform a single-platform image's config states.
fn image_platform(src: &Repository, m: &RawManifest) -> Result<Option<Platform>, TransportError> {
    let Ok(parsed) = serde_json::from_slice::<oci_spec::image::ImageManifest>(&m.bytes) else {
        return Ok(None);
    };
    let config: Value =
        serde_json::from_slice(&src.read_small_blob(parsed.config())?).unwrap_or_default();
    let field = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(match (field("os"), field("architecture")) {
        (Some(os), Some(architecture)) => Some(Platform {
            os,
            architecture,
            variant: field("variant"),
        }),
        _ => None,
    })
}

/// Copies the image (and its referrers) to the targets in `needing`,
/// reading the source once. Returns the blobs moved and the referrers.
#[allow(clippy::too_many_arguments)]
fn copy_to(
    endpoints: &Endpoints,
    plan: &RepoPlan,
    wanted: &Wanted,
    src: &Repository,
    source_digest: &Digest,
    rewritten: Option<&Index>,
    needing: &[usize],
    settings: &JobSettings<'_>,
    progress: &dyn Progress,
) -> Result<(usize, Vec<String>), TransportError> {
    // By digest, so a tag moved since the HEAD cannot mix two images.
    let (what, _) = src.fetch(source_digest.as_ref(), &PlatformChoice::All)?;
    let what = cut(what, rewritten);
    let sinks = target_sinks(endpoints, plan, needing);
    let branches = branches(endpoints, plan, wanted, needing, &sinks)?;
    let names = branches[0].names.clone();
    let fan = FanOut::new(branches, settings.flights, settings.gate);
    let options = CopyOptions {
        parallelism: settings.blobs.max(1),
        cancel: settings.cancel.clone(),
        ..CopyOptions::default()
    };
    let report = copy::copy(src, &fan, &what, &names, &options, progress)?;
    fan.commit()?;
    let blobs = report.copied.len() + report.skipped.len();
    let mut referrers = Vec::new();
    if settings.referrers && rewritten.is_none() {
        referrers = copy_referrers(src, source_digest, &fan, &sinks)?;
    }
    Ok((blobs, referrers))
}

/// The target repositories lacking the image, as ledger sinks.
fn target_sinks(endpoints: &Endpoints, plan: &RepoPlan, needing: &[usize]) -> Vec<LedgerSink> {
    needing
        .iter()
        .map(|&i| {
            let t = &endpoints.targets[i];
            // Within one registry the source repository itself is a mount.
            let also = if t.spec.registry == endpoints.from {
                vec![plan.source.clone()]
            } else {
                Vec::new()
            };
            LedgerSink::new(
                Repository::new(t.client.clone(), &plan.targets[i]),
                t.ledger.clone(),
                also,
            )
        })
        .collect()
}

/// The fan-out's branches: each sink with the names the image gets there.
fn branches<'s>(
    endpoints: &Endpoints,
    plan: &RepoPlan,
    wanted: &Wanted,
    needing: &[usize],
    sinks: &'s [LedgerSink],
) -> Result<Vec<Branch<'s>>, TransportError> {
    let mut out = Vec::new();
    for (k, &i) in needing.iter().enumerate() {
        let t = &endpoints.targets[i];
        let names = match wanted {
            Wanted::Tag(tag) => vec![
                Reference::parse(&format!("{}/{}:{tag}", t.spec.registry, plan.targets[i]))
                    .map_err(|e| TransportError::io("target name", std::io::Error::other(e)))?,
            ],
            Wanted::Digest(_) => Vec::new(),
        };
        out.push(Branch {
            sink: &sinks[k],
            names,
        });
    }
    Ok(out)
}

/// The manifests that refer to `subject` in the source: from the referrers
/// API, else from the `sha256-<hex>` fallback tag (whose index is returned
/// too, so a target without one gets it byte for byte).
fn referrers_of(
    src: &Repository,
    subject: &Digest,
) -> Result<(Vec<Descriptor>, Option<RawManifest>), TransportError> {
    let (index, fallback) = match src.client().referrers(src.name(), subject)? {
        Some(i) => (Some(i), false),
        None => match src
            .client()
            .get_manifest(src.name(), &referrers_tag(subject))
        {
            Ok(m) => (Some(m), true),
            Err(e) if e.is_not_found() => (None, false),
            Err(e) => return Err(e.into()),
        },
    };
    let Some(index) = index else {
        return Ok((Vec::new(), None));
    };
    let parsed = Index::new(index.clone()).map_err(|e| top_error(&src.place(), e))?;
    Ok((parsed.children().to_vec(), fallback.then_some(index)))
}

/// Copies every referrer of `subject` (its blobs, then its manifest by
/// digest), then, for targets without the referrers API, the fallback
/// index under `sha256-<hex>` with what the target had there before.
fn copy_referrers(
    src: &Repository,
    subject: &Digest,
    fan: &FanOut<'_>,
    sinks: &[LedgerSink],
) -> Result<Vec<String>, TransportError> {
    let (found, source_index) = referrers_of(src, subject)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    for d in &found {
        let m = src.client().get_manifest(src.name(), d.digest().as_ref())?;
        if m.kind().ok() == Some(ManifestKind::Index) {
            // An index of referrers: its children are not fetched here.
            continue;
        }
        let parsed: oci_spec::image::ImageManifest =
            serde_json::from_slice(&m.bytes).map_err(|e| TransportError::Corrupt {
                place: src.place(),
                what: "manifest",
                digest: m.digest.clone(),
                reason: e.to_string(),
            })?;
        let blobs = std::iter::once(parsed.config().clone()).chain(parsed.layers().iter().cloned());
        for b in blobs {
            if fan.has_blob(&b)? == Presence::Absent {
                let mut reader =
                    VerifyingReader::new(src.open_blob(&b)?, b.digest().clone(), b.size());
                fan.put_blob(
                    &b,
                    &BlobKind::Config,
                    &mut reader as &mut (dyn Read + Send),
                    &|_| {},
                )?;
            }
        }
        fan.put_manifest(&m, &[])?;
    }
    for sink in sinks {
        merge_fallback_index(sink, subject, &found, source_index.as_ref())?;
    }
    Ok(found.iter().map(|d| d.digest().to_string()).collect())
}

/// Where a target has no referrers API, keeps the fallback index of
/// `subject` listing `found` as well as what it listed before.
fn merge_fallback_index(
    sink: &LedgerSink,
    subject: &Digest,
    found: &[Descriptor],
    source_index: Option<&RawManifest>,
) -> Result<(), TransportError> {
    let client = sink.client();
    let repo = sink.repository();
    if client.referrers(repo, subject)?.is_some() {
        // The registry keeps its own referrers list.
        return Ok(());
    }
    let tag = referrers_tag(subject);
    let mut manifests: Vec<Value> = Vec::new();
    match client.get_manifest(repo, &tag) {
        Ok(old) => {
            let doc: Value = serde_json::from_slice(&old.bytes).unwrap_or_default();
            if let Some(list) = doc.get("manifests").and_then(Value::as_array) {
                manifests.extend(list.iter().cloned());
            }
        }
        Err(e) if e.is_not_found() => {
            // Nothing there yet: the source's own index, byte for byte.
            if let Some(index) = source_index {
                client.put_manifest(repo, &tag, index)?;
                return Ok(());
            }
        }
        Err(e) => return Err(e.into()),
    }
    let before = manifests.len();
    let mut have: HashMap<String, ()> = manifests
        .iter()
        .filter_map(|m| {
            m.get("digest")
                .and_then(Value::as_str)
                .map(|d| (d.to_string(), ()))
        })
        .collect();
    for d in found {
        if have.insert(d.digest().to_string(), ()).is_none() {
            manifests.push(serde_json::to_value(d).unwrap_or_default());
        }
    }
    if manifests.len() == before && before > 0 {
        return Ok(());
    }
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::image::OCI_INDEX,
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let index = RawManifest::new(bytes, crate::image::OCI_INDEX.to_string());
    client.put_manifest(repo, &tag, &index)?;
    Ok(())
}

/// What pruning did (or, in a dry run, would do) in one target repository.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    /// The target repository (`REGISTRY/REPO`).
    pub target: String,
    /// Tags deleted (or to delete).
    pub deleted: Vec<String>,
    /// Tags not deleted, with why.
    pub kept: Vec<String>,
}

/// Deletes the tags of a target repository that the plan does not select.
/// The distribution API deletes manifests by digest, with every tag naming
/// them: a stale tag whose manifest a selected tag also names is kept and
/// said so.
pub fn prune(
    endpoints: &Endpoints,
    plan: &RepoPlan,
    target: usize,
    dry_run: bool,
) -> Result<Pruned, TransportError> {
    let t = &endpoints.targets[target];
    let repo_name = &plan.targets[target];
    let repo = Repository::new(t.client.clone(), repo_name);
    let mut pruned = Pruned {
        target: format!("{}/{repo_name}", t.spec.registry),
        ..Pruned::default()
    };
    let tags = match repo.tags() {
        Ok(mut tags) => {
            tags.sort();
            tags
        }
        Err(e) if e.is_not_found() => return Ok(pruned),
        Err(e) => return Err(e.into()),
    };
    let selected: HashSet<&str> = plan.selected.iter().map(String::as_str).collect();
    let stale: Vec<&String> = tags
        .iter()
        .filter(|t| !selected.contains(t.as_str()) && !super::plan::is_referrers_tag(t))
        .collect();
    if stale.is_empty() {
        return Ok(pruned);
    }
    let mut kept_digests: HashMap<Digest, String> = HashMap::new();
    for tag in tags.iter().filter(|t| selected.contains(t.as_str())) {
        if let Some(h) = t.client.head_manifest(repo_name, tag)? {
            kept_digests.insert(h.digest, tag.clone());
        }
    }
    for tag in stale {
        let Some(h) = t.client.head_manifest(repo_name, tag)? else {
            continue;
        };
        if let Some(other) = kept_digests.get(&h.digest) {
            pruned.kept.push(format!(
                "{tag} (names the same manifest as the selected tag {other}; the registry deletes by digest)"
            ));
            continue;
        }
        if !dry_run {
            t.client.delete_manifest(repo_name, &h.digest)?;
        }
        pruned.deleted.push(tag.clone());
    }
    Ok(pruned)
}
