//! YAML read into a tree that keeps every node's line and column, and a serde
//! `Deserializer` over that tree.
//!
//! Pipelines report every error as `FILE:LINE:COL: message`, which a
//! deserializer working straight from text cannot do for errors found after
//! parsing (a wrong type, an unknown key). So [`parse`] builds a [`Node`] tree
//! from the parser's events, and [`from_node`] fills typed structs from it,
//! giving each error the position of the node it concerns.
//!
//! Choices:
//! - Anchors and aliases are resolved: an alias becomes a copy of the anchored
//!   node (the copy's root takes the alias's position, its insides keep the
//!   anchor's). Copies are capped at [`MAX_ALIAS_NODES`] nodes in all, so a
//!   small file cannot expand without bound.
//! - Tags are refused, except `!!str`, which makes a scalar a string.
//! - Plain `null`, `Null`, `NULL`, `~` and empty values become [`NodeKind::Null`]
//!   (except as mapping keys, which stay text).
//! - Struct fields match keys with `-` read as `_` (`all-platforms` names the
//!   field `all_platforms`), so Rust field names must not be renamed to
//!   dashed names. Plain maps keep keys verbatim.
//! - `#[serde(flatten)]` and `#[serde(untagged)]` work, but serde buffers such
//!   values without positions: keys inside them are matched verbatim (no
//!   `-`/`_` equivalence), a quoted number is not read as a number, and an error
//!   inside them points at the mapping that holds them.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Error as _, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde_json::Value;

/// How many nodes alias copies may add to a document, all aliases together.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// How deeply lists and mappings may nest; deeper input is refused rather
/// than risking the stack.
const MAX_DEPTH: usize = 200;

/// A place in the YAML text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub col: usize,
}

impl Pos {
    /// The position `line:col`.
    pub fn new(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }

    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// No value: an empty value, `null` or `~`.
    Null,
    /// A scalar as written, with whether it was quoted (or a block scalar),
    /// which makes it a string whatever its text.
    Scalar {
        /// The scalar's text, after YAML's unescaping and folding.
        text: String,
        /// Whether it was written quoted or as a block (`|`, `>`), or tagged `!!str`.
        quoted: bool,
    },
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in the order written; keys are always scalars.
    Map(Vec<(Node, Node)>),
}

/// A YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where the value starts in the text.
    pub pos: Pos,
}

/// A YAML or typing error, with the position it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", located(.pos, .message))]
pub struct YamlError {
    /// Where the problem is; always set on errors from [`parse`] and [`from_node`].
    pub pos: Option<Pos>,
    /// What is wrong, as one line.
    pub message: String,
}

fn located(pos: &Option<Pos>, message: &str) -> String {
    match pos {
        Some(pos) => format!("{pos}: {message}"),
        None => message.to_string(),
    }
}

impl YamlError {
    /// An error at `pos`.
    pub fn at(pos: Pos, message: impl Into<String>) -> YamlError {
        YamlError {
            pos: Some(pos),
            message: message.into(),
        }
    }

    /// Gives the error `pos` unless it already has a position, so the
    /// innermost node's position wins as an error travels outwards.
    pub fn or_at(mut self, pos: Pos) -> YamlError {
        self.pos.get_or_insert(pos);
        self
    }

    fn from_scan(e: &ScanError) -> YamlError {
        let m = e.marker();
        YamlError::at(Pos::new(m.line(), m.col() + 1), e.info())
    }
}

/// Parses a YAML text holding exactly one document (an empty text is a
/// [`NodeKind::Null`] at 1:1).
///
/// # Errors
/// A syntax error, a second document, a duplicate key, a non-scalar key, a
/// tag other than `!!str`, nesting deeper than 200 levels, or aliases that
/// expand past [`MAX_ALIAS_NODES`].
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        alias_nodes: 0,
    };
    let mut root = None;
    loop {
        let (event, span) = b.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) if root.is_some() => {
                return Err(YamlError::at(
                    Pos::of(&span),
                    "a second YAML document (`---`); a file holds one document",
                ));
            }
            Event::DocumentStart(_) => {
                let (event, span) = b.next()?;
                root = Some(b.node(event, span, 0, false)?);
            }
            other => {
                return Err(YamlError::at(
                    Pos::of(&span),
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        }
    }
    Ok(root.unwrap_or(Node {
        kind: NodeKind::Null,
        pos: Pos::new(1, 1),
    }))
}

/// Builds the tree from the parser's events, one node per call.
struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(YamlError::from_scan(&e)),
            None => Err(YamlError {
                pos: None,
                message: "unexpected end of YAML".to_string(),
            }),
        }
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        depth: usize,
        is_key: bool,
    ) -> Result<Node, YamlError> {
        let pos = Pos::of(&span);
        if depth > MAX_DEPTH {
            return Err(YamlError::at(
                pos,
                format!("lists and mappings nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let (kind, anchor) = match event {
            Event::Alias(id) => return self.alias(id, pos),
            Event::Scalar(text, style, anchor, tag) => {
                let mut quoted = style != ScalarStyle::Plain;
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() && tag.suffix == "str" {
                        quoted = true;
                    } else {
                        return Err(unsupported_tag(&tag, pos));
                    }
                }
                let kind = if !quoted && !is_key && is_null(&text) {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                (kind, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(unsupported_tag(&tag, pos));
                }
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1, false)?);
                }
                (NodeKind::Seq(items), anchor)
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(unsupported_tag(&tag, pos));
                }
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span, depth + 1, true)?;
                    let NodeKind::Scalar { text, .. } = &key.kind else {
                        return Err(YamlError::at(
                            key.pos,
                            format!("a mapping key must be text, not {}", key.describe()),
                        ));
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.as_str() == Some(text))
                    {
                        return Err(YamlError::at(
                            key.pos,
                            format!("duplicate key `{text}` (first at {})", first.pos),
                        ));
                    }
                    let (event, span) = self.next()?;
                    let value = self.node(event, span, depth + 1, false)?;
                    entries.push((key, value));
                }
                (NodeKind::Map(entries), anchor)
            }
            other => {
                return Err(YamlError::at(
                    pos,
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        };
        let node = Node { kind, pos };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<Node, YamlError> {
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(YamlError::at(pos, "alias to an unknown anchor"));
        };
        self.alias_nodes += anchored.count();
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(YamlError::at(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
            ));
        }
        let mut copy = anchored.clone();
        copy.pos = pos;
        Ok(copy)
    }
}

fn unsupported_tag(tag: &Tag, pos: Pos) -> YamlError {
    let shown = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    YamlError::at(
        pos,
        format!("YAML tags such as `{shown}` are not supported (quote a value to make it text)"),
    )
}

impl Node {
    /// A node of `kind` at `pos`.
    pub fn new(kind: NodeKind, pos: Pos) -> Node {
        Node { kind, pos }
    }

    /// The value of `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar, quoted or not.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a scalar holding a `${{ … }}` expression.
    pub fn is_expression(&self) -> bool {
        self.as_str().is_some_and(|t| t.contains("${{"))
    }

    /// The node for a JSON value, every node of it at `pos` (for values that
    /// come from expressions, which have no place of their own). Strings
    /// become quoted scalars, so they stay strings whatever their text.
    pub fn from_json(value: &Value, pos: Pos) -> Node {
        let kind = match value {
            Value::Null => NodeKind::Null,
            Value::Bool(b) => NodeKind::Scalar {
                text: b.to_string(),
                quoted: false,
            },
            Value::Number(n) => NodeKind::Scalar {
                text: n.to_string(),
                quoted: false,
            },
            Value::String(s) => NodeKind::Scalar {
                text: s.clone(),
                quoted: true,
            },
            Value::Array(items) => {
                NodeKind::Seq(items.iter().map(|v| Node::from_json(v, pos)).collect())
            }
            Value::Object(map) => NodeKind::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = Node::new(
                            NodeKind::Scalar {
                                text: k.clone(),
                                quoted: true,
                            },
                            pos,
                        );
                        (key, Node::from_json(v, pos))
                    })
                    .collect(),
            ),
        };
        Node { kind, pos }
    }

    /// The node as JSON: plain scalars typed by the YAML 1.2 core schema,
    /// quoted scalars as strings. A number JSON cannot hold (`.inf`, an
    /// integer past 64 bits) stays a string of its text.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Scalar { text, quoted: true } => Value::String(text.clone()),
            NodeKind::Scalar {
                text,
                quoted: false,
            } => match Plain::resolve(text) {
                Plain::Null => Value::Null,
                Plain::Bool(b) => Value::Bool(b),
                Plain::Int(n) => match (i64::try_from(n), u64::try_from(n)) {
                    (Ok(i), _) => Value::from(i),
                    (_, Ok(u)) => Value::from(u),
                    _ => Value::String(text.clone()),
                },
                Plain::Float(f) => serde_json::Number::from_f64(f)
                    .map_or_else(|| Value::String(text.clone()), Value::Number),
                Plain::Str => Value::String(text.clone()),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node in words for error messages: "a list", "a string \"abc\"".
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Null => "an empty value".to_string(),
            NodeKind::Seq(_) => "a list".to_string(),
            NodeKind::Map(_) => "a mapping".to_string(),
            NodeKind::Scalar { text, quoted: true } => format!("a string {}", shorten(text)),
            NodeKind::Scalar {
                text,
                quoted: false,
            } => match Plain::resolve(text) {
                Plain::Null => "an empty value".to_string(),
                Plain::Bool(_) => format!("a boolean `{text}`"),
                Plain::Int(_) | Plain::Float(_) => format!("a number `{text}`"),
                Plain::Str => format!("a string {}", shorten(text)),
            },
        }
    }

    /// How many nodes this one is made of, itself included.
    fn count(&self) -> usize {
        1 + match &self.kind {
            NodeKind::Null | NodeKind::Scalar { .. } => 0,
            NodeKind::Seq(items) => items.iter().map(Node::count).sum(),
            NodeKind::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
        }
    }
}

/// A string quoted for a message, cut short if long.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{:?}…", cut)
    } else {
        format!("{text:?}")
    }
}

/// A plain scalar's type under the YAML 1.2 core schema.
#[derive(Debug, PartialEq)]
enum Plain {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

impl Plain {
    fn resolve(text: &str) -> Plain {
        if is_null(text) {
            Plain::Null
        } else if let Some(b) = parse_bool(text) {
            Plain::Bool(b)
        } else if let Some(n) = parse_int(text) {
            Plain::Int(n)
        } else if let Some(f) = parse_float(text) {
            Plain::Float(f)
        } else {
            Plain::Str
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Core schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
/// Integers past 128 bits are not integers here.
fn parse_int(text: &str) -> Option<i128> {
    if let Some(oct) = text.strip_prefix("0o") {
        return (!oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .then(|| i128::from_str_radix(oct, 8).ok())
            .flatten();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| i128::from_str_radix(hex, 16).ok())
            .flatten();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Core schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`,
/// `[-+]?.inf` and `.nan` in their three spellings. Integers are floats too.
fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && all_digits(whole),
        Some(f) if whole.is_empty() => !f.is_empty() && all_digits(f),
        Some(f) => all_digits(whole) && all_digits(f),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse().ok()
}

/// How [`from_node`] treats scalars holding `${{ … }}` expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An expression's text is text like any other: `${{ vars.n }}` is not a number.
    Strict,
    /// For checking a pipeline before its expressions have values: an
    /// expression asked to be a boolean, number, list, mapping, struct,
    /// option or enum gives a neutral value (false, 0, empty, `Some`, the
    /// first variant); asked to be a string, it gives its text.
    Lenient,
}

/// Deserializes a `T` from `node`.
///
/// # Errors
/// The first value that does not fit `T`, at the position of the innermost
/// node concerned (for an unknown key or variant, the key's position).
pub fn from_node<T: DeserializeOwned>(node: &Node, mode: Mode) -> Result<T, YamlError> {
    T::deserialize(NodeDeserializer::new(node, mode)).map_err(|e| e.or_at(node.pos))
}

/// A serde `Deserializer` over a [`Node`], for callers that drive serde
/// themselves (a `DeserializeSeed`, say); [`from_node`] is the usual door.
#[derive(Debug, Clone, Copy)]
pub struct NodeDeserializer<'a> {
    node: &'a Node,
    mode: Mode,
}

impl<'a> NodeDeserializer<'a> {
    /// A deserializer reading `node` in `mode`.
    pub fn new(node: &'a Node, mode: Mode) -> NodeDeserializer<'a> {
        NodeDeserializer { node, mode }
    }

    fn lenient_expression(&self) -> bool {
        self.mode == Mode::Lenient && self.node.is_expression()
    }

    fn mismatch(&self, expected: &str) -> YamlError {
        YamlError::at(
            self.node.pos,
            format!("expected {expected}, found {}", self.node.describe()),
        )
    }

    fn here<T>(&self, result: Result<T, YamlError>) -> Result<T, YamlError> {
        result.map_err(|e| e.or_at(self.node.pos))
    }

    /// The scalar's text as an integer of type `T`.
    fn integer<T: TryFrom<i128> + fmt::Display + Bounded>(&self) -> Result<T, YamlError> {
        let Some(text) = self.node.as_str() else {
            return Err(self.mismatch("a whole number"));
        };
        let Some(n) = parse_int(text) else {
            let why = if parse_float(text).is_some() {
                format!("invalid value {} for a whole number", shorten(text))
            } else {
                format!("invalid value {} for a number", shorten(text))
            };
            return Err(YamlError::at(self.node.pos, why));
        };
        T::try_from(n).map_err(|_| {
            YamlError::at(
                self.node.pos,
                format!(
                    "number {text} is out of range (from {} to {})",
                    T::MIN,
                    T::MAX
                ),
            )
        })
    }

    fn float(&self) -> Result<f64, YamlError> {
        let Some(text) = self.node.as_str() else {
            return Err(self.mismatch("a number"));
        };
        parse_float(text).ok_or_else(|| {
            YamlError::at(
                self.node.pos,
                format!("invalid value {} for a number", shorten(text)),
            )
        })
    }

    fn seq<'de, V: Visitor<'de>>(
        self,
        expected_len: Option<usize>,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match &self.node.kind {
            NodeKind::Seq(items) => {
                let mut access = Items {
                    items: items.iter(),
                    mode: self.mode,
                };
                let value = visitor.visit_seq(&mut access)?;
                let left = access.items.len();
                if left > 0 {
                    let want = expected_len.unwrap_or(items.len() - left);
                    return Err(YamlError::at(
                        self.node.pos,
                        format!(
                            "expected {want} item{}, found {}",
                            plural(want),
                            items.len()
                        ),
                    ));
                }
                Ok(value)
            }
            _ if self.lenient_expression() => {
                visitor.visit_seq(NeutralSeq(expected_len.unwrap_or(0)))
            }
            _ => Err(self.mismatch("a list")),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Integer types' ranges, for out-of-range messages.
trait Bounded {
    const MIN: Self;
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty)*) => {$(
        impl Bounded for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
        }
    )*};
}
bounded!(i8 i16 i32 i64 i128 u8 u16 u32 u64 u128);

macro_rules! integer_methods {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
            if self.lenient_expression() {
                return self.here(visitor.$visit(0));
            }
            let n: $t = self.integer()?;
            self.here(visitor.$visit(n))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = YamlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Scalar { text, quoted: true } => visitor.visit_str(text),
            NodeKind::Scalar {
                text,
                quoted: false,
            } => match Plain::resolve(text) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Int(n) => match (i64::try_from(n), u64::try_from(n)) {
                    (Ok(i), _) => visitor.visit_i64(i),
                    (_, Ok(u)) => visitor.visit_u64(u),
                    _ => visitor.visit_str(text),
                },
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::Str => visitor.visit_str(text),
            },
            NodeKind::Seq(_) => return self.seq(None, visitor),
            NodeKind::Map(entries) => visitor.visit_map(Entries::new(entries, self.mode, false)),
        };
        self.here(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        if self.lenient_expression() {
            return self.here(visitor.visit_bool(false));
        }
        let Some(text) = self.node.as_str() else {
            return Err(self.mismatch("true or false"));
        };
        let Some(b) = parse_bool(text) else {
            return Err(YamlError::at(
                self.node.pos,
                format!("invalid value {} for true or false", shorten(text)),
            ));
        };
        self.here(visitor.visit_bool(b))
    }

    integer_methods! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_i128 visit_i128 i128;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
        deserialize_u128 visit_u128 u128;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        if self.lenient_expression() {
            return self.here(visitor.visit_f64(0.0));
        }
        let f = self.float()?;
        self.here(visitor.visit_f64(f))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let mut chars = self.node.as_str().unwrap_or_default().chars();
        match (self.node.as_str(), chars.next(), chars.next()) {
            (Some(_), Some(c), None) => self.here(visitor.visit_char(c)),
            _ => Err(self.mismatch("a single character")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match self.node.as_str() {
            Some(text) => self.here(visitor.visit_str(text)),
            None => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match self.node.as_str() {
            Some(text) => self.here(visitor.visit_bytes(text.as_bytes())),
            None => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match self.node.kind {
            NodeKind::Null => self.here(visitor.visit_none()),
            _ => self.here(visitor.visit_some(self)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        if matches!(self.node.kind, NodeKind::Null) || self.lenient_expression() {
            self.here(visitor.visit_unit())
        } else {
            Err(self.mismatch("an empty value"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.here(visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let result = self.seq(None, visitor);
        self.here(result)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        let result = self.seq(Some(len), visitor);
        self.here(result)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match &self.node.kind {
            NodeKind::Map(entries) => {
                self.here(visitor.visit_map(Entries::new(entries, self.mode, false)))
            }
            _ if self.lenient_expression() => self.here(visitor.visit_map(NeutralStruct(&[]))),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match &self.node.kind {
            NodeKind::Map(entries) => {
                self.here(visitor.visit_map(Entries::new(entries, self.mode, true)))
            }
            _ if self.lenient_expression() => self.here(visitor.visit_map(NeutralStruct(fields))),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        let result = match &self.node.kind {
            _ if self.lenient_expression() => match variants.first() {
                Some(first) => visitor.visit_enum(NeutralEnum(first)),
                None => Err(self.mismatch("a value (this setting has no allowed values)")),
            },
            NodeKind::Scalar { .. } => visitor.visit_enum(ScalarEnum(self)),
            NodeKind::Map(entries) if entries.len() == 1 => visitor.visit_enum(MapEnum {
                key: &entries[0].0,
                value: &entries[0].1,
                mode: self.mode,
            }),
            NodeKind::Map(entries) => Err(YamlError::at(
                self.node.pos,
                format!(
                    "expected a single key naming {}, found {} keys",
                    one_of(variants),
                    entries.len()
                ),
            )),
            _ => Err(self.mismatch(&one_of(variants))),
        };
        self.here(result)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match self.node.as_str() {
            Some(text) => self.here(visitor.visit_str(text)),
            None => Err(self.mismatch("a name")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }
}

/// A list's items, each deserialized from its own node.
struct Items<'a> {
    items: std::slice::Iter<'a, Node>,
    mode: Mode,
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = YamlError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, YamlError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDeserializer::new(node, self.mode))
            .map(Some)
            .map_err(|e| e.or_at(node.pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// A mapping's entries. For a struct (`fields`), keys are handed over with
/// `-` read as `_`, and two keys naming one field are refused at the second.
struct Entries<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    mode: Mode,
    fields: bool,
    seen: Vec<(String, &'a Node)>,
}

impl<'a> Entries<'a> {
    fn new(entries: &'a [(Node, Node)], mode: Mode, fields: bool) -> Entries<'a> {
        Entries {
            entries: entries.iter(),
            value: None,
            mode,
            fields,
            seen: Vec::new(),
        }
    }
}

impl<'de, 'a> MapAccess<'de> for Entries<'a> {
    type Error = YamlError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, YamlError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        if !self.fields {
            return seed
                .deserialize(NodeDeserializer::new(key, self.mode))
                .map(Some)
                .map_err(|e| e.or_at(key.pos));
        }
        let Some(text) = key.as_str() else {
            return Err(YamlError::at(
                key.pos,
                format!("a key must be text, not {}", key.describe()),
            ));
        };
        let name = text.replace('-', "_");
        if let Some((_, first)) = self.seen.iter().find(|(seen, _)| *seen == name) {
            return Err(YamlError::at(
                key.pos,
                format!(
                    "key `{text}` repeats `{}` (at {}); they name the same setting",
                    first.as_str().unwrap_or_default(),
                    first.pos
                ),
            ));
        }
        self.seen.push((name.clone(), key));
        match seed.deserialize(FieldName(&name)) {
            Ok(v) => Ok(Some(v)),
            Err(FieldError::Unknown(expected)) => Err(YamlError::at(
                key.pos,
                format!("unknown key `{text}` ({})", expected_keys(expected)),
            )),
            Err(FieldError::Other(e)) => Err(e.or_at(key.pos)),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, YamlError> {
        let node = self
            .value
            .take()
            .expect("serde asks for a value only after its key");
        seed.deserialize(NodeDeserializer::new(node, self.mode))
            .map_err(|e| e.or_at(node.pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A struct field's name, with an error type of its own so an unknown key
/// can be reported as written (`foo-bar`) rather than as looked up (`foo_bar`).
struct FieldName<'a>(&'a str);

#[derive(Debug)]
enum FieldError {
    Unknown(&'static [&'static str]),
    Other(YamlError),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Unknown(expected) => write!(f, "unknown key ({})", expected_keys(expected)),
            FieldError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FieldError::Other(YamlError::custom(msg))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        FieldError::Unknown(expected)
    }
}

impl<'de> de::Deserializer<'de> for FieldName<'_> {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A scalar naming a unit variant.
struct ScalarEnum<'a>(NodeDeserializer<'a>);

impl<'de, 'a> EnumAccess<'de> for ScalarEnum<'a> {
    type Error = YamlError;
    type Variant = ScalarEnum<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), YamlError> {
        Ok((seed.deserialize(self.0)?, self))
    }
}

impl<'de> VariantAccess<'de> for ScalarEnum<'_> {
    type Error = YamlError;

    fn unit_variant(self) -> Result<(), YamlError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        _seed: T,
    ) -> Result<T::Value, YamlError> {
        Err(self.needs_value())
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, YamlError> {
        Err(self.needs_value())
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, YamlError> {
        Err(self.needs_value())
    }
}

impl ScalarEnum<'_> {
    fn needs_value(&self) -> YamlError {
        let name = self.0.node.as_str().unwrap_or_default();
        YamlError::at(
            self.0.node.pos,
            format!("`{name}` needs settings: write it as `{name}: …`"),
        )
    }
}

/// A one-key mapping `{variant: value}`.
struct MapEnum<'a> {
    key: &'a Node,
    value: &'a Node,
    mode: Mode,
}

impl<'de, 'a> EnumAccess<'de> for MapEnum<'a> {
    type Error = YamlError;
    type Variant = MapEnum<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), YamlError> {
        let variant = seed
            .deserialize(NodeDeserializer::new(self.key, self.mode))
            .map_err(|e| e.or_at(self.key.pos))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for MapEnum<'_> {
    type Error = YamlError;

    fn unit_variant(self) -> Result<(), YamlError> {
        match self.value.kind {
            NodeKind::Null => Ok(()),
            _ => Err(YamlError::at(
                self.value.pos,
                format!(
                    "`{}` takes no value, found {}",
                    self.key.as_str().unwrap_or_default(),
                    self.value.describe()
                ),
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, YamlError> {
        seed.deserialize(self.de())
            .map_err(|e| e.or_at(self.value.pos))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, YamlError> {
        de::Deserializer::deserialize_tuple(self.de(), len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        de::Deserializer::deserialize_struct(self.de(), "", fields, visitor)
    }
}

impl MapEnum<'_> {
    fn de(&self) -> NodeDeserializer<'_> {
        NodeDeserializer::new(self.value, self.mode)
    }
}

macro_rules! neutral_methods {
    ($($method:ident $visit:ident $value:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
            visitor.$visit($value)
        }
    )*};
}

/// Neutral values for lenient checking: what an expression stands for
/// before it has a value. Options are `None` here (unlike an option written
/// as an expression, which is `Some`), so recursive types end.
struct Neutral;

impl<'de> de::Deserializer<'de> for Neutral {
    type Error = YamlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_bool(false)
    }

    neutral_methods! {
        deserialize_i8 visit_i8 0;
        deserialize_i16 visit_i16 0;
        deserialize_i32 visit_i32 0;
        deserialize_i64 visit_i64 0;
        deserialize_i128 visit_i128 0;
        deserialize_u8 visit_u8 0;
        deserialize_u16 visit_u16 0;
        deserialize_u32 visit_u32 0;
        deserialize_u64 visit_u64 0;
        deserialize_u128 visit_u128 0;
        deserialize_f32 visit_f32 0.0;
        deserialize_f64 visit_f64 0.0;
        deserialize_char visit_char ' ';
        deserialize_str visit_str "";
        deserialize_string visit_str "";
        deserialize_bytes visit_bytes b"";
        deserialize_byte_buf visit_bytes b"";
        deserialize_identifier visit_str "";
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_none()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_seq(NeutralSeq(0))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_seq(NeutralSeq(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_seq(NeutralSeq(len))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_map(NeutralStruct(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_map(NeutralStruct(fields))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match variants.first() {
            Some(first) => visitor.visit_enum(NeutralEnum(first)),
            None => Err(YamlError::custom("an enum with no variants has no value")),
        }
    }
}

/// `len` neutral items (a tuple needs all of its items).
struct NeutralSeq(usize);

impl<'de> SeqAccess<'de> for NeutralSeq {
    type Error = YamlError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, YamlError> {
        if self.0 == 0 {
            return Ok(None);
        }
        self.0 -= 1;
        seed.deserialize(Neutral).map(Some)
    }
}

/// Every field of a struct, each with a neutral value.
struct NeutralStruct(&'static [&'static str]);

impl<'de> MapAccess<'de> for NeutralStruct {
    type Error = YamlError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, YamlError> {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(None);
        };
        self.0 = rest;
        seed.deserialize(first.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, YamlError> {
        seed.deserialize(Neutral)
    }
}

/// An enum's first variant, with neutral contents.
struct NeutralEnum(&'static str);

impl<'de> EnumAccess<'de> for NeutralEnum {
    type Error = YamlError;
    type Variant = Neutral;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Neutral), YamlError> {
        Ok((seed.deserialize(self.0.into_deserializer())?, Neutral))
    }
}

impl<'de> VariantAccess<'de> for Neutral {
    type Error = YamlError;

    fn unit_variant(self) -> Result<(), YamlError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, YamlError> {
        seed.deserialize(Neutral)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_seq(NeutralSeq(len))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        visitor.visit_map(NeutralStruct(fields))
    }
}

/// "one of `a`, `b`" (or "`a`" alone).
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing".to_string(),
        1 => quoted[0].clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

fn expected_keys(expected: &[&str]) -> String {
    if expected.is_empty() {
        "no keys are allowed here".to_string()
    } else {
        format!("expected {}", one_of(expected))
    }
}

/// A serde value in words.
fn unexpected(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(b) => format!("a boolean `{b}`"),
        Unexpected::Unsigned(n) => format!("a number `{n}`"),
        Unexpected::Signed(n) => format!("a number `{n}`"),
        Unexpected::Float(n) => format!("a number `{n}`"),
        Unexpected::Char(c) => format!("a character `{c}`"),
        Unexpected::Str(s) => format!("a string {}", shorten(s)),
        Unexpected::Bytes(_) => "bytes".to_string(),
        Unexpected::Unit => "an empty value".to_string(),
        Unexpected::Option => "an optional value".to_string(),
        Unexpected::NewtypeStruct | Unexpected::NewtypeVariant => "a value".to_string(),
        Unexpected::Seq | Unexpected::TupleVariant => "a list".to_string(),
        Unexpected::Map | Unexpected::StructVariant => "a mapping".to_string(),
        Unexpected::Enum | Unexpected::UnitVariant => "a choice".to_string(),
        Unexpected::Other(s) => (*s).to_string(),
    }
}

/// What a serde visitor expects, in words: its own words, except for the
/// Rust type names serde's built-in visitors use.
fn expected(e: &dyn de::Expected) -> String {
    let text = e.to_string();
    match text.as_str() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" => {
            "a whole number".to_string()
        }
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "a mapping".to_string(),
        _ if text.starts_with("struct ") || text.starts_with("map") => "a mapping".to_string(),
        _ if text.starts_with("a tuple of size ") => {
            format!("{} items", &text["a tuple of size ".len()..])
        }
        _ if text.starts_with("tuple") => "a list".to_string(),
        _ => text,
    }
}

impl de::Error for YamlError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        YamlError {
            pos: None,
            message: msg.to_string(),
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        YamlError::custom(format!(
            "expected {}, found {}",
            expected(exp),
            unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        YamlError::custom(format!(
            "invalid value {} (expected {})",
            unexpected(&unexp),
            expected(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        YamlError::custom(format!(
            "expected {}, found {len} item{}",
            expected(exp),
            plural(len)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        YamlError::custom(format!(
            "unknown value `{variant}` (expected {})",
            one_of(expected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        YamlError::custom(format!(
            "unknown key `{field}` ({})",
            expected_keys(expected)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        YamlError::custom(format!("missing key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        YamlError::custom(format!("key `{field}` is given twice"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn strict<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
        from_node(&parse(text).expect("test YAML parses"), Mode::Strict)
    }

    fn lenient<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
        from_node(&parse(text).expect("test YAML parses"), Mode::Lenient)
    }

    fn err<T: DeserializeOwned + fmt::Debug>(text: &str) -> String {
        strict::<T>(text).unwrap_err().to_string()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Step {
        id: String,
        #[serde(default)]
        all_platforms: bool,
        retries: Option<u32>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pipeline {
        name: String,
        steps: Vec<Step>,
    }

    #[test]
    fn nodes_know_their_positions() {
        let doc = parse("name: demo\nsteps:\n  - id: a\n    tags: [x, 'y']\n").unwrap();
        assert_eq!(doc.pos, Pos::new(1, 1));
        assert_eq!(doc.get("name").unwrap().pos, Pos::new(1, 7));
        let steps = doc.get("steps").unwrap();
        assert_eq!(steps.pos, Pos::new(3, 3));
        let NodeKind::Seq(items) = &steps.kind else {
            panic!("steps is a list")
        };
        let tags = items[0].get("tags").unwrap();
        let NodeKind::Seq(tags) = &tags.kind else {
            panic!("tags is a list")
        };
        assert_eq!(tags[1].pos, Pos::new(4, 15));
        assert_eq!(
            tags[1].kind,
            NodeKind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
        assert_eq!(items[0].get("id").unwrap().as_str(), Some("a"));
        assert!(doc.get("missing").is_none());
    }

    #[test]
    fn empty_text_is_null_at_the_start() {
        for text in ["", "# nothing\n"] {
            let node = parse(text).unwrap();
            assert_eq!(node.kind, NodeKind::Null, "{text:?}");
            assert_eq!(node.pos, Pos::new(1, 1));
        }
    }

    #[test]
    fn syntax_errors_carry_the_parser_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(2, 2)));
        let e = parse("a:\n  b: 1\n c: 2\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(3, 2)));
        assert!(e.to_string().starts_with("3:2: "), "{e}");
    }

    #[test]
    fn one_document_only() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(2, 1)));
        assert!(e.message.contains("second YAML document"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_at_the_second() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.to_string(), "3:1: duplicate key `a` (first at 1:1)");
        let e = parse("x: {k: 1, k: 2}\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(1, 11)));
    }

    #[test]
    fn keys_must_be_scalars() {
        let e = parse("? [a, b]\n: 1\n").unwrap_err();
        assert!(e.message.contains("key must be text"), "{e}");
        assert_eq!(e.pos, Some(Pos::new(1, 3)));
    }

    #[test]
    fn tags_other_than_str_are_refused() {
        let node = parse("a: !!str 3\n").unwrap();
        assert_eq!(node.to_json(), json!({"a": "3"}));
        let e = parse("a: !!int 3\n").unwrap_err();
        assert!(e.message.contains("`!!int`"), "{e}");
        assert_eq!(e.pos, Some(Pos::new(1, 4)));
        assert!(parse("a: !custom {b: 1}\n").is_err());
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let doc = parse("base: &b {image: alpine, tag: '3'}\nother: *b\n").unwrap();
        assert_eq!(
            doc.to_json(),
            json!({"base": {"image": "alpine", "tag": "3"}, "other": {"image": "alpine", "tag": "3"}})
        );
        assert_eq!(doc.get("other").unwrap().pos, Pos::new(2, 8));
        let e = parse("a: *nope\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(1, 4)));
    }

    #[test]
    fn alias_bombs_are_capped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(parse(&text).unwrap_err().pos.is_some());
        let mut text = String::new();
        for depth in 0..300 {
            text.push_str(&format!("{}k:\n", " ".repeat(depth)));
        }
        let e = parse(&text).unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(201, 201)));
        assert!(e.message.contains("nest deeper"), "{e}");
    }

    #[test]
    fn multi_line_strings() {
        #[derive(Deserialize)]
        struct Run {
            script: String,
            folded: String,
        }
        let run: Run = strict("script: |\n  echo one\n  echo two\nfolded: >\n  a\n  b\n").unwrap();
        assert_eq!(run.script, "echo one\necho two\n");
        assert_eq!(run.folded, "a b\n");
        let node = parse("n: |\n  3\n").unwrap();
        assert_eq!(node.to_json(), json!({"n": "3\n"}));
    }

    #[test]
    fn typed_structs_with_nested_lists() {
        let p: Pipeline = strict(
            "name: demo\nsteps:\n  - id: a\n    tags: [x, y]\n  - id: b\n    all-platforms: true\n    retries: 3\n",
        )
        .unwrap();
        assert_eq!(
            p,
            Pipeline {
                name: "demo".into(),
                steps: vec![
                    Step {
                        id: "a".into(),
                        all_platforms: false,
                        retries: None,
                        tags: vec!["x".into(), "y".into()],
                    },
                    Step {
                        id: "b".into(),
                        all_platforms: true,
                        retries: Some(3),
                        tags: vec![],
                    },
                ],
            }
        );
    }

    #[test]
    fn type_errors_point_at_the_innermost_node() {
        let text = "name: demo\nsteps:\n  - id: a\n  - id: b\n    retries: many\n";
        assert_eq!(
            err::<Pipeline>(text),
            "5:14: invalid value \"many\" for a number"
        );
        let text = "name: demo\nsteps:\n  - id: a\n    tags: [x, [y]]\n";
        assert_eq!(
            err::<Pipeline>(text),
            "4:15: expected a string, found a list"
        );
        assert_eq!(
            err::<Pipeline>("name: demo\nsteps: oops\n"),
            "2:8: expected a list, found a string \"oops\""
        );
        assert_eq!(
            err::<Pipeline>("name: [a]\nsteps: []\n"),
            "1:7: expected a string, found a list"
        );
        assert_eq!(
            err::<Pipeline>("name:\nsteps: []\n"),
            "1:5: expected a string, found an empty value"
        );
        assert_eq!(
            err::<Pipeline>("name: x\nsteps:\n  - all-platforms: yes\n    id: a\n"),
            "3:20: invalid value \"yes\" for true or false"
        );
    }

    #[test]
    fn missing_keys_point_at_their_mapping() {
        assert_eq!(
            err::<Pipeline>("name: demo\nsteps:\n  - tags: []\n"),
            "3:5: missing key `id`"
        );
    }

    #[test]
    fn unknown_keys_point_at_the_key_as_written() {
        let text = "name: demo\nsteps:\n  - id: a\n    all-platform: true\n";
        assert_eq!(
            err::<Pipeline>(text),
            "4:5: unknown key `all-platform` (expected one of `id`, `all_platforms`, `retries`, `tags`)"
        );
        assert_eq!(
            err::<Pipeline>("name: demo\nsteps: []\nextra: 1\n"),
            "3:1: unknown key `extra` (expected one of `name`, `steps`)"
        );
    }

    #[test]
    fn dashes_and_underscores_name_the_same_field() {
        for key in ["all-platforms", "all_platforms"] {
            let step: Step = strict(&format!("id: a\n{key}: true\n")).unwrap();
            assert!(step.all_platforms, "{key}");
        }
        let e = strict::<Step>("id: a\nall-platforms: true\nall_platforms: false\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(3, 1)));
        assert!(e.message.contains("name the same setting"), "{e}");
    }

    #[test]
    fn plain_maps_keep_keys_verbatim() {
        let m: HashMap<String, String> = strict("a-b: 1\nc_d: x\n").unwrap();
        assert_eq!(m["a-b"], "1");
        assert_eq!(m["c_d"], "x");
        let m: BTreeMap<String, u16> = strict("x-y: 8080\n").unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [("x-y".to_string(), 8080)]
        );
        let m: BTreeMap<u8, bool> = strict("1: true\n2: false\n").unwrap();
        assert!(!m[&2]);
        assert_eq!(
            err::<HashMap<String, u8>>("a: 1\nb: 300\n"),
            "2:4: number 300 is out of range (from 0 to 255)"
        );
    }

    #[test]
    fn core_schema_typing() {
        let doc = parse(
            "t: true\nf: False\nn1: null\nn2: ~\nn3:\ni: 42\nneg: -7\nhex: 0x1f\noct: 0o17\n\
             fl: 1.5\nexp: 1e3\ninf: .inf\ns: yes\nv: 1.10.2\nq: '42'\nqt: \"true\"\n",
        )
        .unwrap();
        let want = json!({
            "t": true, "f": false, "n1": null, "n2": null, "n3": null,
            "i": 42, "neg": -7, "hex": 31, "oct": 15, "fl": 1.5, "exp": 1000.0,
            "inf": ".inf", "s": "yes", "v": "1.10.2", "q": "42", "qt": "true",
        });
        assert_eq!(doc.to_json(), want);
        let any: Value = from_node(&doc, Mode::Strict).unwrap();
        let mut want_any = want;
        want_any["inf"] = Value::Null;
        assert_eq!(
            any["inf"],
            Value::Null,
            "serde_json's Value turns inf into null"
        );
        assert_eq!(any, want_any);
    }

    #[test]
    fn typed_requests_read_the_text_whatever_its_quoting() {
        #[derive(Deserialize)]
        struct T {
            port: u64,
            ratio: f64,
            on: bool,
            version: String,
            count: String,
        }
        let t: T = strict("port: \"8080\"\nratio: '0.5'\non: 'true'\nversion: 1.10\ncount: 007\n")
            .unwrap();
        assert_eq!(t.port, 8080);
        assert_eq!(t.ratio, 0.5);
        assert!(t.on);
        assert_eq!(t.version, "1.10");
        assert_eq!(t.count, "007");
        assert_eq!(
            err::<HashMap<String, u32>>("a: 1.5\n"),
            "1:4: invalid value \"1.5\" for a whole number"
        );
        assert_eq!(
            err::<HashMap<String, i8>>("a: -129\n"),
            "1:4: number -129 is out of range (from -128 to 127)"
        );
        let f: HashMap<String, f32> = strict("a: 3\n").unwrap();
        assert_eq!(f["a"], 3.0);
        let c: HashMap<String, char> = strict("a: x\n").unwrap();
        assert_eq!(c["a"], 'x');
    }

    #[test]
    fn unit_and_tuples() {
        let t: (u8, String) = strict("[1, two]").unwrap();
        assert_eq!(t, (1, "two".to_string()));
        let e = strict::<(u8, u8)>("[1, 2, 3]").unwrap_err();
        assert_eq!(e.to_string(), "1:1: expected 2 items, found 3");
        let e = strict::<(u8, u8)>("[1]").unwrap_err();
        assert_eq!(e.to_string(), "1:1: expected 2 items, found 1 item");
        strict::<()>("~").unwrap();
        assert!(strict::<()>("x").is_err());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Source {
        Local,
        Registry(String),
        Archive { path: String, gzip: Option<bool> },
    }

    #[test]
    fn enums_as_a_name_or_a_one_key_mapping() {
        assert_eq!(strict::<Source>("local").unwrap(), Source::Local);
        assert_eq!(strict::<Source>("local:").unwrap(), Source::Local);
        assert_eq!(
            strict::<Source>("registry: docker.io/library/alpine").unwrap(),
            Source::Registry("docker.io/library/alpine".into())
        );
        assert_eq!(
            strict::<Source>("archive:\n  path: a.tar\n").unwrap(),
            Source::Archive {
                path: "a.tar".into(),
                gzip: None
            }
        );
        assert_eq!(
            err::<Source>("remote: x\n"),
            "1:1: unknown value `remote` (expected one of `local`, `registry`, `archive`)"
        );
    }

    #[test]
    fn enum_errors() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            src: Source,
        }
        assert_eq!(
            err::<S>("src:\n  remote: x\n"),
            "2:3: unknown value `remote` (expected one of `local`, `registry`, `archive`)"
        );
        assert_eq!(
            err::<S>("src: remote\n"),
            "1:6: unknown value `remote` (expected one of `local`, `registry`, `archive`)"
        );
        assert_eq!(
            err::<S>("src: registry\n"),
            "1:6: `registry` needs settings: write it as `registry: …`"
        );
        assert_eq!(
            err::<S>("src: {local: 1}\n"),
            "1:14: `local` takes no value, found a number `1`"
        );
        assert_eq!(
            err::<S>("src:\n  archive:\n    path: x\n    gzip: maybe\n"),
            "4:11: invalid value \"maybe\" for true or false"
        );
        assert!(err::<S>("src: {local: , archive: {path: x}}\n").contains("single key"));
    }

    #[test]
    fn untagged_enums_go_through_any() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(untagged)]
        enum Platforms {
            All(bool),
            Some(Vec<String>),
            One(String),
        }
        assert_eq!(strict::<Platforms>("true").unwrap(), Platforms::All(true));
        assert_eq!(
            strict::<Platforms>("[linux/amd64]").unwrap(),
            Platforms::Some(vec!["linux/amd64".into()])
        );
        assert_eq!(
            strict::<Platforms>("linux/arm64").unwrap(),
            Platforms::One("linux/arm64".into())
        );
        let e = strict::<Platforms>("\n\n  {a: 1}").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(3, 3)));
    }

    #[test]
    fn serde_attributes_default_option_flatten() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Common {
            retries: Option<u32>,
            #[serde(default)]
            quiet: bool,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Job {
            id: String,
            #[serde(flatten)]
            common: Common,
            #[serde(flatten)]
            rest: HashMap<String, Value>,
        }
        let job: Job = strict("id: a\nretries: 2\nextra-key: [1]\n").unwrap();
        assert_eq!(job.id, "a");
        assert_eq!(
            job.common,
            Common {
                retries: Some(2),
                quiet: false
            }
        );
        assert_eq!(job.rest["extra-key"], json!([1]));
        let e = strict::<Job>("id: a\nretries: lots\n").unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos::new(1, 1)),
            "flattened errors point at the mapping"
        );

        #[derive(Debug, Deserialize, PartialEq, Default)]
        #[serde(default, deny_unknown_fields)]
        struct Defaults {
            jobs: u8,
            name: Option<String>,
        }
        assert_eq!(strict::<Defaults>("{}").unwrap(), Defaults::default());
        assert_eq!(
            strict::<Defaults>("name: x").unwrap(),
            Defaults {
                jobs: 0,
                name: Some("x".into())
            }
        );
        assert_eq!(strict::<Option<Defaults>>("~").unwrap(), None);
        assert!(err::<Defaults>("job: 1").contains("unknown key `job`"));
    }

    #[test]
    fn errors_after_deserializing_take_the_value_position() {
        fn even<'de, D: de::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
            let n = u32::deserialize(d)?;
            if n % 2 == 0 {
                Ok(n)
            } else {
                Err(de::Error::custom(format!("{n} is odd")))
            }
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct E {
            #[serde(deserialize_with = "even")]
            n: u32,
        }
        assert_eq!(err::<E>("\nn: 3\n"), "2:4: 3 is odd");
    }

    #[test]
    fn lenient_mode_gives_neutral_values_for_expressions() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Inner {
            a: u8,
            b: String,
            c: Option<Box<Inner>>,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct All {
            flag: bool,
            int: i64,
            float: f64,
            list: Vec<String>,
            map: HashMap<String, String>,
            inner: Inner,
            opt: Option<u32>,
            kind: Source,
            text: String,
        }
        let text = "flag: ${{ vars.f }}\nint: ${{ vars.i }}\nfloat: '${{ vars.x }}'\n\
                    list: ${{ vars.l }}\nmap: ${{ vars.m }}\ninner: ${{ vars.s }}\n\
                    opt: ${{ vars.o }}\nkind: ${{ vars.k }}\ntext: v${{ vars.t }}\n";
        let all: All = lenient(text).unwrap();
        assert_eq!(
            all,
            All {
                flag: false,
                int: 0,
                float: 0.0,
                list: vec![],
                map: HashMap::new(),
                inner: Inner {
                    a: 0,
                    b: String::new(),
                    c: None
                },
                opt: Some(0),
                kind: Source::Local,
                text: "v${{ vars.t }}".into(),
            }
        );
        assert_eq!(
            strict::<All>(text).unwrap_err().to_string(),
            "1:7: invalid value \"${{ vars.f }}\" for true or false"
        );
        let l: Vec<u8> = lenient("[1, '${{ vars.n }}']").unwrap();
        assert_eq!(l, [1, 0]);
        let e = lenient::<Vec<u8>>("[1, x]").unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos::new(1, 5)),
            "lenient only forgives expressions"
        );
    }

    #[test]
    fn json_round_trip() {
        let value = json!({
            "name": "demo", "n": 3, "neg": -2, "f": 2.5, "on": true, "off": null,
            "quoted-number": "42", "list": [1, "two", [3], {"k": "v"}],
        });
        let node = Node::from_json(&value, Pos::new(7, 9));
        assert_eq!(node.pos, Pos::new(7, 9));
        assert_eq!(node.get("list").unwrap().pos, Pos::new(7, 9));
        assert_eq!(
            node.get("quoted-number").unwrap().kind,
            NodeKind::Scalar {
                text: "42".into(),
                quoted: true
            }
        );
        assert_eq!(node.to_json(), value);
        let port: HashMap<String, Value> = from_node(&node, Mode::Strict).unwrap();
        assert_eq!(port["f"], json!(2.5));
        let n: u64 = from_node(node.get("quoted-number").unwrap(), Mode::Strict).unwrap();
        assert_eq!(n, 42);
    }

    #[test]
    fn error_display() {
        let e = YamlError::at(Pos::new(3, 4), "boom");
        assert_eq!(e.to_string(), "3:4: boom");
        let e = YamlError::custom("no place");
        assert_eq!(e.to_string(), "no place");
        assert_eq!(e.or_at(Pos::new(1, 2)).pos, Some(Pos::new(1, 2)));
        assert_eq!(
            YamlError::at(Pos::new(5, 5), "x").or_at(Pos::new(1, 1)).pos,
            Some(Pos::new(5, 5))
        );
    }
}
