//! What Go refuses on a docker row and a map allows.
//!
//! docker renders `--format` against a Go struct (`*formatter.imageContext`
//! and the like); strata renders against a map of the same fields. A map
//! can be ranged over, indexed and measured, and names any key; a struct
//! cannot. So before the first row is rendered, the actions whose dot is
//! the row itself (outside `with` and `range` bodies, which move dot) are
//! checked for what Go's execution would fail on, and the error reads as
//! Go's: `template: :1:2: executing "" at <.Nope>: can't evaluate field
//! Nope in type *formatter.imageContext`, with Go's line and column.

use gotmpl::Value;
use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode};

/// The Go type of a command's row context, as docker's messages name it
/// (`formatter.imageContext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowType(pub &'static str);

/// The first action, in source order, that Go would fail to run on the
/// row: its error text, as Go's `ExecError` reads.
pub(crate) fn misuse(src: &str, tree: &ListNode, row: &Value, ty: RowType) -> Option<String> {
    let Value::Map(fields) = row else {
        return None;
    };
    let has = |name: &str| match fields.get(name) {
        None => Field::Missing,
        Some(Value::String(_)) => Field::Text,
        Some(_) => Field::Other,
    };
    let mut found = None;
    walk(tree, &mut |cmd: &CommandNode, at: Place| {
        if found.is_some() {
            return;
        }
        found = command_misuse(src, cmd, at, &has, ty);
    });
    found
}

/// What a row has under a field name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Missing,
    /// A string, which has no fields of its own.
    Text,
    Other,
}

/// Where a command stands in its pipeline.
#[derive(Clone, Copy)]
struct Place {
    /// It gives a `range` its value.
    ranged: bool,
    /// The command before it in the pipeline is `.` alone (`. | len`).
    after_row: bool,
}

/// Calls `visit` on each command whose dot is the row, in source order.
fn walk(list: &ListNode, visit: &mut dyn FnMut(&CommandNode, Place)) {
    for node in &list.nodes {
        match node {
            Node::List(inner) => walk(inner, visit),
            Node::Action(action) => pipe(&action.pipe, false, visit),
            Node::If(branch) => {
                pipe(&branch.pipe, false, visit);
                walk(&branch.body, visit);
                if let Some(else_body) = &branch.else_body {
                    walk(else_body, visit);
                }
            }
            // Their bodies see another dot; only the pipeline sees the row
            // (an `else` body too, but it runs only when the value is empty).
            Node::With(branch) => pipe(&branch.pipe, false, visit),
            Node::Range(branch) => pipe(&branch.pipe, true, visit),
            Node::Template(_) | Node::Define(_) => {}
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn pipe(p: &PipeNode, range: bool, visit: &mut dyn FnMut(&CommandNode, Place)) {
    let mut after_row = false;
    for (i, cmd) in p.commands.iter().enumerate() {
        for arg in &cmd.args {
            if let Expr::Pipe(_, inner) = arg {
                pipe(inner, false, visit);
            }
        }
        let ranged = range && i + 1 == p.commands.len();
        visit(cmd, Place { ranged, after_row });
        after_row = matches!(cmd.args.as_slice(), [Expr::Dot(_)]);
    }
}

fn command_misuse(
    src: &str,
    cmd: &CommandNode,
    place: Place,
    has: &dyn Fn(&str) -> Field,
    ty: RowType,
) -> Option<String> {
    let at = |offset: usize, context: String, message: String| {
        let (line, col) = go_position(src, offset);
        format!("template: :{line}:{col}: executing \"\" at <{context}>: {message}")
    };
    // Arguments are evaluated before the call, left to right.
    for arg in &cmd.args {
        let Expr::Field(pos, names) = arg else {
            continue;
        };
        let message = match (has(&names[0]), names.get(1)) {
            (Field::Missing, _) => format!("can't evaluate field {} in type *{}", names[0], ty.0),
            (Field::Text, Some(next)) => format!("can't evaluate field {next} in type string"),
            _ => continue,
        };
        return Some(at(
            super::inspect::chain_offset(pos.offset, names),
            format!(".{}", names.join(".")),
            message,
        ));
    }
    // The row as the first argument, or piped in as the last (`. | len`).
    let call = match cmd.args.as_slice() {
        [Expr::Identifier(pos, name), Expr::Dot(_), ..] => {
            Some((pos, name, command_text(src, cmd)))
        }
        [Expr::Identifier(pos, name)] if place.after_row => Some((pos, name, name.to_string())),
        _ => None,
    };
    if let Some((pos, name, context)) = call {
        let message = match name.as_str() {
            "index" => format!("error calling index: can't index item of type {}", ty.0),
            "len" => format!("error calling len: len of type {}", ty.0),
            _ => return None,
        };
        return Some(at(pos.offset, context, message));
    }
    if place.ranged
        && let [Expr::Dot(pos)] = cmd.args.as_slice()
    {
        return Some(at(
            pos.offset,
            ".".into(),
            format!("range can't iterate over {}", ty.0),
        ));
    }
    None
}

/// Go's `ErrorContext` position: the line, and the byte offset within it
/// (counted from 0, except on the first line where it is the offset
/// itself, as Go computes it).
pub(crate) fn go_position(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => offset - (nl + 1),
        None => offset,
    };
    (line, col)
}

/// A command as Go prints it: its operands separated by one space.
fn command_text(src: &str, cmd: &CommandNode) -> String {
    cmd.args
        .iter()
        .map(|a| match a {
            Expr::Dot(_) => ".".to_string(),
            Expr::Field(_, names) => format!(".{}", names.join(".")),
            Expr::Variable(_, name, names) if names.is_empty() => name.to_string(),
            Expr::Variable(_, name, names) => format!("{name}.{}", names.join(".")),
            Expr::Identifier(_, name) => name.to_string(),
            Expr::String(_, s) => format!("{s:?}"),
            Expr::Bool(_, b) => b.to_string(),
            Expr::Nil(_) => "nil".into(),
            // A number or a nested pipeline: as written.
            other => {
                let from = other.pos().offset.min(src.len());
                let len = src[from..]
                    .find(|c: char| c.is_whitespace() || c == '}')
                    .unwrap_or(src.len() - from);
                src[from..from + len].to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    const IMAGE: RowType = RowType("formatter.imageContext");

    fn check(src: &str) -> Option<String> {
        let (tree, _) = gotmpl::parse::Parser::new(src, "{{", "}}")
            .and_then(|p| p.parse())
            .unwrap();
        let row: BTreeMap<Arc<str>, Value> = [("ID", "abc"), ("Repository", "nginx")]
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Value::String(Arc::from(v))))
            .collect();
        misuse(src, &tree, &Value::Map(Arc::new(row)), IMAGE)
    }

    #[test]
    fn what_go_refuses_on_a_struct_reads_as_go_says_it() {
        // Texts from docker 20.10's `images --format`.
        assert_eq!(
            check("{{range .}}x{{end}}").unwrap(),
            "template: :1:8: executing \"\" at <.>: range can't iterate over formatter.imageContext"
        );
        assert_eq!(
            check(r#"{{index . "x"}}"#).unwrap(),
            r#"template: :1:2: executing "" at <index . "x">: error calling index: can't index item of type formatter.imageContext"#
        );
        assert_eq!(
            check("{{len .}}").unwrap(),
            "template: :1:2: executing \"\" at <len .>: error calling len: len of type formatter.imageContext"
        );
        assert_eq!(
            check("{{.Nope}}").unwrap(),
            "template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext"
        );
        assert_eq!(
            check("{{.ID}}\n  {{.Nope.X}}").unwrap(),
            "template: :2:9: executing \"\" at <.Nope.X>: can't evaluate field Nope in type *formatter.imageContext"
        );
        assert_eq!(
            check("{{.ID.x}}").unwrap(),
            "template: :1:5: executing \"\" at <.ID.x>: can't evaluate field x in type string"
        );
        // Go places a chain at its second field, however long it is.
        assert_eq!(
            check("{{.ID.x.y}}").unwrap(),
            "template: :1:5: executing \"\" at <.ID.x.y>: can't evaluate field x in type string"
        );
        assert_eq!(
            check("{{. | len}}").unwrap(),
            "template: :1:6: executing \"\" at <len>: error calling len: len of type formatter.imageContext"
        );
        assert_eq!(
            check("{{if .ID}}{{.Nope}}{{end}}").unwrap(),
            "template: :1:12: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext"
        );
    }

    #[test]
    fn what_go_allows_passes() {
        for ok in [
            "{{.ID}} {{.Repository}}",
            "{{range $i, $e := split .Repository \"/\"}}{{$e}}{{end}}",
            "{{with .ID}}{{.}}{{len .}}{{end}}",
            "{{index (split .Repository \"/\") 0}}",
            "{{len .ID}}",
            "{{.ID | len}}",
            "{{json .}}",
        ] {
            assert_eq!(check(ok), None, "{ok}");
        }
    }
}
