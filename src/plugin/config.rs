//! Calling a `config-transform` plugin: the image config JSON in, a new
//! one out, checked by the host before anything uses it.

use serde_json::Value;

use super::PluginError;
use super::bindings::config as world;
use super::load::Plugin;
use super::state::{HostState, LogSink};

impl world::strata::plugin::log::Host for HostState {
    fn info(&mut self, message: String) {
        (self.log)(&message);
    }
}

impl world::strata::plugin::types::Host for HostState {}

/// Runs `plugin` on a config. The answer must be a JSON object that keeps
/// what the image's layers depend on (`rootfs`) and says what it runs on
/// (`os`, `architecture`); anything else (labels, env, user, entrypoint…)
/// the plugin may change.
pub fn transform(plugin: &Plugin, config: &[u8], log: LogSink) -> Result<Vec<u8>, PluginError> {
    let text = std::str::from_utf8(config)
        .map_err(|_| plugin.failed("transform", None, "the image config is not UTF-8"))?;
    let mut store = plugin.store(log, None)?;
    let pre = world::ConfigTransformPre::new(plugin.pre().clone())
        .map_err(|e| plugin.trapped("instantiate", None, &e))?;
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| plugin.trapped("instantiate", None, &e))?;
    let answer = instance
        .strata_plugin_config_transformer()
        .call_transform(&mut store, text, plugin.settings())
        .map_err(|e| plugin.trapped("transform", None, &e))?
        .map_err(|m| plugin.failed("transform", None, m))?;
    check(plugin, config, answer.as_bytes())?;
    Ok(answer.into_bytes())
}

/// What the host asks of a transformed config.
fn check(plugin: &Plugin, before: &[u8], after: &[u8]) -> Result<(), PluginError> {
    let bad = |m: String| plugin.failed("transform", None, m);
    let new: Value = serde_json::from_slice(after)
        .map_err(|e| bad(format!("answered something that is not JSON: {e}")))?;
    let old: Value = serde_json::from_slice(before).unwrap_or(Value::Null);
    if !new.is_object() {
        return Err(bad("answered JSON that is not an object".into()));
    }
    if new.get("rootfs") != old.get("rootfs") {
        return Err(bad(
            "changed `rootfs`: a config transform may not change the image's layers".into(),
        ));
    }
    for key in ["os", "architecture"] {
        if !new.get(key).is_some_and(Value::is_string) {
            return Err(bad(format!("left out `{key}`")));
        }
    }
    // It must still be an image config strata can read.
    crate::image::parse_config(after)
        .map_err(|e| bad(format!("answered a config that is not valid: {e}")))?;
    Ok(())
}
