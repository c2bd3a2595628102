//! `${{ … }}` expressions in pipeline values, in the manner of GitHub
//! Actions: templates of literal text and expressions over `vars`, `env`,
//! `steps` and `item`, evaluated to JSON values.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := eq ( "&&" eq )*
//! eq      := cmp ( ( "==" | "!=" ) cmp )*
//! cmp     := unary ( ( "<" | "<=" | ">" | ">=" ) unary )*
//! unary   := "!" unary | postfix
//! postfix := primary ( "." NAME | "[" INTEGER "]" | "[" STRING "]" )*
//! primary := STRING | NUMBER | true | false | null | "(" expr ")"
//!          | FUNCTION "(" [ expr ( "," expr )* ] ")" | ROOT
//! ROOT    := vars | env | steps | item
//! NAME    := [A-Za-z_][A-Za-z0-9_-]*        (so `steps.mirror-apps` is one name)
//! STRING  := 'text' with '' for a quote
//! ```
//!
//! There is no arithmetic, which is what lets names contain `-`.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Number, Value};

/// A text of literal parts and `${{ … }}` expressions, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expression),
}

/// One `${{ … }}`.
#[derive(Debug, Clone, PartialEq)]
struct Expression {
    /// The text between the braces, trimmed, for error messages.
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    /// A path from a root, with the byte offset where it starts.
    Path(Path, usize),
    /// A property or index of a value that is not a path (`fromJSON(x).a`).
    Access(Box<Expr>, Segment),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Length,
    Contains,
    StartsWith,
    EndsWith,
    Join,
    ToJson,
    FromJson,
}

const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("length", Func::Length, 1, 1),
    ("contains", Func::Contains, 2, 2),
    ("startsWith", Func::StartsWith, 2, 2),
    ("endsWith", Func::EndsWith, 2, 2),
    ("join", Func::Join, 1, 2),
    ("toJSON", Func::ToJson, 1, 1),
    ("fromJSON", Func::FromJson, 1, 1),
];

impl Func {
    fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, f, _, _)| *f == self)
            .map_or("?", |(name, ..)| name)
    }
}

const ROOTS: &[&str] = &["vars", "env", "steps", "item"];

/// Operators, parentheses, calls and accesses one expression may hold. The
/// tree they make is walked recursively (parsed, checked, evaluated and
/// dropped), so its depth must stay far from any thread's stack.
const MAX_OPERATORS: usize = 256;

/// How deep parentheses, calls and `!` may nest: each level is several
/// parser frames.
const MAX_NESTING: usize = 32;

/// A value named from a root: `steps.mirror-apps.outputs.copied`, `item[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// `vars`, `env`, `steps` or `item`.
    pub root: String,
    /// Properties and indexes after the root, in order.
    pub segments: Vec<Segment>,
}

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `.name` or `['name']`.
    Key(String),
    /// `[0]`.
    Index(usize),
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for segment in &self.segments {
            match segment {
                Segment::Key(k) if is_name(k) => write!(f, ".{k}")?,
                Segment::Key(k) => write!(f, "['{}']", k.replace('\'', "''"))?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A template that does not parse: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Byte offset into the template text of the offending token (of the
    /// `${{` for an unclosed one), so a caller can turn it into a line and column.
    pub offset: usize,
    /// What is wrong, as one line.
    pub message: String,
}

impl ExprError {
    fn new(offset: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            offset,
            message: message.into(),
        }
    }
}

/// An expression that parsed but could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("in `${{{{ {expression} }}}}`: {message}")]
pub struct EvalError {
    /// The expression's text, between `${{` and `}}`.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

/// What expressions can see.
pub struct Scope<'a> {
    /// The pipeline's variables (`vars.NAME`).
    pub vars: &'a Map<String, Value>,
    /// Environment lookup (`env.NAME`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Steps run so far, by id (`steps.ID.…`).
    pub steps: &'a Map<String, Value>,
    /// The current item of a step that runs once per item (`item`).
    pub item: Option<&'a Value>,
}

/// Whether `text` holds a `${{`, i.e. needs [`Template::parse`].
pub fn contains_expression(text: &str) -> bool {
    text.contains("${{")
}

/// Truthiness for `!`, `&&`, `||` and conditions: null, false, 0, "", [] and
/// {} are false, everything else true.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl Template {
    /// Parses `text`, which may hold any number of `${{ … }}`.
    ///
    /// # Errors
    /// The first syntax error, with the byte offset of the offending token.
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(found) = text[rest..].find("${{") {
            let open = rest + found;
            if open > rest {
                parts.push(Part::Text(text[rest..open].to_string()));
            }
            let mut parser = ExprParser::new(text, open)?;
            if parser.tok == Tok::Close {
                return Err(ExprError::new(open, "empty `${{ }}`"));
            }
            let expr = parser.expr()?;
            if parser.tok != Tok::Close {
                return Err(ExprError::new(
                    parser.at,
                    format!("expected `}}}}`, found {}", parser.tok.describe()),
                ));
            }
            parts.push(Part::Expr(Expression {
                source: text[open + 3..parser.at].trim().to_string(),
                expr,
            }));
            rest = parser.at + 2;
        }
        if rest < text.len() || parts.is_empty() {
            parts.push(Part::Text(text[rest..].to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether the template has no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Every path the template reads, in order of appearance, each once.
    pub fn references(&self) -> Vec<Path> {
        self.located_references()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }

    /// Like [`Template::references`], each with the byte offset in the
    /// template text where it is first written (to say where a bad one is).
    pub fn located_references(&self) -> Vec<(Path, usize)> {
        let mut found: Vec<(Path, usize)> = Vec::new();
        for part in &self.parts {
            if let Part::Expr(e) = part {
                e.expr.collect_paths(&mut found);
            }
        }
        found
    }

    /// Evaluates the template. A template that is one expression (with
    /// nothing but whitespace around it) gives the expression's value as is;
    /// any other gives a string, with strings inserted as they are, numbers
    /// and booleans as text, null as nothing, lists and objects as compact JSON.
    ///
    /// # Errors
    /// An unknown step id, `item` outside a per-item step, a comparison of
    /// values that cannot be ordered, a function given the wrong kind of value.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        if let Some(single) = self.single_expression() {
            return single.eval(scope);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => out.push_str(&to_text(&e.eval(scope)?)),
            }
        }
        Ok(Value::String(out))
    }

    fn single_expression(&self) -> Option<&Expression> {
        let mut single = None;
        for part in &self.parts {
            match part {
                Part::Text(t) if t.trim().is_empty() => {}
                Part::Text(_) => return None,
                Part::Expr(_) if single.is_some() => return None,
                Part::Expr(e) => single = Some(e),
            }
        }
        single
    }
}

/// A value as interpolated into text.
fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// A value's kind in words, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    Comma,
    Not,
    Cmp(Cmp),
    And,
    Or,
    /// `}}`, the end of the expression.
    Close,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("`{n}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Num(n) => format!("`{n}`"),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Not => "`!`".to_string(),
            Tok::Cmp(c) => format!("`{}`", c.symbol()),
            Tok::And => "`&&`".to_string(),
            Tok::Or => "`||`".to_string(),
            Tok::Close => "the end of the expression".to_string(),
        }
    }
}

/// Parses one expression, reading tokens up to its `}}`.
struct ExprParser<'a> {
    text: &'a str,
    /// Offset of the `${{`, for "unclosed" errors.
    open: usize,
    /// Where the lexer reads next.
    next: usize,
    /// The current token and its offset.
    tok: Tok,
    at: usize,
    /// Operators and other nodes made so far, against [`MAX_OPERATORS`].
    operators: usize,
    /// Parentheses, calls and `!` open now, against [`MAX_NESTING`].
    nesting: usize,
}

impl<'a> ExprParser<'a> {
    fn new(text: &'a str, open: usize) -> Result<ExprParser<'a>, ExprError> {
        let mut p = ExprParser {
            text,
            open,
            next: open + 3,
            tok: Tok::Close,
            at: open,
            operators: 0,
            nesting: 0,
        };
        p.advance()?;
        Ok(p)
    }

    fn advance(&mut self) -> Result<(), ExprError> {
        let (tok, at) = self.lex()?;
        self.tok = tok;
        self.at = at;
        Ok(())
    }

    fn lex(&mut self) -> Result<(Tok, usize), ExprError> {
        let bytes = self.text.as_bytes();
        while self.next < bytes.len() && bytes[self.next].is_ascii_whitespace() {
            self.next += 1;
        }
        let start = self.next;
        let Some(&c) = bytes.get(start) else {
            return Err(ExprError::new(
                self.open,
                "unclosed `${{` (no `}}` after it)",
            ));
        };
        let two = bytes.get(start + 1).copied();
        let (tok, len) = match (c, two) {
            (b'}', Some(b'}')) => (Tok::Close, 2),
            (b'=', Some(b'=')) => (Tok::Cmp(Cmp::Eq), 2),
            (b'!', Some(b'=')) => (Tok::Cmp(Cmp::Ne), 2),
            (b'<', Some(b'=')) => (Tok::Cmp(Cmp::Le), 2),
            (b'>', Some(b'=')) => (Tok::Cmp(Cmp::Ge), 2),
            (b'&', Some(b'&')) => (Tok::And, 2),
            (b'|', Some(b'|')) => (Tok::Or, 2),
            (b'!', _) => (Tok::Not, 1),
            (b'<', _) => (Tok::Cmp(Cmp::Lt), 1),
            (b'>', _) => (Tok::Cmp(Cmp::Gt), 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b'.', _) => (Tok::Dot, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'=', _) => return Err(ExprError::new(start, "use `==` to compare")),
            (b'&', _) => return Err(ExprError::new(start, "use `&&` for \"and\"")),
            (b'|', _) => return Err(ExprError::new(start, "use `||` for \"or\"")),
            (b'"', _) => {
                return Err(ExprError::new(start, "strings take single quotes: 'text'"));
            }
            (b'\'', _) => return self.string(start),
            (b'0'..=b'9', _) => return self.number(start),
            (b'-', Some(b'0'..=b'9')) => return self.number(start),
            (c, _) if c.is_ascii_alphabetic() || c == b'_' => {
                let len = bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                    .count();
                (Tok::Name(self.text[start..start + len].to_string()), len)
            }
            _ => {
                let ch = self.text[start..].chars().next().unwrap_or_default();
                return Err(ExprError::new(
                    start,
                    format!("unexpected character `{ch}`"),
                ));
            }
        };
        self.next = start + len;
        Ok((tok, start))
    }

    fn string(&mut self, start: usize) -> Result<(Tok, usize), ExprError> {
        let mut value = String::new();
        let mut i = start + 1;
        loop {
            let Some(end) = self.text[i..].find('\'') else {
                return Err(ExprError::new(start, "unclosed string (no closing `'`)"));
            };
            value.push_str(&self.text[i..i + end]);
            i += end + 1;
            if self.text[i..].starts_with('\'') {
                value.push('\'');
                i += 1;
            } else {
                self.next = i;
                return Ok((Tok::Str(value), start));
            }
        }
    }

    fn number(&mut self, start: usize) -> Result<(Tok, usize), ExprError> {
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut end = start + usize::from(bytes[start] == b'-');
        end += digits(end);
        let mut integer = true;
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            integer = false;
            end += 1 + digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            let exp = digits(end + 1 + sign);
            if exp > 0 {
                integer = false;
                end += 1 + sign + exp;
            }
        }
        let text = &self.text[start..end];
        if bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        {
            let word: String = self.text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                .collect();
            return Err(ExprError::new(start, format!("invalid number `{word}`")));
        }
        let number = if integer {
            text.parse::<i64>()
                .map(Number::from)
                .ok()
                .or_else(|| text.parse::<u64>().ok().map(Number::from))
        } else {
            None
        }
        .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64));
        let Some(number) = number else {
            return Err(ExprError::new(start, format!("invalid number `{text}`")));
        };
        self.next = end;
        Ok((Tok::Num(number), start))
    }

    fn expect(&mut self, tok: Tok) -> Result<(), ExprError> {
        if self.tok == tok {
            return self.advance();
        }
        Err(ExprError::new(
            self.at,
            format!("expected {}, found {}", tok.describe(), self.tok.describe()),
        ))
    }

    /// Counts one more operator (or parenthesis, call, access).
    fn operator(&mut self) -> Result<(), ExprError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(ExprError::new(
                self.at,
                format!(
                    "the expression is too complex: more than {MAX_OPERATORS} operators, parentheses and calls"
                ),
            ));
        }
        Ok(())
    }

    /// Parses what `inner` parses one nesting level deeper.
    fn nested<T>(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        if self.nesting >= MAX_NESTING {
            return Err(ExprError::new(
                self.at,
                format!(
                    "the expression nests too deep: more than {MAX_NESTING} levels of parentheses, calls and `!`"
                ),
            ));
        }
        self.nesting += 1;
        let out = inner(self);
        self.nesting -= 1;
        out
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.tok == Tok::Or {
            self.operator()?;
            self.advance()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.equality()?;
        while self.tok == Tok::And {
            self.operator()?;
            self.advance()?;
            left = Expr::And(Box::new(left), Box::new(self.equality()?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.comparison()?;
        while let Tok::Cmp(op @ (Cmp::Eq | Cmp::Ne)) = self.tok {
            self.operator()?;
            self.advance()?;
            left = Expr::Compare(op, Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        while let Tok::Cmp(op @ (Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge)) = self.tok {
            self.operator()?;
            self.advance()?;
            left = Expr::Compare(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.tok == Tok::Not {
            self.operator()?;
            let inner = self.nested(|p| {
                p.advance()?;
                p.unary()
            })?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let start = self.at;
        let mut expr = self.primary()?;
        loop {
            let segment = match self.tok {
                Tok::Dot => {
                    self.advance()?;
                    let Tok::Name(name) = &self.tok else {
                        return Err(ExprError::new(
                            self.at,
                            format!("expected a name after `.`, found {}", self.tok.describe()),
                        ));
                    };
                    let segment = Segment::Key(name.clone());
                    self.advance()?;
                    segment
                }
                Tok::LBracket => {
                    self.advance()?;
                    let segment = match &self.tok {
                        Tok::Str(s) => Segment::Key(s.clone()),
                        Tok::Num(n) if n.as_u64().is_some_and(|i| usize::try_from(i).is_ok()) => {
                            Segment::Index(
                                n.as_u64()
                                    .and_then(|i| usize::try_from(i).ok())
                                    .unwrap_or_default(),
                            )
                        }
                        other => {
                            return Err(ExprError::new(
                                self.at,
                                format!(
                                    "expected an index (0, 1, …) or a quoted key inside `[ ]`, found {}",
                                    other.describe()
                                ),
                            ));
                        }
                    };
                    self.advance()?;
                    self.expect(Tok::RBracket)?;
                    segment
                }
                _ => break,
            };
            expr = match expr {
                Expr::Path(mut path, at) => {
                    path.segments.push(segment);
                    Expr::Path(path, at)
                }
                other => {
                    self.operator()?;
                    Expr::Access(Box::new(other), segment)
                }
            };
        }
        if let Expr::Path(path, _) = &expr
            && path.root == "env"
            && path.segments.is_empty()
        {
            return Err(ExprError::new(
                start,
                "`env` needs a variable name, as in `env.HOME`",
            ));
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let at = self.at;
        let expr = match std::mem::replace(&mut self.tok, Tok::Close) {
            Tok::Num(n) => Expr::Literal(Value::Number(n)),
            Tok::Str(s) => Expr::Literal(Value::String(s)),
            Tok::LParen => {
                self.operator()?;
                let inner = self.nested(|p| {
                    p.advance()?;
                    p.expr()
                })?;
                if self.tok != Tok::RParen {
                    return Err(ExprError::new(
                        self.at,
                        format!("expected `)`, found {}", self.tok.describe()),
                    ));
                }
                inner
            }
            Tok::Name(name) => {
                self.advance()?;
                if self.tok == Tok::LParen {
                    return self.call(&name, at);
                }
                return match name.as_str() {
                    "true" => Ok(Expr::Literal(Value::Bool(true))),
                    "false" => Ok(Expr::Literal(Value::Bool(false))),
                    "null" => Ok(Expr::Literal(Value::Null)),
                    root if ROOTS.contains(&root) => Ok(Expr::Path(
                        Path {
                            root: name,
                            segments: Vec::new(),
                        },
                        at,
                    )),
                    _ => Err(ExprError::new(
                        at,
                        format!("unknown root `{name}` (use vars, env, steps or item)"),
                    )),
                };
            }
            other => {
                return Err(ExprError::new(
                    at,
                    format!("expected a value, found {}", other.describe()),
                ));
            }
        };
        self.advance()?;
        Ok(expr)
    }

    /// A function call; the current token is its `(`.
    fn call(&mut self, name: &str, at: usize) -> Result<Expr, ExprError> {
        let Some(&(_, func, min, max)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
            let known: Vec<&str> = FUNCTIONS.iter().map(|(n, ..)| *n).collect();
            return Err(ExprError::new(
                at,
                format!("unknown function `{name}` (known: {})", known.join(", ")),
            ));
        };
        self.operator()?;
        self.advance()?;
        let mut args = Vec::new();
        if self.tok != Tok::RParen {
            args.push(self.nested(Self::expr)?);
            while self.tok == Tok::Comma {
                self.advance()?;
                args.push(self.nested(Self::expr)?);
            }
        }
        if self.tok != Tok::RParen {
            return Err(ExprError::new(
                self.at,
                format!("expected `,` or `)`, found {}", self.tok.describe()),
            ));
        }
        self.advance()?;
        if args.len() < min || args.len() > max {
            let wanted = if min == max {
                format!("{min}")
            } else {
                format!("{min} or {max}")
            };
            return Err(ExprError::new(
                at,
                format!(
                    "`{name}` takes {wanted} argument{}, not {}",
                    if max == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        Ok(Expr::Call(func, args))
    }
}

impl Expr {
    fn collect_paths(&self, found: &mut Vec<(Path, usize)>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Path(path, at) => {
                if !found.iter().any(|(p, _)| p == path) {
                    found.push((path.clone(), *at));
                }
            }
            Expr::Access(inner, _) | Expr::Not(inner) => inner.collect_paths(found),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.collect_paths(found);
                b.collect_paths(found);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_paths(found)),
        }
    }
}

impl Expression {
    fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        self.expr.eval(scope).map_err(|message| EvalError {
            expression: self.source.clone(),
            message,
        })
    }
}

impl Expr {
    fn eval(&self, scope: &Scope<'_>) -> Result<Value, String> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Path(path, _) => lookup(path, scope)?,
            Expr::Access(inner, segment) => {
                let value = inner.eval(scope)?;
                walk(&value, std::slice::from_ref(segment))
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            Expr::Not(inner) => Value::Bool(!truthy(&inner.eval(scope)?)),
            Expr::And(a, b) => {
                let left = a.eval(scope)?;
                if truthy(&left) { b.eval(scope)? } else { left }
            }
            Expr::Or(a, b) => {
                let left = a.eval(scope)?;
                if truthy(&left) { left } else { b.eval(scope)? }
            }
            Expr::Compare(op, a, b) => {
                let (left, right) = (a.eval(scope)?, b.eval(scope)?);
                Value::Bool(compare(*op, &left, &right)?)
            }
            Expr::Call(func, args) => {
                let values = args
                    .iter()
                    .map(|a| a.eval(scope))
                    .collect::<Result<Vec<_>, _>>()?;
                call(*func, &values)?
            }
        })
    }
}

/// A path's value: null where a variable, variable of the environment or
/// property is missing; an error for an unknown step or a missing item.
fn lookup(path: &Path, scope: &Scope<'_>) -> Result<Value, String> {
    let (first, rest) = match path.segments.split_first() {
        Some((first, rest)) => (Some(first), rest),
        None => (None, &[][..]),
    };
    let found = match (path.root.as_str(), first) {
        ("vars", None) => return Ok(Value::Object(scope.vars.clone())),
        ("steps", None) => return Ok(Value::Object(scope.steps.clone())),
        ("vars", Some(Segment::Key(name))) => {
            scope.vars.get(name).and_then(|v| walk(v, rest)).cloned()
        }
        ("env", Some(Segment::Key(name))) => {
            let value = (scope.env)(name).map(Value::String);
            value.and_then(|v| walk(&v, rest).cloned())
        }
        ("steps", Some(Segment::Key(id))) => {
            let Some(step) = scope.steps.get(id) else {
                return Err(format!("unknown step `{id}`"));
            };
            walk(step, rest).cloned()
        }
        ("item", _) => {
            let Some(item) = scope.item else {
                return Err("`item` is only set in a step that runs once per item".to_string());
            };
            walk(item, &path.segments).cloned()
        }
        _ => None,
    };
    Ok(found.unwrap_or(Value::Null))
}

fn walk<'v>(mut value: &'v Value, segments: &[Segment]) -> Option<&'v Value> {
    for segment in segments {
        value = match (value, segment) {
            (Value::Object(map), Segment::Key(k)) => map.get(k)?,
            (Value::Array(items), Segment::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// JSON equality, except that numbers are equal by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn compare(op: Cmp, a: &Value, b: &Value) -> Result<bool, String> {
    let ordering = match op {
        Cmp::Eq => return Ok(json_eq(a, b)),
        Cmp::Ne => return Ok(!json_eq(a, b)),
        _ => match (a, b) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y)),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    let Some(ordering) = ordering else {
        return Err(format!(
            "`{}` compares two numbers or two strings, not {} and {}",
            op.symbol(),
            kind(a),
            kind(b)
        ));
    };
    Ok(match op {
        Cmp::Lt => ordering == Ordering::Less,
        Cmp::Le => ordering != Ordering::Greater,
        Cmp::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    })
}

/// A scalar's text for the string functions; lists and objects are refused.
fn scalar_text(func: Func, value: &Value) -> Result<String, String> {
    match value {
        Value::Array(_) | Value::Object(_) => {
            Err(format!("`{}` takes text, not {}", func.name(), kind(value)))
        }
        _ => Ok(to_text(value)),
    }
}

fn call(func: Func, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    Ok(match func {
        Func::Length => Value::from(match arg(0) {
            Value::Null => 0,
            Value::String(s) => s.chars().count(),
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            other => {
                return Err(format!(
                    "`length` takes a string, list or object, not {}",
                    kind(other)
                ));
            }
        }),
        Func::Contains => Value::Bool(match arg(0) {
            Value::Array(items) => items.iter().any(|v| json_eq(v, arg(1))),
            Value::Null => false,
            haystack @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                to_text(haystack).contains(&scalar_text(func, arg(1))?)
            }
            other => {
                return Err(format!(
                    "`contains` looks in a string or list, not {}",
                    kind(other)
                ));
            }
        }),
        Func::StartsWith => {
            Value::Bool(scalar_text(func, arg(0))?.starts_with(&scalar_text(func, arg(1))?))
        }
        Func::EndsWith => {
            Value::Bool(scalar_text(func, arg(0))?.ends_with(&scalar_text(func, arg(1))?))
        }
        Func::Join => {
            let separator = match args.get(1) {
                Some(sep) => scalar_text(func, sep)?,
                None => ",".to_string(),
            };
            Value::String(match arg(0) {
                Value::Array(items) => items
                    .iter()
                    .map(to_text)
                    .collect::<Vec<_>>()
                    .join(&separator),
                Value::Object(_) => return Err("`join` takes a list, not an object".to_string()),
                other => to_text(other),
            })
        }
        Func::ToJson => Value::String(arg(0).to_string()),
        Func::FromJson => match arg(0) {
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| format!("`fromJSON` was given invalid JSON: {e}"))?,
            other => return Err(format!("`fromJSON` takes a string, not {}", kind(other))),
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test scope must be an object"),
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// Evaluates `text` with fixed vars, steps and item.
    fn eval_with(text: &str, item: Option<&Value>) -> Result<Value, EvalError> {
        let vars = object(json!({
            "name": "demo",
            "count": 3,
            "ratio": 0.5,
            "on": true,
            "off": false,
            "nothing": null,
            "tags": ["a", "b", "c"],
            "empty": [],
            "nested": {"k-1": {"deep": [10, 20]}, "it's": "quoted"},
            "registry": "docker.io",
        }));
        let steps = object(json!({
            "mirror-apps": {"outputs": {"copied": 4, "names": ["x", "y"]}},
            "build_1": {"outputs": {}},
        }));
        let scope = Scope {
            vars: &vars,
            env: &env,
            steps: &steps,
            item,
        };
        Template::parse(text)
            .expect("test template parses")
            .eval(&scope)
    }

    fn eval(text: &str) -> Value {
        eval_with(text, None).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_err(text: &str) -> (usize, String) {
        let e = Template::parse(text).unwrap_err();
        (e.offset, e.message)
    }

    /// Found by fuzzing (tests/fuzz.rs, `pipelines`): deep parentheses, or
    /// a long chain of `||`, overflowed the stack while parsing.
    #[test]
    fn an_expression_too_deep_or_too_long_is_refused() {
        let deep = format!("${{{{ {}1 }}}}", "(".repeat(100_000));
        let (at, message) = parse_err(&deep);
        assert_eq!(at, 4 + MAX_NESTING, "{message}");
        assert!(
            message.contains("nests too deep: more than 32 levels"),
            "{message}"
        );
        let nots = format!("${{{{ {}true }}}}", "!".repeat(100_000));
        assert!(parse_err(&nots).1.contains("nests too deep"));
        let calls = format!("${{{{ {}1 }}}}", "length(".repeat(100_000));
        assert!(parse_err(&calls).1.contains("nests too deep"));
        let long = format!("${{{{ 1{} }}}}", " || 1".repeat(100_000));
        let (at, message) = parse_err(&long);
        assert!(
            message.contains("too complex: more than 256 operators"),
            "{message}"
        );
        assert_eq!(at, 4 + 1 + 5 * MAX_OPERATORS + 1);
        let within = format!("${{{{ {}1{} }}}}", "(".repeat(30), ")".repeat(30));
        assert_eq!(eval(&within), json!(1));
        let chain = format!("${{{{ 1{} }}}}", " || 1".repeat(MAX_OPERATORS));
        assert_eq!(eval(&chain), json!(1));
    }

    #[test]
    fn literal_templates() {
        let t = Template::parse("plain text }} here").unwrap();
        assert!(t.is_literal());
        assert!(t.references().is_empty());
        assert_eq!(eval("plain text"), json!("plain text"));
        assert_eq!(eval(""), json!(""));
        assert!(!Template::parse("${{ 1 }}").unwrap().is_literal());
        assert!(contains_expression("a ${{ b }}"));
        assert!(!contains_expression("a ${ b }"));
    }

    #[test]
    fn single_expressions_keep_their_type() {
        assert_eq!(eval("${{ vars.tags }}"), json!(["a", "b", "c"]));
        assert_eq!(eval("  ${{ vars.count }}\n"), json!(3));
        assert_eq!(eval("${{vars.on}}"), json!(true));
        assert_eq!(eval("${{ vars.nested['k-1'] }}"), json!({"deep": [10, 20]}));
        assert_eq!(eval("${{ vars.nothing }}"), Value::Null);
        assert_eq!(eval("${{ 1.5 }}"), json!(1.5));
        assert_eq!(eval("${{ -2 }}"), json!(-2));
    }

    #[test]
    fn mixed_templates_interpolate_text() {
        assert_eq!(
            eval("${{ vars.registry }}/${{ vars.name }}:v${{ vars.count }}"),
            json!("docker.io/demo:v3")
        );
        assert_eq!(
            eval("on=${{ vars.on }} none=[${{ vars.nothing }}] tags=${{ vars.tags }}"),
            json!("on=true none=[] tags=[\"a\",\"b\",\"c\"]")
        );
        assert_eq!(
            eval("${{ vars.nested['k-1'] }}!"),
            json!("{\"deep\":[10,20]}!")
        );
        assert_eq!(eval("${{ 1 }}${{ 2 }}"), json!("12"));
    }

    #[test]
    fn missing_values_are_null() {
        assert_eq!(eval("${{ vars.nope }}"), Value::Null);
        assert_eq!(eval("${{ vars.name.length }}"), Value::Null);
        assert_eq!(eval("${{ vars.tags[7] }}"), Value::Null);
        assert_eq!(eval("${{ vars.tags.first }}"), Value::Null);
        assert_eq!(eval("${{ env.NOT_SET }}"), Value::Null);
        assert_eq!(
            eval("${{ steps.mirror-apps.outputs.missing }}"),
            Value::Null
        );
        assert_eq!(eval("x${{ vars.nope }}y"), json!("xy"));
    }

    #[test]
    fn env_reads_through_the_closure() {
        assert_eq!(eval("${{ env.HOME }}"), json!("/root"));
        assert_eq!(eval("${{ env['HOME'] }}/.cache"), json!("/root/.cache"));
        assert_eq!(eval("${{ env.EMPTY || 'fallback' }}"), json!("fallback"));
    }

    #[test]
    fn steps_and_dashed_names() {
        assert_eq!(eval("${{ steps.mirror-apps.outputs.copied }}"), json!(4));
        assert_eq!(
            eval("${{ steps.mirror-apps.outputs.names[1] }}"),
            json!("y")
        );
        assert_eq!(eval("${{ steps.build_1.outputs }}"), json!({}));
        let e = eval_with("${{ steps.nope.outputs.x }}", None).unwrap_err();
        assert_eq!(e.expression, "steps.nope.outputs.x");
        assert_eq!(e.message, "unknown step `nope`");
        assert_eq!(
            e.to_string(),
            "in `${{ steps.nope.outputs.x }}`: unknown step `nope`"
        );
    }

    #[test]
    fn indexing() {
        assert_eq!(eval("${{ vars.tags[0] }}"), json!("a"));
        assert_eq!(eval("${{ vars.nested['k-1'].deep[1] }}"), json!(20));
        assert_eq!(eval("${{ vars.nested['it''s'] }}"), json!("quoted"));
        assert_eq!(eval("${{ vars['name'] }}"), json!("demo"));
        assert_eq!(eval("${{ fromJSON('{\"a\":[5]}').a[0] }}"), json!(5));
    }

    #[test]
    fn item() {
        let item = json!({"src": "alpine", "arch": ["amd64"]});
        assert_eq!(
            eval_with("${{ item.src }}:${{ item.arch[0] }}", Some(&item)).unwrap(),
            json!("alpine:amd64")
        );
        assert_eq!(eval_with("${{ item }}", Some(&item)).unwrap(), item);
        let e = eval_with("${{ item.src }}", None).unwrap_err();
        assert!(e.message.contains("once per item"), "{e}");
    }

    #[test]
    fn equality() {
        assert_eq!(eval("${{ vars.name == 'demo' }}"), json!(true));
        assert_eq!(eval("${{ vars.name != 'demo' }}"), json!(false));
        assert_eq!(eval("${{ vars.count == 3 }}"), json!(true));
        assert_eq!(eval("${{ vars.count == 3.0 }}"), json!(true));
        assert_eq!(eval("${{ vars.count == '3' }}"), json!(false));
        assert_eq!(eval("${{ vars.nothing == null }}"), json!(true));
        assert_eq!(eval("${{ vars.nope == null }}"), json!(true));
        assert_eq!(
            eval("${{ vars.tags == fromJSON('[\"a\",\"b\",\"c\"]') }}"),
            json!(true)
        );
        assert_eq!(eval("${{ 'Demo' == 'demo' }}"), json!(false));
    }

    #[test]
    fn ordering() {
        assert_eq!(eval("${{ vars.count < 4 }}"), json!(true));
        assert_eq!(eval("${{ vars.count <= 3 }}"), json!(true));
        assert_eq!(eval("${{ vars.count > 3 }}"), json!(false));
        assert_eq!(eval("${{ vars.count >= 3 }}"), json!(true));
        assert_eq!(eval("${{ vars.ratio < 1 }}"), json!(true));
        assert_eq!(eval("${{ 'abc' < 'abd' }}"), json!(true));
        assert_eq!(eval("${{ 'b' >= 'a' }}"), json!(true));
        let e = eval_with("${{ vars.count < '4' }}", None).unwrap_err();
        assert_eq!(
            e.message,
            "`<` compares two numbers or two strings, not a number and a string"
        );
    }

    #[test]
    fn logic_short_circuits_and_yields_the_deciding_operand() {
        assert_eq!(eval("${{ vars.name && vars.count }}"), json!(3));
        assert_eq!(eval("${{ vars.nothing && vars.count }}"), Value::Null);
        assert_eq!(eval("${{ vars.nope || 'default' }}"), json!("default"));
        assert_eq!(eval("${{ vars.name || 'default' }}"), json!("demo"));
        // The right side is not evaluated, so an unknown step there is no error.
        assert_eq!(eval("${{ vars.off && steps.nope.x }}"), json!(false));
        assert_eq!(eval("${{ vars.on || steps.nope.x }}"), json!(true));
        assert!(eval_with("${{ vars.on && steps.nope.x }}", None).is_err());
        assert_eq!(eval("${{ !vars.on }}"), json!(false));
        assert_eq!(eval("${{ !vars.empty }}"), json!(true));
        assert_eq!(eval("${{ !!vars.name }}"), json!(true));
    }

    #[test]
    fn precedence() {
        // `&&` binds tighter than `||`.
        assert_eq!(eval("${{ true || false && false }}"), json!(true));
        assert_eq!(eval("${{ (true || false) && false }}"), json!(false));
        // Comparisons bind tighter than `&&`; `!` tighter than comparisons.
        assert_eq!(eval("${{ vars.count > 2 && vars.count < 4 }}"), json!(true));
        assert_eq!(eval("${{ !vars.off == true }}"), json!(true));
        assert_eq!(eval("${{ !(vars.count == 3) }}"), json!(false));
        // `<` binds tighter than `==`.
        assert_eq!(eval("${{ 1 < 2 == 2 < 3 }}"), json!(true));
    }

    #[test]
    fn truthiness() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for true_ in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("0"),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(truthy(&true_), "{true_}");
        }
    }

    #[test]
    fn functions() {
        assert_eq!(eval("${{ length(vars.tags) }}"), json!(3));
        assert_eq!(eval("${{ length('héllo') }}"), json!(5));
        assert_eq!(eval("${{ length(vars.nested) }}"), json!(2));
        assert_eq!(eval("${{ length(vars.nope) }}"), json!(0));
        assert_eq!(eval("${{ contains(vars.tags, 'b') }}"), json!(true));
        assert_eq!(eval("${{ contains(vars.tags, 'z') }}"), json!(false));
        assert_eq!(eval("${{ contains(vars.registry, '.io') }}"), json!(true));
        assert_eq!(eval("${{ contains(vars.nope, 'x') }}"), json!(false));
        assert_eq!(
            eval("${{ startsWith(vars.registry, 'docker') }}"),
            json!(true)
        );
        assert_eq!(eval("${{ endsWith(vars.registry, '.com') }}"), json!(false));
        assert_eq!(eval("${{ join(vars.tags, ', ') }}"), json!("a, b, c"));
        assert_eq!(eval("${{ join(vars.tags) }}"), json!("a,b,c"));
        assert_eq!(eval("${{ join(vars.name, '-') }}"), json!("demo"));
        assert_eq!(
            eval("${{ toJSON(vars.nested['k-1']) }}"),
            json!("{\"deep\":[10,20]}")
        );
        assert_eq!(eval("${{ toJSON('a') }}"), json!("\"a\""));
        assert_eq!(eval("${{ fromJSON('[1, true]') }}"), json!([1, true]));
        assert_eq!(
            eval("${{ fromJSON(toJSON(vars.tags)) == vars.tags }}"),
            json!(true)
        );
        let e = eval_with("${{ fromJSON('{') }}", None).unwrap_err();
        assert!(
            e.message.starts_with("`fromJSON` was given invalid JSON"),
            "{e}"
        );
        let e = eval_with("${{ length(vars.count) }}", None).unwrap_err();
        assert_eq!(
            e.message,
            "`length` takes a string, list or object, not a number"
        );
        let e = eval_with("${{ startsWith(vars.tags, 'a') }}", None).unwrap_err();
        assert_eq!(e.message, "`startsWith` takes text, not a list");
    }

    #[test]
    fn literals() {
        assert_eq!(eval("${{ 'it''s' }}"), json!("it's"));
        assert_eq!(eval("${{ '' }}"), json!(""));
        assert_eq!(eval("${{ '}}' }}"), json!("}}"));
        assert_eq!(eval("${{ true }}"), json!(true));
        assert_eq!(eval("${{ null }}"), Value::Null);
        assert_eq!(eval("${{ 1e3 }}"), json!(1000.0));
        assert_eq!(eval("${{ 18446744073709551615 }}"), json!(u64::MAX));
    }

    #[test]
    fn references_lists_every_path_once() {
        let t = Template::parse(
            "${{ steps.mirror-apps.outputs.copied }} ${{ vars.a && contains(item.tags, env.X) }} \
             ${{ vars['a'] }} ${{ vars.list[2] }}",
        )
        .unwrap();
        let shown: Vec<String> = t.references().iter().map(Path::to_string).collect();
        assert_eq!(
            shown,
            [
                "steps.mirror-apps.outputs.copied",
                "vars.a",
                "item.tags",
                "env.X",
                "vars.list[2]",
            ]
        );
        assert_eq!(
            t.references()[0],
            Path {
                root: "steps".into(),
                segments: vec![
                    Segment::Key("mirror-apps".into()),
                    Segment::Key("outputs".into()),
                    Segment::Key("copied".into()),
                ],
            }
        );
        let located = t.located_references();
        assert_eq!(located[0].1, 4);
        assert_eq!(located[1].1, 44);
        let odd = Path {
            root: "vars".into(),
            segments: vec![Segment::Key("it's odd".into()), Segment::Index(0)],
        };
        assert_eq!(odd.to_string(), "vars['it''s odd'][0]");
    }

    #[test]
    fn parse_errors_point_at_the_bad_token() {
        assert_eq!(
            parse_err("x ${{ foo.bar }}"),
            (
                6,
                "unknown root `foo` (use vars, env, steps or item)".into()
            )
        );
        assert_eq!(
            parse_err("ab ${{ vars.x"),
            (3, "unclosed `${{` (no `}}` after it)".into())
        );
        assert_eq!(
            parse_err("${{ (vars.a }}"),
            (12, "expected `)`, found the end of the expression".into())
        );
        assert_eq!(
            parse_err("${{ nope(1) }}"),
            (
                4,
                "unknown function `nope` (known: length, contains, startsWith, endsWith, join, toJSON, fromJSON)"
                    .into()
            )
        );
        assert_eq!(
            parse_err("${{ vars.a = 1 }}"),
            (11, "use `==` to compare".into())
        );
        assert_eq!(
            parse_err("${{ vars.a & 1 }}"),
            (11, "use `&&` for \"and\"".into())
        );
        assert_eq!(
            parse_err("${{ \"x\" }}"),
            (4, "strings take single quotes: 'text'".into())
        );
        assert_eq!(
            parse_err("${{ 'abc }}"),
            (4, "unclosed string (no closing `'`)".into())
        );
        assert_eq!(parse_err("${{ }}"), (0, "empty `${{ }}`".into()));
        assert_eq!(
            parse_err("${{ vars.a vars.b }}"),
            (11, "expected `}}`, found `vars`".into())
        );
        assert_eq!(
            parse_err("${{ vars. }}"),
            (
                10,
                "expected a name after `.`, found the end of the expression".into()
            )
        );
        assert_eq!(
            parse_err("${{ vars[x] }}"),
            (
                9,
                "expected an index (0, 1, …) or a quoted key inside `[ ]`, found `x`".into()
            )
        );
        assert_eq!(
            parse_err("${{ vars[-1] }}"),
            (
                9,
                "expected an index (0, 1, …) or a quoted key inside `[ ]`, found `-1`".into()
            )
        );
        assert_eq!(
            parse_err("${{ length(1, 2) }}"),
            (4, "`length` takes 1 argument, not 2".into())
        );
        assert_eq!(
            parse_err("${{ contains(1) }}"),
            (4, "`contains` takes 2 arguments, not 1".into())
        );
        assert_eq!(
            parse_err("${{ env }}"),
            (4, "`env` needs a variable name, as in `env.HOME`".into())
        );
        assert_eq!(
            parse_err("${{ 12ab }}"),
            (4, "invalid number `12ab`".into())
        );
        assert_eq!(
            parse_err("${{ vars.a # }}"),
            (11, "unexpected character `#`".into())
        );
        assert_eq!(
            parse_err("ok ${{ 1 }} ${{ 1 +"),
            (18, "unexpected character `+`".into())
        );
        assert_eq!(
            parse_err("${{ == 1 }}"),
            (4, "expected a value, found `==`".into())
        );
    }
}
