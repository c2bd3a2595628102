//! `strata inspect NAME...`: docker's image inspect JSON.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::format::{self, Template};
use crate::transport::store::{Store, StoredImage};

use super::images::parse_time;
use super::{CommandError, Context, Ui};

/// `inspect [OPTIONS] NAME|ID [NAME|ID...]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// The images (`image: X` for one).
    #[serde(alias = "image", deserialize_with = "super::one_or_many")]
    pub images: Vec<String>,
    /// Format output using a custom template: 'json', or a Go template.
    #[serde(default)]
    pub format: Option<String>,
    /// Return JSON for the specified type (only "image" exists here).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// docker's noun in "No such object" (`inspect`) or "No such image"
    /// (`image inspect`).
    #[serde(skip)]
    #[schemars(skip)]
    pub image_noun: bool,
}

/// A container config as docker's `container.Config` marshals it: field
/// order, `null` for absent lists and maps, and docker's `omitempty` rules.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ContainerConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    #[serde(skip_serializing_if = "is_empty_map")]
    exposed_ports: Option<BTreeMap<String, Value>>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "is_false")]
    args_escaped: bool,
    image: String,
    volumes: Option<BTreeMap<String, Value>>,
    working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_false")]
    network_disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    mac_address: String,
    on_build: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "is_empty_list", deserialize_with = "str_slice")]
    shell: Option<Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_empty_map(m: &Option<BTreeMap<String, Value>>) -> bool {
    m.as_ref().is_none_or(|m| m.is_empty())
}

fn is_empty_list(l: &Option<Vec<String>>) -> bool {
    l.as_ref().is_none_or(|l| l.is_empty())
}

/// docker's `StrSlice`: a list of strings, or one string.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::One(s)) => Some(vec![s]),
        Some(Either::Many(v)) => Some(v),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriver {
    data: Option<BTreeMap<String, String>>,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

/// docker's `types.ImageInspect`, field for field.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageInspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    container: String,
    container_config: ContainerConfig,
    docker_version: String,
    author: String,
    config: Option<ContainerConfig>,
    architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
    os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    os_version: String,
    size: u64,
    virtual_size: u64,
    graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn container_config(v: Option<&Value>) -> Option<ContainerConfig> {
    v.filter(|v| v.is_object())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn inspect(store: &Store, found: &StoredImage) -> Result<ImageInspect, CommandError> {
    let image = &found.image;
    let raw = image.config_json();
    let mut size = 0;
    for layer in image.layers() {
        size += store.layer_info_for(layer)?.size;
    }
    let created = raw
        .get("created")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .map(|t| format::rfc3339_nano(&t))
        .unwrap_or_else(|| ZERO_TIME.to_string());
    let last_tag_time = store
        .last_tag_time(image.id())
        .and_then(|t| parse_time(&t))
        .map(|t| format::rfc3339_nano(&t))
        .unwrap_or_else(|| ZERO_TIME.to_string());
    Ok(ImageInspect {
        id: image.id().to_string(),
        repo_tags: found.tags().map(|n| n.familiar_string()).collect(),
        repo_digests: found
            .names
            .iter()
            .filter(|n| n.digest().is_some())
            .map(|n| n.familiar_string())
            .collect(),
        parent: String::new(),
        comment: text(raw, "comment"),
        created,
        container: text(raw, "container"),
        container_config: container_config(raw.get("container_config")).unwrap_or_default(),
        docker_version: text(raw, "docker_version"),
        author: text(raw, "author"),
        config: container_config(raw.get("config")),
        architecture: text(raw, "architecture"),
        variant: text(raw, "variant"),
        os: text(raw, "os"),
        os_version: text(raw, "os.version"),
        size,
        virtual_size: size,
        graph_driver: GraphDriver {
            data: None,
            name: "oci-layout".into(),
        },
        root_fs: RootFs {
            kind: raw
                .pointer("/rootfs/type")
                .and_then(Value::as_str)
                .unwrap_or("layers")
                .to_string(),
            layers: image
                .layers()
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect(),
        },
        metadata: Metadata { last_tag_time },
    })
}

/// Runs `inspect`: every image found is printed; each one not found is
/// reported on standard error and makes the exit status 1.
pub fn run(ctx: &Context, args: &InspectRequest, ui: &dyn Ui) -> Result<Value, CommandError> {
    let store = ctx.store()?;
    if let Some(kind) = &args.kind
        && kind != "image"
    {
        return Err(CommandError::Invalid(format!(
            "\"{kind}\" is not a valid value for --type: strata inspects images only"
        )));
    }
    let template = match args.format.as_deref() {
        None | Some("") | Some("json") => None,
        Some(t) => Some(Template::parse(t)?),
    };
    let images = store.list()?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &args.images {
        match crate::transport::store::lookup_in(&images, name) {
            Ok(img) => found.push(inspect(store, img)?),
            Err(_) => missing.push(name.clone()),
        }
    }
    let values: Vec<Value> = found
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| CommandError::io("rendering inspect JSON", e.into()))?;
    let mut out = ui.stdout();
    match &template {
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            found
                .serialize(&mut ser)
                .map_err(|e| CommandError::io("rendering inspect JSON", e.into()))?;
            out.write_all(&buf)?;
            writeln!(out)?;
        }
        Some(t) => {
            for value in &values {
                writeln!(out, "{}", t.render_inspect(value)?)?;
            }
        }
    }
    out.flush()?;
    if missing.is_empty() {
        return Ok(serde_json::json!({
            "image": values.first().cloned().unwrap_or(Value::Null),
            "images": values,
        }));
    }
    let noun = if args.image_noun { "image" } else { "object" };
    Err(CommandError::Partial(
        missing
            .iter()
            .map(|name| format!("No such {noun}: {name}"))
            .collect(),
    ))
}
