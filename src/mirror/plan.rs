//! Planning a mirror: which source repositories (a list, the catalog, this
//! worker's shard), their tags, and what each selection stage kept.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::digest::Digest;
use crate::image::{Index, ManifestKind, Platform, RawManifest};
use crate::transport::registry::{Client, RegistryError, Repository, catalog};
use crate::transport::{Source, TransportError};

use super::ledger::Ledger;
use super::request::{MirrorRequest, Repositories, Target};
use super::select::{Dropped, SelectError, Selector};
use super::shard::Shard;

/// Errors planning a mirror.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A request value is not valid.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// A repository named in the list belongs to another registry.
    #[error("repository {name:?} is not on the source registry {from}")]
    OtherRegistry {
        /// The name given.
        name: String,
        /// The source registry.
        from: String,
    },
}

/// A target registry of the run, with its ledger.
pub struct TargetRegistry {
    /// How it was asked for.
    pub spec: Target,
    /// Its client.
    pub client: Arc<Client>,
    /// What the run knows it holds.
    pub ledger: Arc<Ledger>,
}

/// The registries a mirror talks to.
pub struct Endpoints {
    /// The source registry's name.
    pub from: String,
    /// Its client.
    pub source: Arc<Client>,
    /// The targets, in the request's order.
    pub targets: Vec<TargetRegistry>,
}

/// One source repository's plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepoPlan {
    /// Its name on the source.
    pub source: String,
    /// Its name in each target (the request's order).
    pub targets: Vec<String>,
    /// The tags the source lists.
    pub found: usize,
    /// What each selection stage dropped.
    pub dropped: Vec<Dropped>,
    /// The tags selected.
    pub selected: Vec<String>,
    /// Manifests asked for by digest.
    pub digests: Vec<String>,
    /// Why the repository could not be planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Top manifests already fetched (for creation times), by tag.
    #[serde(skip)]
    pub manifests: HashMap<String, RawManifest>,
}

/// The source repositories of a request, cut to `shard`.
pub fn repositories(
    req: &MirrorRequest,
    source: &Client,
    shard: Option<Shard>,
) -> Result<Vec<String>, PlanError> {
    let names: Vec<String> = match &req.repositories {
        Repositories::Catalog { catalog: pattern } => {
            let re = super::select::regex(pattern)?;
            catalog(source)?
                .into_iter()
                .filter(|r| re.is_match(r))
                .collect()
        }
        Repositories::List(items) => {
            let mut out = Vec::new();
            for item in items {
                out.push(source_name(item.name(), &req.from)?);
            }
            out
        }
    };
    let mut seen = std::collections::HashSet::new();
    Ok(names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .filter(|n| shard.is_none_or(|s| s.owns(n)))
        .collect())
}

/// A listed name as a path on the source: `team/app`, or a search result's
/// `HOST/team/app` when HOST is the source.
fn source_name(name: &str, from: &str) -> Result<String, PlanError> {
    if let Some(rest) = name.strip_prefix(&format!("{from}/")) {
        return Ok(rest.to_string());
    }
    let first = name.split('/').next().unwrap_or_default();
    let looks_like_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if looks_like_host {
        return Err(PlanError::OtherRegistry {
            name: name.to_string(),
            from: from.to_string(),
        });
    }
    Ok(name.to_string())
}

/// A tag-filter plugin and where its log lines go.
pub struct TagPlugin<'a> {
    /// The plugin.
    pub plugin: &'a crate::plugin::Plugin,
    /// Whether its failure leaves the selection as it was.
    pub skip_on_error: bool,
    /// Log lines (and skips), collected for the run to show.
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Facts about a source repository's tags, fetched for a tag filter on
/// demand and kept: each is a registry request or two, counted against a
/// budget so that a plugin asking about every tag of a huge repository
/// over and over cannot turn a plan into a flood of requests.
pub struct RegistryFacts {
    repo: Repository,
    manifests: std::sync::Mutex<HashMap<String, RawManifest>>,
    configs: std::sync::Mutex<HashMap<String, serde_json::Value>>,
    requests: std::sync::atomic::AtomicUsize,
    budget: usize,
}

/// Registry requests a tag filter may cause per repository, at most.
pub const FACT_REQUESTS: usize = 2000;

impl RegistryFacts {
    /// Facts about `repo`, starting from manifests already fetched.
    pub fn new(repo: Repository, known: HashMap<String, RawManifest>) -> RegistryFacts {
        RegistryFacts {
            repo,
            manifests: std::sync::Mutex::new(known),
            configs: std::sync::Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicUsize::new(0),
            budget: FACT_REQUESTS,
        }
    }

    /// The registry requests made so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts one request, refused past the budget.
    fn meter(&self) -> Result<(), String> {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= self.budget {
            return Err(format!(
                "the budget of {} registry requests for tag facts in {} is spent",
                self.budget,
                self.repo.place()
            ));
        }
        Ok(())
    }

    fn manifest(&self, tag: &str) -> Result<RawManifest, String> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tag)
        {
            return Ok(m.clone());
        }
        self.meter()?;
        let m = self
            .repo
            .client()
            .get_manifest(self.repo.name(), tag)
            .map_err(|e| e.to_string())?;
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tag.to_string(), m.clone());
        Ok(m)
    }

    /// The config of the image a tag names (for an index, the host's
    /// platform's, else the first).
    fn config(&self, tag: &str) -> Result<serde_json::Value, String> {
        if let Some(c) = self
            .configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tag)
        {
            return Ok(c.clone());
        }
        let top = self.manifest(tag)?;
        let image = match top.kind() {
            Ok(ManifestKind::Index) => {
                let index = Index::new(top.clone()).map_err(|e| e.to_string())?;
                let child = index
                    .select(&Platform::host())
                    .or_else(|| index.children().first())
                    .cloned()
                    .ok_or_else(|| format!("{tag}: an index with no images"))?;
                self.meter()?;
                self.repo
                    .client()
                    .get_manifest(self.repo.name(), child.digest().as_ref())
                    .map_err(|e| e.to_string())?
            }
            _ => top,
        };
        let parsed: oci_spec::image::ImageManifest =
            serde_json::from_slice(&image.bytes).map_err(|e| e.to_string())?;
        self.meter()?;
        let bytes = self
            .repo
            .read_small_blob(parsed.config())
            .map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        self.configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tag.to_string(), value.clone());
        Ok(value)
    }
}

impl crate::plugin::state::TagFacts for RegistryFacts {
    fn digest(&self, tag: &str) -> Result<String, String> {
        Ok(self.manifest(tag)?.digest.to_string())
    }
    fn platforms(&self, tag: &str) -> Result<Vec<String>, String> {
        let top = self.manifest(tag)?;
        if top.kind().ok() == Some(ManifestKind::Index) {
            let index = Index::new(top).map_err(|e| e.to_string())?;
            return Ok(index.platforms().iter().map(ToString::to_string).collect());
        }
        let c = self.config(tag)?;
        let field = |k: &str| {
            c.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let mut p = format!("{}/{}", field("os"), field("architecture"));
        if let Some(v) = c.get("variant").and_then(|v| v.as_str()) {
            p.push('/');
            p.push_str(v);
        }
        Ok(vec![p])
    }
    fn created(&self, tag: &str) -> Result<Option<String>, String> {
        Ok(self
            .config(tag)?
            .get("created")
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }
    fn labels(&self, tag: &str) -> Result<Vec<(String, String)>, String> {
        let c = self.config(tag)?;
        Ok(c.pointer("/config/Labels")
            .and_then(|l| l.as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Plans one repository: its tags, selected by `selector`, then by the
/// tag-filter plugin, if any.
pub fn plan_repository(
    req: &MirrorRequest,
    selector: &Selector,
    endpoints: &Endpoints,
    source: &str,
    now: DateTime<Utc>,
    tag_plugin: Option<&TagPlugin<'_>>,
) -> RepoPlan {
    let mut plan = RepoPlan {
        source: source.to_string(),
        digests: req.tags.digests.clone(),
        ..RepoPlan::default()
    };
    for t in &endpoints.targets {
        match t.spec.rename(source) {
            Ok(name) => plan.targets.push(name),
            Err(e) => {
                plan.error = Some(e.to_string());
                return plan;
            }
        }
    }
    let repo = Repository::new(endpoints.source.clone(), source);
    let tags = match repo.tags() {
        Ok(t) => t,
        Err(e) => {
            plan.error = Some(format!("cannot list the tags of {}: {e}", repo.place()));
            return plan;
        }
    };
    // The OCI 1.1 fallback tags of referrers travel with their subjects.
    // Sorted: registries list in no promised order, and plans and reports
    // read best sorted.
    let mut tags: Vec<String> = tags.into_iter().filter(|t| !is_referrers_tag(t)).collect();
    tags.sort();
    plan.found = tags.len();
    let mut fetched: HashMap<String, RawManifest> = HashMap::new();
    let mut created = |tag: &str| -> Result<Option<DateTime<Utc>>, TransportError> {
        let top = endpoints.source.get_manifest(source, tag)?;
        let when = created_of(&repo, &top)?;
        fetched.insert(tag.to_string(), top);
        Ok(when)
    };
    match selector.select(&tags, now, &mut created) {
        Ok(selection) => {
            plan.selected = selection.kept;
            plan.dropped = selection.dropped;
        }
        Err(e) => plan.error = Some(format!("cannot read {}: {e}", repo.place())),
    }
    if let (Some(tp), None) = (tag_plugin, &plan.error)
        && !plan.selected.is_empty()
    {
        let facts = Arc::new(RegistryFacts::new(repo.clone(), fetched.clone()));
        let lines = tp.lines.clone();
        let log: crate::plugin::state::LogSink = {
            let name = tp.plugin.name().to_string();
            Arc::new(move |line: &str| {
                lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{name}: {line}"));
            })
        };
        let asked = facts.clone();
        let result = crate::plugin::tags::filter(tp.plugin, source, &plan.selected, facts, log);
        let requests = asked.requests();
        if requests > 0 {
            tp.lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!(
                    "{}: {source}: {requests} registry request{} for tag facts",
                    tp.plugin.name(),
                    if requests == 1 { "" } else { "s" }
                ));
        }
        match result {
            Ok(f) => {
                plan.selected = f.kept;
                plan.dropped.push(Dropped {
                    filter: "tag_filter",
                    tags: f.dropped.iter().map(|(t, _)| t.clone()).collect(),
                    reasons: f.dropped.into_iter().map(|(_, r)| r).collect(),
                });
            }
            Err(e) if tp.skip_on_error => {
                tp.lines.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                    "{}: {e}; the tags are kept as the filters above left them (on_error: skip)",
                    tp.plugin.name()
                ));
            }
            Err(e) => plan.error = Some(e.to_string()),
        }
    }
    plan.manifests = fetched;
    plan
}

/// Whether a tag is a referrers index kept under the fallback scheme.
pub fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// When the image a top manifest names was created: its config's
/// `created`, for an index the host platform's image (or the first one).
pub fn created_of(
    repo: &Repository,
    top: &RawManifest,
) -> Result<Option<DateTime<Utc>>, TransportError> {
    let image_manifest = match top.kind() {
        Ok(ManifestKind::Image) => top.clone(),
        Ok(ManifestKind::Index) => {
            let index = Index::new(top.clone()).map_err(|e| TransportError::Image {
                place: repo.place(),
                source: Box::new(e),
            })?;
            let child = index
                .select(&Platform::host())
                .or_else(|| index.children().first())
                .cloned();
            match child {
                Some(c) => repo
                    .client()
                    .get_manifest(repo.name(), c.digest().as_ref())?,
                None => return Ok(None),
            }
        }
        Err(_) => return Ok(None),
    };
    let parsed: oci_spec::image::ImageManifest = match serde_json::from_slice(&image_manifest.bytes)
    {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let config = repo.read_small_blob(parsed.config())?;
    let value: serde_json::Value = serde_json::from_slice(&config).unwrap_or_default();
    Ok(value
        .get("created")
        .and_then(|c| c.as_str())
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|c| c.with_timezone(&Utc)))
}

/// Parses the digests a request names.
pub fn digests(plan: &RepoPlan) -> Vec<Digest> {
    plan.digests
        .iter()
        .filter_map(|d| crate::digest::parse(d).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_on_the_source() {
        assert_eq!(source_name("team/app", "r:5000").unwrap(), "team/app");
        assert_eq!(
            source_name("r:5000/team/app", "r:5000").unwrap(),
            "team/app"
        );
        assert!(source_name("other.io/team/app", "r:5000").is_err());
        assert_eq!(source_name("nginx", "r:5000").unwrap(), "nginx");
    }

    #[test]
    fn fallback_referrers_tags() {
        assert!(is_referrers_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("v1.0"));
    }
}
