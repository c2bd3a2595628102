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

/// A field chain to check: its names, where its dot stands (the chain
/// of names from the root that leads there), and Go's position for it.
struct Chain<'a> {
    base: Vec<&'a str>,
    names: &'a [gotmpl::parse::SmolStr],
    offset: usize,
    context: String,
}

/// docker's error for `template` run on `root` (one image's inspect JSON),
/// or `None` when docker would render it.
pub(crate) fn misuse(src: &str, tree: &ListNode, root: &Value) -> Option<String> {
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
        return None;
    }
    chains.iter().find_map(|c| {
        let message = raw_failure(&full(c), c.base.len(), root)?;
        let (line, col) = go_position(src, c.offset);
        Some(format!(
            "template: :{line}:{col}: executing \"\" at <{}>: {message}",
            c.context
        ))
    })
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
        misuse(src, &tree, &gotmpl::to_value(&json).unwrap())
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
}
