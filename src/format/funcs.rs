//! docker/cli's template functions (`templates.basicFunctions`) and the
//! header variants it swaps in to render table headers.

use std::cell::Cell;
use std::sync::Arc;

use gotmpl::{TemplateError, Value};

use super::json;

/// Go's text/template builtins; with docker's functions these are the only
/// names a template may call.
const GO_BUILTINS: [&str; 19] = [
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

/// docker's additions to the builtins.
const DOCKER_FUNCTIONS: [&str; 8] = [
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Whether a template may call `name`.
pub(crate) fn is_defined(name: &str) -> bool {
    GO_BUILTINS.contains(&name) || DOCKER_FUNCTIONS.contains(&name)
}

thread_local! {
    /// Address of the row map being rendered by `write_rows`, if any.
    static CONTEXT_ROOT: Cell<usize> = const { Cell::new(0) };
}

/// Marks `row` as a docker formatter context while alive: `{{json .}}` of it
/// HTML-escapes like docker's contexts, whose `MarshalJSON` goes through
/// `json.Marshal`.
pub(crate) struct ContextRoot {
    previous: usize,
}

impl ContextRoot {
    pub(crate) fn enter(row: &Value) -> ContextRoot {
        let previous = CONTEXT_ROOT.get();
        CONTEXT_ROOT.set(map_address(row));
        ContextRoot { previous }
    }
}

impl Drop for ContextRoot {
    fn drop(&mut self) {
        CONTEXT_ROOT.set(self.previous);
    }
}

fn map_address(value: &Value) -> usize {
    match value {
        Value::Map(map) => Arc::as_ptr(map) as *const () as usize,
        _ => 0,
    }
}

fn is_context_root(value: &Value) -> bool {
    let address = map_address(value);
    address != 0 && address == CONTEXT_ROOT.get()
}

/// Registers docker's functions for rendering rows.
pub(crate) fn with_docker_functions(t: gotmpl::Template) -> gotmpl::Template {
    t.func("json", docker_json)
        .func("split", split)
        .func("join", join)
        .func("title", |args| map_string("title", args, go_title))
        .func("lower", |args| map_string("lower", args, go_lower))
        .func("upper", |args| map_string("upper", args, go_upper))
        .func("pad", pad)
        .func("truncate", truncate)
}

/// Registers docker's `HeaderFunctions`: the same names, but returning the
/// header text unchanged so `{{upper .Name}}` still shows `NAME`. `pad` is
/// kept so padded columns stay aligned with their header.
pub(crate) fn with_header_functions(t: gotmpl::Template) -> gotmpl::Template {
    t.func("json", |args| header_identity("json", args, None))
        .func("split", |args| {
            header_identity("split", args, Some(Kind::String))
        })
        .func("join", |args| {
            header_identity("join", args, Some(Kind::String))
        })
        .func("title", |args| header_identity("title", args, None))
        .func("lower", |args| header_identity("lower", args, None))
        .func("upper", |args| header_identity("upper", args, None))
        .func("truncate", |args| {
            header_identity("truncate", args, Some(Kind::Int))
        })
        .func("pad", pad)
}

#[derive(Clone, Copy)]
enum Kind {
    String,
    Int,
}

/// A header function: `func(v string[, _ T]) string { return v }`.
fn header_identity(name: &str, args: &[Value], second: Option<Kind>) -> gotmpl::Result<Value> {
    arg_count(name, args, 1 + usize::from(second.is_some()))?;
    let text = string_arg(&args[0])?;
    match second {
        Some(Kind::String) => {
            string_arg(&args[1])?;
        }
        Some(Kind::Int) => {
            int_arg(&args[1])?;
        }
        None => {}
    }
    Ok(Value::String(Arc::from(text)))
}

fn docker_json(args: &[Value]) -> gotmpl::Result<Value> {
    arg_count("json", args, 1)?;
    let value = &args[0];
    // docker 20.10 ignores encoding errors and prints nothing.
    let text = json::encode(value, is_context_root(value)).unwrap_or_default();
    Ok(Value::String(Arc::from(text)))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(args: &[Value]) -> gotmpl::Result<Value> {
    arg_count("split", args, 2)?;
    let s = string_arg(&args[0])?;
    let sep = string_arg(&args[1])?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars()
            .map(|c| Value::String(Arc::from(c.to_string())))
            .collect()
    } else {
        s.split(sep).map(|p| Value::String(Arc::from(p))).collect()
    };
    Ok(Value::List(Arc::from(parts)))
}

/// docker's `join`: strings joined as they are, other list items printed as
/// `fmt.Sprint` would, map values sorted then joined, nil as "".
fn join(args: &[Value]) -> gotmpl::Result<Value> {
    arg_count("join", args, 2)?;
    let sep = string_arg(&args[1])?;
    let items: Vec<String> = match &args[0] {
        Value::Nil => Vec::new(),
        Value::List(items) => items.iter().map(sprint).collect(),
        Value::Map(map) => {
            let mut values: Vec<String> = map.values().map(sprint).collect();
            values.sort();
            values
        }
        other => {
            return Err(TemplateError::Exec(format!(
                "error calling join: expected slice, got {}",
                go_type(other)
            )));
        }
    };
    Ok(Value::String(Arc::from(items.join(sep))))
}

fn sprint(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// docker's `pad`: surrounds a non-empty string with spaces.
fn pad(args: &[Value]) -> gotmpl::Result<Value> {
    arg_count("pad", args, 3)?;
    let s = string_arg(&args[0])?;
    let prefix = count_arg("pad", &args[1])?;
    let suffix = count_arg("pad", &args[2])?;
    if s.is_empty() {
        return Ok(Value::String(Arc::from("")));
    }
    let padded = format!("{}{s}{}", " ".repeat(prefix), " ".repeat(suffix));
    Ok(Value::String(Arc::from(padded)))
}

/// docker's `truncate`: the first `length` bytes. Go may cut a multi-byte
/// character in half; here the cut moves back to the character boundary.
fn truncate(args: &[Value]) -> gotmpl::Result<Value> {
    arg_count("truncate", args, 2)?;
    let s = string_arg(&args[0])?;
    let length = int_arg(&args[1])?;
    let Ok(length) = usize::try_from(length) else {
        return Err(TemplateError::Exec(format!(
            "error calling truncate: runtime error: slice bounds out of range [:{length}]"
        )));
    };
    if s.len() < length {
        return Ok(Value::String(Arc::from(s)));
    }
    let mut end = length;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Value::String(Arc::from(&s[..end])))
}

fn map_string(name: &str, args: &[Value], f: fn(&str) -> String) -> gotmpl::Result<Value> {
    arg_count(name, args, 1)?;
    Ok(Value::String(Arc::from(f(string_arg(&args[0])?))))
}

fn arg_count(name: &str, args: &[Value], want: usize) -> gotmpl::Result<()> {
    if args.len() == want {
        return Ok(());
    }
    Err(TemplateError::Exec(format!(
        "wrong number of args for {name}: want {want} got {}",
        args.len()
    )))
}

fn string_arg(value: &Value) -> gotmpl::Result<&str> {
    match value {
        Value::String(s) => Ok(s),
        Value::Nil => Err(TemplateError::Exec(
            "invalid value; expected string".to_string(),
        )),
        other => Err(TemplateError::Exec(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        ))),
    }
}

fn int_arg(value: &Value) -> gotmpl::Result<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::Uint(n) => {
            i64::try_from(*n).map_err(|_| TemplateError::Exec(format!("{n} overflows int")))
        }
        Value::Nil => Err(TemplateError::Exec(
            "invalid value; expected int".to_string(),
        )),
        other => Err(TemplateError::Exec(format!(
            "wrong type for value; expected int; got {}",
            go_type(other)
        ))),
    }
}

/// A repeat count: Go's `strings.Repeat` panics on a negative one.
fn count_arg(name: &str, value: &Value) -> gotmpl::Result<usize> {
    let n = int_arg(value)?;
    usize::try_from(n).map_err(|_| {
        TemplateError::Exec(format!(
            "error calling {name}: strings: negative Repeat count"
        ))
    })
}

/// The Go type name a value would have, for error messages.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

/// Go's `strings.Title`: upper-cases (title-cases) the first letter of each
/// word, a word starting after anything but an ASCII letter, digit or `_`
/// (or, beyond ASCII, after white space).
pub(crate) fn go_title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let separator = if prev.is_ascii() {
                !(prev.is_ascii_alphanumeric() || prev == '_')
            } else {
                prev.is_whitespace()
            };
            prev = c;
            if separator { to_title(c) } else { c }
        })
        .collect()
}

/// Go's `strings.ToUpper`: one-to-one (simple) case mapping, so `ß` stays.
pub(crate) fn go_upper(s: &str) -> String {
    s.chars().map(to_upper).collect()
}

/// Go's `strings.ToLower`: one-to-one (simple) case mapping.
pub(crate) fn go_lower(s: &str) -> String {
    s.chars().map(to_lower).collect()
}

/// Simple uppercase mapping. Rust's full mapping can expand a character
/// (`ß` to `SS`); Go keeps such characters, except the Greek letters with
/// ypogegrammeni whose simple mapping is a single title-case letter.
fn to_upper(c: char) -> char {
    match u32::from(c) {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
            char::from_u32(u32::from(c) + 8).unwrap_or(c)
        }
        0x1FB3 => '\u{1FBC}',
        0x1FC3 => '\u{1FCC}',
        0x1FF3 => '\u{1FFC}',
        _ => single(c.to_uppercase()).unwrap_or(c),
    }
}

fn to_lower(c: char) -> char {
    match c {
        // The only character whose full lowercase mapping expands.
        '\u{130}' => 'i',
        _ => single(c.to_lowercase()).unwrap_or(c),
    }
}

/// Go's `unicode.ToTitle`: like upper case, except for the Latin digraphs
/// that have a distinct title-case form.
fn to_title(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        _ => to_upper(c),
    }
}

fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    let first = mapped.next()?;
    mapped.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_case_mapping() {
        assert_eq!(
            go_title("hello world-foo_bar baz.qux"),
            "Hello World-Foo_bar Baz.Qux"
        );
        assert_eq!(go_title("élan vital"), "Élan Vital");
        assert_eq!(go_title("\u{1C6}ungla"), "\u{1C5}ungla");
        assert_eq!(
            go_upper("straße \u{1C6} \u{1FB3}"),
            "STRAßE \u{1C4} \u{1FBC}"
        );
        assert_eq!(go_lower("İSTANBUL ΣΑΣ"), "istanbul σασ");
    }

    #[test]
    fn names() {
        assert!(is_defined("json"));
        assert!(is_defined("printf"));
        assert!(!is_defined("InvalidFunction"));
    }
}
