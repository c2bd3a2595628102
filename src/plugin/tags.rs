//! Calling a `tag-filter` plugin: a repository's candidate tags in, a
//! verdict per tag out; facts it asks for come from the host's
//! [`TagFacts`], which fetches (and caches) them from the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::PluginError;
use super::bindings::tags as world;
use super::load::Plugin;
use super::state::{HostState, LogSink, TagFacts};

impl world::strata::plugin::log::Host for HostState {
    fn info(&mut self, message: String) {
        (self.log)(&message);
    }
}

impl world::strata::plugin::types::Host for HostState {}

impl world::strata::plugin::registry::Host for HostState {
    fn digest(&mut self, tag: String) -> Result<String, String> {
        self.facts()?.digest(&tag)
    }
    fn platforms(&mut self, tag: String) -> Result<Vec<String>, String> {
        self.facts()?.platforms(&tag)
    }
    fn created(&mut self, tag: String) -> Result<Option<String>, String> {
        self.facts()?.created(&tag)
    }
    fn labels(&mut self, tag: String) -> Result<Vec<(String, String)>, String> {
        self.facts()?.labels(&tag)
    }
}

impl HostState {
    fn facts(&self) -> Result<Arc<dyn TagFacts>, String> {
        self.facts
            .clone()
            .ok_or_else(|| "no registry facts for this call".to_string())
    }
}

/// A tag filter's answer: the tags kept (in the order given) and, for each
/// dropped tag, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Kept tags.
    pub kept: Vec<String>,
    /// Dropped tags with their reasons.
    pub dropped: Vec<(String, String)>,
}

/// Runs `plugin` on `tags` of `repository`. It must give exactly one
/// verdict per tag given, and name no other tag.
pub fn filter(
    plugin: &Plugin,
    repository: &str,
    tags: &[String],
    facts: Arc<dyn TagFacts>,
    log: LogSink,
) -> Result<Filtered, PluginError> {
    let mut store = plugin.store(log, Some(facts))?;
    let pre = world::TagFilterPre::new(plugin.pre().clone())
        .map_err(|e| plugin.trapped("instantiate", None, &e))?;
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| plugin.trapped("instantiate", None, &e))?;
    let verdicts = instance
        .strata_plugin_tag_filterer()
        .call_filter(&mut store, repository, tags, plugin.settings())
        .map_err(|e| plugin.trapped("filter", None, &e))?
        .map_err(|m| plugin.failed("filter", None, m))?;
    let mut by_tag: BTreeMap<String, (bool, Option<String>)> = BTreeMap::new();
    for v in verdicts {
        if !tags.contains(&v.tag) {
            return Err(plugin.failed(
                "filter",
                None,
                format!("answered for tag {:?}, which it was not given", v.tag),
            ));
        }
        if by_tag.insert(v.tag.clone(), (v.keep, v.reason)).is_some() {
            return Err(plugin.failed(
                "filter",
                None,
                format!("answered twice for tag {:?}", v.tag),
            ));
        }
    }
    let mut out = Filtered::default();
    for t in tags {
        match by_tag.remove(t) {
            Some((true, _)) => out.kept.push(t.clone()),
            Some((false, reason)) => out.dropped.push((
                t.clone(),
                reason.unwrap_or_else(|| format!("dropped by {}", plugin.name())),
            )),
            None => {
                return Err(plugin.failed(
                    "filter",
                    None,
                    format!("gave no verdict for tag {t:?}"),
                ));
            }
        }
    }
    Ok(out)
}
