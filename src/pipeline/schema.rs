//! The JSON Schema of a pipeline file (`strata run --schema`), for editors:
//! the top-level keys, the control keys of a step, and each action's keys
//! from the request struct its command builds.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::command::{
    history::HistoryRequest, images::ImagesRequest, inspect::InspectRequest, load::LoadRequest,
    login::LoginRequest, login::LogoutRequest, mount::MountRequest, mount::UmountRequest,
    pull::PullRequest, push::PushRequest, rmi::RmiRequest, save::SaveRequest,
    search::SearchRequest, tag::TagRequest,
};

use super::action::ACTIONS;
use super::spec::RegistrySettings;

fn add<T: JsonSchema>(g: &mut SchemaGenerator, actions: &mut Map<String, Value>, name: &str) {
    let schema = g.subschema_for::<T>();
    actions.insert(name.to_string(), schema.to_value());
}

/// The schema, as JSON.
pub fn schema() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let mut actions = Map::new();
    add::<SearchRequest>(&mut g, &mut actions, "search");
    add::<PullRequest>(&mut g, &mut actions, "pull");
    add::<PushRequest>(&mut g, &mut actions, "push");
    add::<TagRequest>(&mut g, &mut actions, "tag");
    add::<SaveRequest>(&mut g, &mut actions, "save");
    add::<LoadRequest>(&mut g, &mut actions, "load");
    add::<ImagesRequest>(&mut g, &mut actions, "images");
    add::<HistoryRequest>(&mut g, &mut actions, "history");
    add::<InspectRequest>(&mut g, &mut actions, "inspect");
    add::<RmiRequest>(&mut g, &mut actions, "rmi");
    add::<MountRequest>(&mut g, &mut actions, "mount");
    add::<UmountRequest>(&mut g, &mut actions, "umount");
    add::<LoginRequest>(&mut g, &mut actions, "login");
    add::<LogoutRequest>(&mut g, &mut actions, "logout");
    add::<crate::command::copy::CopyRequest>(&mut g, &mut actions, "copy");
    add::<crate::mirror::MirrorRequest>(&mut g, &mut actions, "mirror");
    add::<crate::command::prune::ImagePruneRequest>(&mut g, &mut actions, "image_prune");
    add::<crate::command::system::DfRequest>(&mut g, &mut actions, "system_df");
    add::<crate::command::system::SystemPruneRequest>(&mut g, &mut actions, "system_prune");
    add::<crate::command::system::CheckRequest>(&mut g, &mut actions, "system_check");
    debug_assert_eq!(actions.len(), ACTIONS.len());
    let registry = g.subschema_for::<RegistrySettings>().to_value();
    let plugin = g
        .subschema_for::<crate::plugin::catalog::PluginSpec>()
        .to_value();
    let mut defs = g.take_definitions(true);

    let expression = json!({
        "type": "string",
        "pattern": "\\$\\{\\{.*\\}\\}",
        "description": "A ${{ … }} expression"
    });
    let mut step_props = Map::new();
    step_props.insert(
        "id".into(),
        json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]*$",
               "description": "Names the step for steps.ID.outputs"}),
    );
    step_props.insert(
        "if".into(),
        json!({"description": "Run the step only when this is true",
               "type": ["string", "boolean"]}),
    );
    step_props.insert(
        "for_each".into(),
        json!({"description": "Run the step once per item (`item` in expressions)",
               "anyOf": [{"type": "array"}, expression]}),
    );
    step_props.insert(
        "parallel".into(),
        json!({"type": "integer", "minimum": 1,
               "description": "Items of for_each run at once"}),
    );
    step_props.insert(
        "continue_on_error".into(),
        json!({"type": "boolean", "description": "A failure does not stop the pipeline"}),
    );
    step_props.insert(
        "retry".into(),
        json!({"description": "Attempts in all, or attempts and the first wait",
               "anyOf": [
                   {"type": "integer", "minimum": 1},
                   {"type": "object", "additionalProperties": false,
                    "required": ["attempts"],
                    "properties": {"attempts": {"type": "integer", "minimum": 1},
                                   "backoff": {"type": "string"}}}]}),
    );
    step_props.insert(
        "timeout".into(),
        json!({"type": "string", "description": "Per attempt, e.g. 90s, 10m, 2h"}),
    );
    let mut one_of = Vec::new();
    for (name, schema) in &actions {
        step_props.insert(name.clone(), schema.clone());
        one_of.push(json!({"required": [name]}));
    }
    defs.insert(
        "step".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": step_props,
            "oneOf": one_of,
        }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "strata pipeline",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "steps"],
        "properties": {
            "version": {"const": 1},
            "name": {"type": "string"},
            "vars": {"type": "object", "description": "Values for ${{ vars.NAME }}"},
            "registries": {"type": "object", "additionalProperties": registry},
            "plugins": {"type": "object", "additionalProperties": plugin,
                        "description": "WebAssembly plugins by name, for steps' transform: and tag_filter:"},
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
        },
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_in_the_schema() {
        let s = schema();
        let props = &s["$defs"]["step"]["properties"];
        for (action, _) in ACTIONS {
            assert!(props.get(*action).is_some(), "{action} missing");
        }
        assert_eq!(s["properties"]["version"]["const"], 1);
        let pull = serde_json::to_string(&s).unwrap();
        assert!(pull.contains("max_concurrent_downloads"), "{pull}");
    }
}
