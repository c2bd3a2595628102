//! What `docker inspect --format` refuses, and with which words.
//!
//! docker runs an inspect template twice at most: first against the typed
//! Go struct (`types.ImageInspect`), and only if that fails, against the
//! raw JSON decoded into maps with `missingkey=error`, whose error is the
//! one printed. strata renders against the JSON alone, where a missing key
//! prints `<no value>`. So field chains are checked before rendering: one
//! that the typed run would fail on (a field the struct lacks, a field of a
//! string, a nil pointer, a key of a map whose keys are not strings) means
//! docker takes the raw run, and then the first chain in source order that
//! the raw run fails on (a key missing from any object, a field of null or
//! of a value that is not an object) is the error, in Go's words and at
//! Go's position. A chain through a Go map with string keys (`Labels`,
//! `Volumes`, `GraphDriver.Data`) asks for any key without failing the
//! typed run.
//!
//! The check is static: it follows every branch of `if` and every chain in
//! a `with` whose dot it knows, as Go would only where the branch runs.
//!
//! When the typed run succeeds, docker prints Go's typed values, not the
//! JSON's: a null or omitted list is `[]`, a null or omitted map `map[]`,
//! an omitted string empty and an omitted bool `false`, a time in Go's
//! `Time.String()`. [`typed_view`] makes those leaves so, unless the
//! template calls `json` (which must see the JSON's nulls) or works on `.`
//! as a whole.

use gotmpl::Value;
use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode};

use super::row::go_position;

/// A type in `types.ImageInspect` as far as field lookups go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Image,
    /// `*container.Config`: `Config` and `ContainerConfig`.
    Config,
    /// `*container.HealthConfig`.
    Health,
    GraphDriver,
    RootFs,
    Metadata,
    /// A map with string keys: any key is a lookup, never an error.
    StringMap,
    /// `nat.PortSet`: its keys are `nat.Port`, which a field name is not.
    PortSet,
    /// A string, number, bool, slice or time: it has no fields.
    Leaf,
}

impl GoType {
    /// The type of field `name`, `None` when the struct has no such field.
    fn field(self, name: &str) -> Option<GoType> {
        use GoType::*;
        let found = match (self, name) {
            (Image, "Config" | "ContainerConfig") => Config,
            (Image, "GraphDriver") => GraphDriver,
            (Image, "RootFS") => RootFs,
            (Image, "Metadata") => Metadata,
            (
                Image,
                "Id" | "RepoTags" | "RepoDigests" | "Parent" | "Comment" | "Created" | "Container"
                | "DockerVersion" | "Author" | "Architecture" | "Variant" | "Os" | "OsVersion"
                | "Size" | "VirtualSize",
            ) => Leaf,
            (Config, "Labels" | "Volumes") => StringMap,
            (Config, "ExposedPorts") => PortSet,
            (Config, "Healthcheck") => Health,
            (
                Config,
                "Hostname" | "Domainname" | "User" | "AttachStdin" | "AttachStdout"
                | "AttachStderr" | "Tty" | "OpenStdin" | "StdinOnce" | "Env" | "Cmd"
                | "ArgsEscaped" | "Image" | "WorkingDir" | "Entrypoint" | "NetworkDisabled"
                | "MacAddress" | "OnBuild" | "StopSignal" | "StopTimeout" | "Shell",
            ) => Leaf,
            (Health, "Test" | "Interval" | "Timeout" | "StartPeriod" | "Retries") => Leaf,
            (GraphDriver, "Data") => StringMap,
            (GraphDriver, "Name") => Leaf,
            (RootFs, "Type" | "Layers" | "BaseLayer") => Leaf,
            (Metadata, "LastTagTime") => Leaf,
            _ => return None,
        };
        Some(found)
    }

    /// A pointer in Go, nil where the JSON has null or nothing.
    fn is_pointer(self) -> bool {
        matches!(self, GoType::Config | GoType::Health)
    }
}

/// What a leaf of `types.ImageInspect` is when the JSON has null or
/// nothing for it, as Go prints it.
#[derive(Clone, Copy)]
enum Zero {
    List,
    Map,
    Text,
    Bool,
    /// A `time.Time`, printed by `Time.String()`.
    Time,
}

const IMAGE_LEAVES: &[(&str, Zero)] = &[
    ("RepoTags", Zero::List),
    ("RepoDigests", Zero::List),
    ("Parent", Zero::Text),
    ("Comment", Zero::Text),
    ("Container", Zero::Text),
    ("DockerVersion", Zero::Text),
    ("Author", Zero::Text),
    ("Variant", Zero::Text),
    ("OsVersion", Zero::Text),
];

const CONFIG_LEAVES: &[(&str, Zero)] = &[
    ("Hostname", Zero::Text),
    ("Domainname", Zero::Text),
    ("User", Zero::Text),
    ("AttachStdin", Zero::Bool),
    ("AttachStdout", Zero::Bool),
    ("AttachStderr", Zero::Bool),
    ("ExposedPorts", Zero::Map),
    ("Tty", Zero::Bool),
    ("OpenStdin", Zero::Bool),
    ("StdinOnce", Zero::Bool),
    ("Env", Zero::List),
    ("Cmd", Zero::List),
    ("ArgsEscaped", Zero::Bool),
    ("Image", Zero::Text),
    ("Volumes", Zero::Map),
    ("WorkingDir", Zero::Text),
    ("Entrypoint", Zero::List),
    ("NetworkDisabled", Zero::Bool),
    ("MacAddress", Zero::Text),
    ("OnBuild", Zero::List),
    ("Labels", Zero::Map),
    ("StopSignal", Zero::Text),
    ("Shell", Zero::List),
];

/// One image's inspect JSON with its leaves as docker's typed run prints
/// them (see the module doc); `root` itself when the template needs the
/// JSON (see `needs_raw`) or `root` is not an object. Only for a template
/// [`which_run`] found the typed run prints.
pub(crate) fn typed_view(tree: &ListNode, root: &Value) -> Value {
    if needs_raw(tree) {
        return root.clone();
    }
    let Value::Map(image) = root else {
        return root.clone();
    };
    let mut image = (**image).clone();
    fill(&mut image, IMAGE_LEAVES);
    for config in ["Config", "ContainerConfig"] {
        edit(&mut image, config, |c| fill(c, CONFIG_LEAVES));
    }
    edit(&mut image, "GraphDriver", |g| {
        fill(g, &[("Data", Zero::Map)])
    });
    edit(&mut image, "RootFS", |r| {
        fill(r, &[("Layers", Zero::List), ("BaseLayer", Zero::Text)])
    });
    edit(&mut image, "Metadata", |m| {
        fill(m, &[("LastTagTime", Zero::Time)])
    });
    Value::Map(std::sync::Arc::new(image))
}

type Object = std::collections::BTreeMap<std::sync::Arc<str>, Value>;

/// Changes the object under `key`, when there is one.
fn edit(object: &mut Object, key: &str, change: impl FnOnce(&mut Object)) {
    if let Some(Value::Map(inner)) = object.get(key) {
        let mut inner = (**inner).clone();
        change(&mut inner);
        object.insert(key.into(), Value::Map(std::sync::Arc::new(inner)));
    }
}

/// Gives each leaf its typed value where the JSON has null or nothing.
fn fill(object: &mut Object, leaves: &[(&str, Zero)]) {
    for &(name, zero) in leaves {
        let value = object.get(name);
        let typed = match (zero, value) {
            (Zero::Time, Some(Value::String(text))) => {
                match super::time::go_decoded_time_string(text) {
                    Some(t) => Value::String(t.into()),
                    None => continue,
                }
            }
            (_, Some(v)) if !matches!(v, Value::Nil) => continue,
            (Zero::List, _) => Value::List(std::sync::Arc::from(Vec::new())),
            (Zero::Map, _) => Value::Map(std::sync::Arc::new(Object::new())),
            (Zero::Text, _) => Value::String("".into()),
            (Zero::Bool, _) => Value::Bool(false),
            (Zero::Time, _) => continue,
        };
        object.insert(name.into(), typed);
    }
}

/// Whether the template may see the JSON rather than Go's typed values:
/// it calls `json` (which prints the JSON's nulls), or measures, indexes or
/// ranges over `.` itself (which fails on a struct, so docker takes the raw
/// run, and counting a filled-in view would count the fills).
fn needs_raw(list: &ListNode) -> bool {
    fn in_pipe(p: &PipeNode, ranged: bool) -> bool {
        let last = p.commands.len().saturating_sub(1);
        p.commands.iter().enumerate().any(|(i, c)| {
            (ranged && i == last && matches!(c.args.as_slice(), [Expr::Dot(_)]))
                || c.args.iter().any(|a| match a {
                    Expr::Identifier(_, name) => {
                        matches!(name.as_str(), "json" | "len" | "index" | "slice")
                    }
                    Expr::Pipe(_, inner) => in_pipe(inner, false),
                    _ => false,
                })
        })
    }
    list.nodes.iter().any(|node| match node {
        Node::List(inner) => needs_raw(inner),
        Node::Action(action) => in_pipe(&action.pipe, false),
        Node::If(b) | Node::With(b) => {
            in_pipe(&b.pipe, false)
                || needs_raw(&b.body)
                || b.else_body.as_ref().is_some_and(needs_raw)
        }
        Node::Range(b) => {
            in_pipe(&b.pipe, true)
                || needs_raw(&b.body)
                || b.else_body.as_ref().is_some_and(needs_raw)
        }
        _ => false,
    })
}

/// A field chain to check: its names, where its dot stands (the chain
/// of names from the root that leads there), and Go's position for it.
struct Chain<'a> {
    base: Vec<&'a str>,
    names: &'a [gotmpl::parse::SmolStr],
    offset: usize,
    context: String,
}

/// Which of docker's runs prints a template on one image.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// The typed run succeeds: print [`typed_view`].
    Typed,
    /// The typed run fails and the raw one succeeds: print the JSON.
    Raw,
    /// Both fail: the raw run's error, in Go's words.
    Fails(String),
}

/// Which run docker prints `template` on `root` (one image's inspect JSON)
/// with.
pub(crate) fn which_run(src: &str, tree: &ListNode, root: &Value) -> Run {
    let mut chains = Vec::new();
    walk(tree, Some(Vec::new()), &mut chains);
    let full = |c: &Chain| -> Vec<String> {
        c.base
            .iter()
            .map(|s| s.to_string())
            .chain(c.names.iter().map(|s| s.to_string()))
            .collect()
    };
    if !chains.iter().any(|c| typed_fails(&full(c), root)) {
        return Run::Typed;
    }
    let failure = chains.iter().find_map(|c| {
        let message = raw_failure(&full(c), c.base.len(), root)?;
        let (line, col) = go_position(src, c.offset);
        Some(format!(
            "template: :{line}:{col}: executing \"\" at <{}>: {message}",
            c.context
        ))
    });
    failure.map_or(Run::Raw, Run::Fails)
}

/// Collects the field chains whose dot is known: the root, or inside a
/// `with` of a field chain, that chain.
fn walk<'a>(list: &'a ListNode, dot: Option<Vec<&'a str>>, out: &mut Vec<Chain<'a>>) {
    for node in &list.nodes {
        match node {
            Node::List(inner) => walk(inner, dot.clone(), out),
            Node::Action(action) => pipe(&action.pipe, &dot, out),
            Node::If(branch) => {
                pipe(&branch.pipe, &dot, out);
                walk(&branch.body, dot.clone(), out);
                if let Some(else_body) = &branch.else_body {
                    walk(else_body, dot.clone(), out);
                }
            }
            Node::With(branch) => {
                pipe(&branch.pipe, &dot, out);
                let inner = match (&dot, branch.pipe.commands.as_slice()) {
                    (Some(base), [cmd]) if branch.pipe.decl.is_empty() => match cmd.args.as_slice()
                    {
                        [Expr::Field(_, names)] => Some(
                            base.iter()
                                .copied()
                                .chain(names.iter().map(|n| n.as_str()))
                                .collect(),
                        ),
                        [Expr::Dot(_)] => Some(base.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                walk(&branch.body, inner, out);
                if let Some(else_body) = &branch.else_body {
                    walk(else_body, dot.clone(), out);
                }
            }
            // A range body sees each element; only `$` is known there.
            Node::Range(branch) => {
                pipe(&branch.pipe, &dot, out);
                walk(&branch.body, None, out);
                if let Some(else_body) = &branch.else_body {
                    walk(else_body, dot.clone(), out);
                }
            }
            Node::Template(_) | Node::Define(_) => {}
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn pipe<'a>(p: &'a PipeNode, dot: &Option<Vec<&'a str>>, out: &mut Vec<Chain<'a>>) {
    for cmd in &p.commands {
        command(cmd, dot, out);
    }
}

fn command<'a>(cmd: &'a CommandNode, dot: &Option<Vec<&'a str>>, out: &mut Vec<Chain<'a>>) {
    for arg in &cmd.args {
        match arg {
            Expr::Pipe(_, inner) => pipe(inner, dot, out),
            Expr::Field(pos, names) => {
                if let Some(base) = dot {
                    out.push(Chain {
                        base: base.clone(),
                        names,
                        offset: chain_offset(pos.offset, names),
                        context: format!(".{}", names.join(".")),
                    });
                }
            }
            // `$` is the root wherever it is used; Go places the chain
            // at its first field.
            Expr::Variable(pos, name, names) if name == "$" && !names.is_empty() => {
                out.push(Chain {
                    base: Vec::new(),
                    names,
                    offset: pos.offset + 1,
                    context: format!("$.{}", names.join(".")),
                })
            }
            _ => {}
        }
    }
}

/// Go's position for a field chain: its second field when it has several
/// (the parser makes a chain node there), else its only one.
pub(crate) fn chain_offset<S: AsRef<str>>(start: usize, names: &[S]) -> usize {
    match names {
        [first, _, ..] => start + first.as_ref().len() + 1,
        _ => start,
    }
}

/// Whether running the chain against `types.ImageInspect` fails.
fn typed_fails(names: &[String], root: &Value) -> bool {
    let mut ty = GoType::Image;
    let mut value = Some(root);
    for name in names {
        match ty {
            GoType::StringMap => return false,
            GoType::PortSet | GoType::Leaf => return true,
            _ => {}
        }
        if ty.is_pointer() && matches!(value, None | Some(Value::Nil)) {
            return true;
        }
        let Some(next) = ty.field(name) else {
            return true;
        };
        ty = next;
        value = match value {
            Some(Value::Map(m)) => m.get(name.as_str()),
            _ => None,
        };
    }
    false
}

/// Why running the chain against the JSON with `missingkey=error` fails,
/// in Go's words. Only the fields from `from` on are the chain's own (a
/// `with` got through the ones before).
fn raw_failure(names: &[String], from: usize, root: &Value) -> Option<String> {
    let mut value = root;
    for (i, name) in names.iter().enumerate() {
        let next = match value {
            Value::Map(m) => m.get(name.as_str()),
            Value::Nil => return Some(format!("nil pointer evaluating interface {{}}.{name}")),
            _ => {
                return Some(format!(
                    "can't evaluate field {name} in type interface {{}}"
                ));
            }
        };
        match next {
            Some(v) => value = v,
            // A `with` over a missing key does not run its body.
            None if i < from => return None,
            None => return Some(format!("map has no entry for key \"{name}\"")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str) -> Option<String> {
        let (tree, _) = gotmpl::parse::Parser::new(src, "{{", "}}")
            .and_then(|p| p.parse())
            .unwrap();
        let json = serde_json::json!({
            "Id": "sha256:abc",
            "RepoTags": ["a:1"],
            "Size": 10,
            "Config": {"Labels": {"a": "b"}, "Entrypoint": null, "Env": ["A=1"]},
            "ContainerConfig": {"Labels": {"a": "b"}},
            "GraphDriver": {"Data": null, "Name": "overlay2"},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}
        });
        match which_run(src, &tree, &gotmpl::to_value(&json).unwrap()) {
            Run::Fails(message) => Some(message),
            Run::Typed | Run::Raw => None,
        }
    }

    #[test]
    fn what_the_typed_run_allows_renders() {
        for ok in [
            "{{.Id}}",
            "{{.Config.Labels.foo}}",
            "{{.ContainerConfig.Labels.x}}",
            "{{.GraphDriver.Data.nope}}",
            "{{.Config.ExposedPorts}}",
            "{{with .Config}}{{.Env}}{{end}}",
            "{{range .Config.Env}}{{.}}{{end}}",
            "{{len .}}",
        ] {
            assert_eq!(check(ok), None, "{ok}");
        }
    }

    #[test]
    fn what_the_raw_run_refuses_reads_as_go_says_it() {
        // Texts from docker 20.10's `inspect --format`.
        for (src, want) in [
            (
                "{{.Nope}}",
                r#"template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{.Config.Nope}}",
                r#"template: :1:9: executing "" at <.Config.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{json .Nope}}",
                r#"template: :1:7: executing "" at <.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{.Nope.X}}",
                r#"template: :1:7: executing "" at <.Nope.X>: map has no entry for key "Nope""#,
            ),
            (
                "{{.Id.x}}",
                r#"template: :1:5: executing "" at <.Id.x>: can't evaluate field x in type interface {}"#,
            ),
            (
                "{{.Config.ExposedPorts.x}}",
                r#"template: :1:9: executing "" at <.Config.ExposedPorts.x>: map has no entry for key "ExposedPorts""#,
            ),
            (
                "{{.Config.Entrypoint.x}}",
                r#"template: :1:9: executing "" at <.Config.Entrypoint.x>: nil pointer evaluating interface {}.x"#,
            ),
            (
                "{{.Config.Healthcheck.Test}}",
                r#"template: :1:9: executing "" at <.Config.Healthcheck.Test>: map has no entry for key "Healthcheck""#,
            ),
            (
                "{{.Config.Labels.foo}} {{.Nope}}",
                r#"template: :1:9: executing "" at <.Config.Labels.foo>: map has no entry for key "foo""#,
            ),
            (
                "{{with .Config}}{{.Nope}}{{end}}",
                r#"template: :1:18: executing "" at <.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{range .RepoTags}}{{.}}{{end}} {{.Nope}}",
                r#"template: :1:34: executing "" at <.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{if .Nope}}x{{end}}",
                r#"template: :1:5: executing "" at <.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{$.Nope}}",
                r#"template: :1:3: executing "" at <$.Nope>: map has no entry for key "Nope""#,
            ),
            (
                "{{.Metadata.LastTagTime.x}}",
                r#"template: :1:11: executing "" at <.Metadata.LastTagTime.x>: can't evaluate field x in type interface {}"#,
            ),
        ] {
            assert_eq!(check(src).as_deref(), Some(want), "{src}");
        }
    }

    #[test]
    fn the_typed_run_prints_go_s_values_and_json_sees_the_json() {
        let render = |src: &str| {
            let json = serde_json::json!({
                "RepoTags": null,
                "Config": {"Labels": null, "Entrypoint": null, "Env": ["A=1"]},
                "Metadata": {"LastTagTime": "2024-06-10T12:05:00.5+02:00"}
            });
            let template = super::super::Template::parse(src).unwrap();
            template.render_inspect(&json).unwrap()
        };
        assert_eq!(
            render("{{.RepoTags}} {{.Config.Labels}} {{.Config.Entrypoint}} {{.Config.Env}}"),
            "[] map[] [] [A=1]"
        );
        assert_eq!(
            render("{{.Config.ExposedPorts}}|{{.Config.Tty}}|{{.Variant}}|"),
            "map[]|false||"
        );
        assert_eq!(
            render("{{.Metadata.LastTagTime}}"),
            "2024-06-10 12:05:00.5 +0200 +0200"
        );
        assert_eq!(
            render("{{json .Config.Entrypoint}} {{.Config.Entrypoint}}"),
            "null <no value>"
        );
        assert_eq!(render("{{len .Config}}"), "3");
    }
}
