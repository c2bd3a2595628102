//! A pipeline file as loaded and checked: every problem found before
//! anything runs, each at its place in the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::action::{ACTIONS, Request, outputs_of};
use super::expr::{Segment, Template};
use super::yaml::{self, Mode, Node, NodeKind, Pos};

/// One problem in a pipeline file, at a place in it when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as named on the command line.
    pub file: String,
    /// Where in it.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.col, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a pipeline file, one per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct LoadError(pub Vec<Diagnostic>);

/// How often to try a step again, and how long to wait first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each next one.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff: Duration::from_secs(1),
        }
    }
}

/// One step, checked.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its place in the list, from 0.
    pub index: usize,
    /// Its id, if it has one.
    pub id: Option<String>,
    /// Where it starts in the file.
    pub pos: Pos,
    /// The action (`pull`, `mirror`, …).
    pub action: String,
    /// The action's keys, expressions unevaluated.
    pub body: Node,
    /// `if:`: run only when this is true.
    pub when: Option<Node>,
    /// `for_each:`: a list, or an expression giving one.
    pub for_each: Option<Node>,
    /// `parallel:`: items run at once.
    pub parallel: usize,
    /// `continue_on_error:`: a failure does not stop the pipeline.
    pub continue_on_error: bool,
    /// `retry:`.
    pub retry: Retry,
    /// `timeout:`: per attempt (per item for `for_each`).
    pub timeout: Option<Duration>,
}

impl Step {
    /// How the step is named in messages: its id, or its number and action.
    pub fn label(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => format!("step {} ({})", self.index + 1, self.action),
        }
    }
}

/// A pipeline file, checked, expressions unevaluated.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file, as named.
    pub file: String,
    /// `name:`.
    pub name: Option<String>,
    /// `vars:`, in file order, then `--var` overrides.
    pub vars: Vec<(String, Node)>,
    /// `registries:` by registry.
    pub registries: BTreeMap<String, Node>,
    /// `plugins:` by name.
    pub plugins: BTreeMap<String, Node>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Settings for one registry in `registries:`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Reach it without TLS verification or over plain HTTP.
    pub insecure: bool,
    /// Credentials to use instead of docker's `config.json` (take them from
    /// the environment: `${{ env.USER }}`).
    pub credentials: Option<CredentialSettings>,
    /// Requests in flight at once to this registry, at most.
    pub max_concurrent: Option<usize>,
}

/// A user name and password.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

const TOP_KEYS: &[&str] = &["version", "name", "vars", "registries", "plugins", "steps"];
const CONTROL_KEYS: &[&str] = &[
    "id",
    "if",
    "for_each",
    "parallel",
    "continue_on_error",
    "retry",
    "timeout",
];

/// Loads and checks a pipeline file. `vars` (from `--var`) override the
/// file's. Every problem is reported, not only the first.
pub fn load(path: &Path, vars: &[(String, String)]) -> Result<Pipeline, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError(vec![Diagnostic {
            file: file.clone(),
            pos: None,
            message: format!("cannot read the pipeline: {e}"),
        }])
    })?;
    parse(&file, &text, vars)
}

/// Checks a pipeline's text; `file` names it in messages.
pub fn parse(file: &str, text: &str, vars: &[(String, String)]) -> Result<Pipeline, LoadError> {
    let mut c = Checker {
        file: file.to_string(),
        problems: Vec::new(),
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            c.add(e.pos, e.message);
            return Err(LoadError(c.problems));
        }
    };
    let pipeline = c.pipeline(&root, vars);
    if c.problems.is_empty() {
        Ok(pipeline)
    } else {
        c.problems.sort_by_key(|d| d.pos);
        Err(LoadError(c.problems))
    }
}

struct Checker {
    file: String,
    problems: Vec<Diagnostic>,
}

/// Keys compare with `-` and `_` alike, as in step bodies.
fn key_name(k: &Node) -> String {
    k.as_str().unwrap_or_default().replace('-', "_")
}

impl Checker {
    fn add(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.problems.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    fn pipeline(&mut self, root: &Node, cli_vars: &[(String, String)]) -> Pipeline {
        let mut p = Pipeline {
            file: self.file.clone(),
            name: None,
            vars: Vec::new(),
            registries: BTreeMap::new(),
            plugins: BTreeMap::new(),
            steps: Vec::new(),
        };
        let NodeKind::Map(entries) = &root.kind else {
            self.add(
                Some(root.pos),
                format!(
                    "a pipeline is a mapping with `version` and `steps`, not {}",
                    root.describe()
                ),
            );
            return p;
        };
        let mut version = None;
        let mut steps = None;
        for (k, v) in entries {
            match key_name(k).as_str() {
                "version" => version = Some(v),
                "name" => match v.as_str() {
                    Some(s) => p.name = Some(s.to_string()),
                    None => self.add(Some(v.pos), "`name` must be a string"),
                },
                "vars" => p.vars = self.vars(v),
                "registries" => p.registries = self.registries(v),
                "plugins" => p.plugins = self.plugins(v),
                "steps" => steps = Some(v),
                other => self.add(
                    Some(k.pos),
                    format!(
                        "unknown key `{other}` (expected one of {})",
                        quoted_list(TOP_KEYS)
                    ),
                ),
            }
        }
        match version {
            None => self.add(Some(root.pos), "missing key `version` (write `version: 1`)"),
            Some(v) if v.as_str() != Some("1") => self.add(
                Some(v.pos),
                format!(
                    "unsupported version {}: this strata reads version 1",
                    v.describe()
                ),
            ),
            Some(_) => {}
        }
        for (name, value) in cli_vars {
            p.vars.retain(|(n, _)| n != name);
            p.vars.push((
                name.clone(),
                Node::new(
                    NodeKind::Scalar {
                        text: value.clone(),
                        quoted: true,
                    },
                    root.pos,
                ),
            ));
        }
        match steps {
            None => self.add(Some(root.pos), "missing key `steps`"),
            Some(s) => p.steps = self.steps(s, &p.vars),
        }
        // Every plugin a step names must be declared.
        for step in &p.steps {
            let Ok(request) = Request::parse(&step.action, &step.body, Mode::Lenient) else {
                continue;
            };
            for (path, name) in request.plugin_names() {
                if crate::pipeline::expr::contains_expression(&name)
                    || p.plugins.contains_key(&name)
                {
                    continue;
                }
                let pos = locate(&step.body, &path);
                let known: Vec<&str> = p.plugins.keys().map(String::as_str).collect();
                self.add(
                    Some(pos),
                    format!(
                        "{}: unknown plugin `{name}` ({})",
                        step.action,
                        if known.is_empty() {
                            "declare it under `plugins:`".to_string()
                        } else {
                            format!("declared: {}", quoted_list(&known))
                        }
                    ),
                );
            }
        }
        for (name, node) in &p.plugins {
            self.expressions(node, &Scope::Vars(&[]), name);
        }
        for (i, (name, value)) in p.vars.iter().enumerate() {
            let earlier: Vec<&str> = p.vars[..i].iter().map(|(n, _)| n.as_str()).collect();
            self.expressions(value, &Scope::Vars(&earlier), name);
        }
        for (registry, node) in &p.registries {
            self.expressions(node, &Scope::Vars(&[]), registry);
        }
        p
    }

    fn vars(&mut self, node: &Node) -> Vec<(String, Node)> {
        let NodeKind::Map(entries) = &node.kind else {
            self.add(
                Some(node.pos),
                format!("`vars` must be a mapping, not {}", node.describe()),
            );
            return Vec::new();
        };
        entries
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
            .collect()
    }

    fn registries(&mut self, node: &Node) -> BTreeMap<String, Node> {
        let NodeKind::Map(entries) = &node.kind else {
            self.add(
                Some(node.pos),
                format!(
                    "`registries` must be a mapping of registry to settings, not {}",
                    node.describe()
                ),
            );
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default().to_string();
            if let Err(e) = yaml::from_node::<RegistrySettings>(v, Mode::Lenient) {
                self.add(
                    e.pos.or(Some(v.pos)),
                    format!("registry {name}: {}", e.message),
                );
            }
            out.insert(name, v.clone());
        }
        out
    }

    fn plugins(&mut self, node: &Node) -> BTreeMap<String, Node> {
        let NodeKind::Map(entries) = &node.kind else {
            self.add(
                Some(node.pos),
                format!(
                    "`plugins` must be a mapping of name to plugin, not {}",
                    node.describe()
                ),
            );
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default().to_string();
            match yaml::from_node::<crate::plugin::catalog::PluginSpec>(v, Mode::Lenient) {
                Ok(spec) => {
                    // An image must be pinned by digest: said at its value.
                    let image = v.get("image");
                    if let Some(node) = image.filter(|i| !i.is_expression())
                        && let Some(text) = node.as_str()
                        && let Err(e) = crate::plugin::artifact::pinned(text)
                    {
                        self.add(Some(node.pos), format!("plugin {name}: {e}"));
                        out.insert(name, v.clone());
                        continue;
                    }
                    // An image from an expression is checked once known.
                    if !v.is_expression()
                        && !image.is_some_and(Node::is_expression)
                        && let Err(m) = spec.declared(&name)
                    {
                        self.add(Some(v.pos), m);
                    }
                }
                Err(e) => self.add(
                    e.pos.or(Some(v.pos)),
                    format!("plugin {name}: {}", e.message),
                ),
            }
            out.insert(name, v.clone());
        }
        out
    }

    fn steps(&mut self, node: &Node, vars: &[(String, Node)]) -> Vec<Step> {
        let NodeKind::Seq(items) = &node.kind else {
            self.add(
                Some(node.pos),
                format!("`steps` must be a list, not {}", node.describe()),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.add(Some(node.pos), "`steps` is empty");
        }
        let var_names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        let mut steps: Vec<Step> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(step) = self.step(index, item) {
                if let Some(id) = &step.id
                    && steps.iter().any(|s| s.id.as_ref() == Some(id))
                {
                    self.add(Some(step.pos), format!("two steps have the id `{id}`"));
                }
                let earlier: Vec<(&str, &str, bool)> = steps
                    .iter()
                    .filter_map(|s| {
                        s.id.as_deref()
                            .map(|id| (id, s.action.as_str(), s.for_each.is_some()))
                    })
                    .collect();
                let later: Vec<&str> = items[index + 1..]
                    .iter()
                    .filter_map(|n| n.get("id").and_then(Node::as_str))
                    .collect();
                let scope = Scope::Step {
                    vars: &var_names,
                    earlier: &earlier,
                    later: &later,
                    has_item: step.for_each.is_some(),
                };
                let label = step.label();
                if let Some(w) = &step.when {
                    self.expressions(w, &scope, &label);
                }
                if let Some(f) = &step.for_each {
                    let outer = Scope::Step {
                        vars: &var_names,
                        earlier: &earlier,
                        later: &later,
                        has_item: false,
                    };
                    self.expressions(f, &outer, &label);
                }
                self.expressions(&step.body, &scope, &label);
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, index: usize, node: &Node) -> Option<Step> {
        let NodeKind::Map(entries) = &node.kind else {
            self.add(
                Some(node.pos),
                format!(
                    "a step is a mapping with one action, not {}",
                    node.describe()
                ),
            );
            return None;
        };
        let mut step = Step {
            index,
            id: None,
            pos: node.pos,
            action: String::new(),
            body: Node::new(NodeKind::Null, node.pos),
            when: None,
            for_each: None,
            parallel: 1,
            continue_on_error: false,
            retry: Retry::default(),
            timeout: None,
        };
        let mut actions: Vec<(&Node, &Node)> = Vec::new();
        let mut unknown = false;
        for (k, v) in entries {
            let key = key_name(k);
            match key.as_str() {
                "id" => match v.as_str() {
                    Some(id) if valid_id(id) => step.id = Some(id.to_string()),
                    _ => self.add(
                        Some(v.pos),
                        format!(
                            "a step id is letters, digits, `-` and `_`, starting with a letter, not {}",
                            v.describe()
                        ),
                    ),
                },
                "if" => step.when = Some(v.clone()),
                "for_each" => match &v.kind {
                    NodeKind::Seq(_) => step.for_each = Some(v.clone()),
                    _ if v.is_expression() => step.for_each = Some(v.clone()),
                    _ => self.add(
                        Some(v.pos),
                        format!(
                            "`for_each` must be a list or an expression giving one, not {}",
                            v.describe()
                        ),
                    ),
                },
                "parallel" => match yaml::from_node::<usize>(v, Mode::Strict) {
                    Ok(n) if n >= 1 => step.parallel = n,
                    _ => self.add(
                        Some(v.pos),
                        format!("`parallel` must be a number of 1 or more, not {}", v.describe()),
                    ),
                },
                "continue_on_error" => match yaml::from_node::<bool>(v, Mode::Strict) {
                    Ok(b) => step.continue_on_error = b,
                    Err(_) => self.add(
                        Some(v.pos),
                        format!("`continue_on_error` must be true or false, not {}", v.describe()),
                    ),
                },
                "retry" => match retry(v) {
                    Ok(r) => step.retry = r,
                    Err((pos, m)) => self.add(Some(pos), m),
                },
                "timeout" => match v.as_str().map(duration) {
                    Some(Ok(d)) => step.timeout = Some(d),
                    _ => self.add(
                        Some(v.pos),
                        format!(
                            "`timeout` must be a duration such as 90s, 10m or 2h, not {}",
                            v.describe()
                        ),
                    ),
                },
                _ if outputs_of(&key).is_some() => actions.push((k, v)),
                _ => {
                    unknown = true;
                    self.add(
                    Some(k.pos),
                    format!(
                        "unknown step key `{}` (a step has one action: {}; and may have {})",
                        k.as_str().unwrap_or_default(),
                        ACTIONS
                            .iter()
                            .map(|(a, _)| *a)
                            .collect::<Vec<_>>()
                            .join(", "),
                        CONTROL_KEYS.join(", "),
                    ),
                    )
                }
            }
        }
        match actions.as_slice() {
            [] if unknown => return None,
            [] => {
                self.add(
                    Some(node.pos),
                    format!(
                        "this step has no action (one of {})",
                        ACTIONS
                            .iter()
                            .map(|(a, _)| *a)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return None;
            }
            [(k, v)] => {
                step.action = key_name(k);
                step.body = (*v).clone();
            }
            [_, (k, _), ..] => {
                self.add(
                    Some(k.pos),
                    format!("a step has one action; this one also has `{}`", key_name(k)),
                );
                return None;
            }
        }
        if step.parallel > 1 && step.for_each.is_none() {
            self.add(
                Some(node.pos),
                "`parallel` needs `for_each` (it says how many items run at once)",
            );
        }
        match Request::parse(&step.action, &step.body, Mode::Lenient) {
            Ok(request) => {
                for problem in request.problems() {
                    let pos = locate(&step.body, &problem.path);
                    self.add(Some(pos), format!("{}: {}", step.action, problem.message));
                }
            }
            Err(e) => {
                self.add(
                    e.pos.or(Some(step.body.pos)),
                    format!("{}: {}", step.action, e.message),
                );
            }
        }
        Some(step)
    }

    /// Checks every expression in `node`: syntax, and that what it names
    /// exists where it runs.
    fn expressions(&mut self, node: &Node, scope: &Scope<'_>, label: &str) {
        match &node.kind {
            NodeKind::Null => {}
            NodeKind::Seq(items) => {
                for i in items {
                    self.expressions(i, scope, label);
                }
            }
            NodeKind::Map(entries) => {
                for (_, v) in entries {
                    self.expressions(v, scope, label);
                }
            }
            NodeKind::Scalar { text, quoted } => {
                if !node.is_expression() {
                    return;
                }
                let at = |offset: usize| offset_pos(node.pos, text, *quoted, offset);
                let template = match Template::parse(text) {
                    Ok(t) => t,
                    Err(e) => {
                        self.add(Some(at(e.offset)), e.message);
                        return;
                    }
                };
                for (path, offset) in template.located_references() {
                    if let Some(m) = scope.check(&path.root, &path.segments) {
                        self.add(Some(at(offset)), format!("{label}: {m}"));
                    }
                }
            }
        }
    }
}

/// What an expression at some place may name.
enum Scope<'a> {
    /// In `vars:` or `registries:`: earlier vars and the environment.
    Vars(&'a [&'a str]),
    /// In a step.
    Step {
        vars: &'a [&'a str],
        /// Ids of earlier steps with their action and whether they loop.
        earlier: &'a [(&'a str, &'a str, bool)],
        later: &'a [&'a str],
        has_item: bool,
    },
}

impl Scope<'_> {
    fn check(&self, root: &str, segments: &[Segment]) -> Option<String> {
        let first = match segments.first() {
            Some(Segment::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let (vars, step) = match self {
            Scope::Vars(v) => (*v, None),
            Scope::Step {
                vars,
                earlier,
                later,
                has_item,
            } => (*vars, Some((*earlier, *later, *has_item))),
        };
        match root {
            "env" => None,
            "vars" => match first {
                Some(name) if !vars.contains(&name) => Some(format!(
                    "unknown variable `{name}` (define it under `vars:` or with --var {name}=VALUE)"
                )),
                _ => None,
            },
            "item" => match step {
                Some((_, _, true)) => None,
                _ => Some("`item` exists only in a step with `for_each`".into()),
            },
            "steps" => {
                let Some((earlier, later, _)) = step else {
                    return Some("steps' outputs are not known here".into());
                };
                let id = first?;
                let Some(&(_, action, loops)) = earlier.iter().find(|(i, _, _)| *i == id) else {
                    if later.contains(&id) {
                        return Some(format!(
                            "step `{id}` runs after this one: its outputs are not known yet"
                        ));
                    }
                    return Some(format!("unknown step `{id}`"));
                };
                match segments.get(1) {
                    None => None,
                    Some(Segment::Key(k)) if k == "status" => None,
                    Some(Segment::Key(k)) if k == "outputs" => match segments.get(2) {
                        Some(Segment::Key(name)) if !loops => {
                            let known = outputs_of(action).unwrap_or(&[]);
                            (!known.contains(&name.as_str())).then(|| {
                                format!(
                                    "step `{id}` ({action}) has no output `{name}` (it has {})",
                                    quoted_list(known)
                                )
                            })
                        }
                        _ => None,
                    },
                    Some(_) => Some(format!("use steps.{id}.outputs.NAME or steps.{id}.status")),
                }
            }
            _ => None,
        }
    }
}

/// A step id: a letter, then letters, digits, `-` and `_`.
fn valid_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The place of byte `offset` of a scalar's text: exact for a plain or
/// quoted scalar on one line, the scalar's start otherwise.
fn offset_pos(pos: Pos, text: &str, quoted: bool, offset: usize) -> Pos {
    if text.contains('\n') {
        return pos;
    }
    let col = text[..offset.min(text.len())].chars().count();
    Pos::new(pos.line, pos.col + col + usize::from(quoted))
}

/// The node at `path` under `body`, or the deepest one found on the way.
fn locate(body: &Node, path: &[String]) -> Pos {
    let mut node = body;
    for key in path {
        let next = match &node.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| key_name(k) == *key)
                .map(|(_, v)| v),
            NodeKind::Seq(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.pos
}

fn retry(v: &Node) -> Result<Retry, (Pos, String)> {
    if let Ok(n) = yaml::from_node::<u32>(v, Mode::Strict) {
        if n == 0 {
            return Err((v.pos, "`retry` attempts must be 1 or more".into()));
        }
        return Ok(Retry {
            attempts: n,
            ..Retry::default()
        });
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        attempts: u32,
        #[serde(default)]
        backoff: Option<String>,
    }
    let spec: Spec = yaml::from_node(v, Mode::Strict).map_err(|e| {
        (
            e.pos.unwrap_or(v.pos),
            format!(
                "`retry` is a number of attempts or {{attempts: N, backoff: 5s}}: {}",
                e.message
            ),
        )
    })?;
    if spec.attempts == 0 {
        return Err((v.pos, "`retry` attempts must be 1 or more".into()));
    }
    let backoff = match &spec.backoff {
        None => Retry::default().backoff,
        Some(b) => duration(b).map_err(|m| (v.get("backoff").map_or(v.pos, |n| n.pos), m))?,
    };
    Ok(Retry {
        attempts: spec.attempts,
        backoff,
    })
}

/// Parses a duration: a number and a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let bad =
        || format!("invalid duration {text:?}: use a number and a unit, such as 90s, 10m or 2h");
    let n: f64 = n.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
