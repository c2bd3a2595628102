//! Parse-time checks Go's template parser makes and gotmpl 0.6 leaves to
//! execution or skips: calls of undefined functions, and block structure
//! (a stray `{{end}}` or `{{else}}`, a block left open at the end).
//!
//! They matter because docker parses before it has any rows: with no images
//! an invalid `--format` must still fail, and gotmpl stops silently at a
//! stray `{{end}}`, dropping the rest of the template.

use gotmpl::parse::{BranchNode, Expr, ListNode, Node, PipeNode};

/// A parse error at a byte offset of the template source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// The first call, in source order, of a function `is_defined` rejects.
pub(crate) fn undefined_function(
    tree: &ListNode,
    defines: &[gotmpl::parse::DefineNode],
    is_defined: &dyn Fn(&str) -> bool,
) -> Option<Problem> {
    let mut first: Option<Problem> = None;
    let mut visit = |offset: usize, name: &str| {
        if !is_defined(name) && first.as_ref().is_none_or(|p| offset < p.offset) {
            first = Some(Problem {
                offset,
                message: format!("function {name:?} not defined"),
            });
        }
    };
    walk_list(tree, &mut visit);
    for define in defines {
        walk_list(&define.body, &mut visit);
    }
    first
}

fn walk_list(list: &ListNode, visit: &mut dyn FnMut(usize, &str)) {
    for node in &list.nodes {
        match node {
            Node::List(inner) => walk_list(inner, visit),
            Node::Action(action) => walk_pipe(&action.pipe, visit),
            Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
                walk_branch(branch, visit)
            }
            Node::Template(call) => {
                if let Some(pipe) = &call.pipe {
                    walk_pipe(pipe, visit);
                }
            }
            Node::Define(define) => walk_list(&define.body, visit),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn walk_branch(branch: &BranchNode, visit: &mut dyn FnMut(usize, &str)) {
    walk_pipe(&branch.pipe, visit);
    walk_list(&branch.body, visit);
    if let Some(else_body) = &branch.else_body {
        walk_list(else_body, visit);
    }
}

fn walk_pipe(pipe: &PipeNode, visit: &mut dyn FnMut(usize, &str)) {
    for command in &pipe.commands {
        for arg in &command.args {
            walk_expr(arg, visit);
        }
    }
}

fn walk_expr(expr: &Expr, visit: &mut dyn FnMut(usize, &str)) {
    match expr {
        Expr::Identifier(pos, name) => visit(pos.offset, name),
        Expr::Pipe(_, pipe) => walk_pipe(pipe, visit),
        Expr::Chain(_, inner, _) => walk_expr(inner, visit),
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Opener {
    If,
    Range,
    With,
    Define,
    Block,
}

struct Open {
    block: Opener,
    has_else: bool,
}

/// Checks the nesting of `if`/`range`/`with`/`define`/`block`, `else`, `end`,
/// `break` and `continue`, with Go's messages. Lexical errors are left to
/// gotmpl: an action this scan cannot delimit ends the check.
pub(crate) fn structure(src: &str) -> Option<Problem> {
    let mut stack: Vec<Open> = Vec::new();
    let mut at = 0;
    while let Some(found) = src[at..].find("{{") {
        let mut pos = at + found + 2;
        if src[pos..].starts_with('-') && src[pos + 1..].starts_with(is_space) {
            pos += 2;
        }
        if src[pos..].starts_with("/*") {
            let close = src[pos + 2..].find("*/")?;
            let after = pos + 2 + close + 2;
            at = after + src[after..].find("}}")? + 2;
            continue;
        }
        let end = action_end(src, pos)?;
        let (keyword, keyword_at, rest) = first_word(src, pos, end);
        at = end;
        let problem = |message: &str| {
            Some(Problem {
                offset: keyword_at,
                message: message.to_string(),
            })
        };
        match keyword {
            "if" => stack.push(Open {
                block: Opener::If,
                has_else: false,
            }),
            "range" => stack.push(Open {
                block: Opener::Range,
                has_else: false,
            }),
            "with" => stack.push(Open {
                block: Opener::With,
                has_else: false,
            }),
            "define" => stack.push(Open {
                block: Opener::Define,
                has_else: false,
            }),
            "block" => stack.push(Open {
                block: Opener::Block,
                has_else: false,
            }),
            "end" if stack.pop().is_none() => return problem("unexpected {{end}}"),
            "else" => {
                let Some(top) = stack.last_mut() else {
                    return problem("unexpected {{else}}");
                };
                match top.block {
                    Opener::Define => return problem("unexpected {{else}} in define clause"),
                    Opener::Block => return problem("unexpected {{else}} in block clause"),
                    _ if top.has_else => return problem("expected end; found {{else}}"),
                    _ => {}
                }
                let chained = first_word(src, rest, end).0;
                match (top.block, chained) {
                    // `{{else if}}` opens an `if` that shares the outer `{{end}}`.
                    (Opener::If, "if") | (Opener::With, "with") => {}
                    (_, "if" | "with") => {
                        return problem(&format!("unexpected <{chained}> in input"));
                    }
                    _ => top.has_else = true,
                }
            }
            "break" | "continue" if !stack.iter().any(|open| open.block == Opener::Range) => {
                return problem(&format!("{{{{{keyword}}}}} outside {{{{range}}}}"));
            }
            _ => {}
        }
    }
    if stack.is_empty() {
        None
    } else {
        Some(Problem {
            offset: src.len(),
            message: "unexpected EOF".to_string(),
        })
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The offset just past the `}}` closing the action whose body starts at
/// `pos`, skipping over quoted strings and character constants.
fn action_end(src: &str, pos: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = pos;
    while i < bytes.len() {
        match bytes[i] {
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i + 2),
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    match bytes.get(i)? {
                        b'\\' => i += 2,
                        b'\n' => return None,
                        &b if b == quote => break,
                        _ => i += 1,
                    }
                }
            }
            b'`' => {
                i += 1;
                i += src[i..].find('`')?;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The identifier starting the action text `src[pos..end]` (after spaces),
/// where it starts, and where the text after it starts.
fn first_word(src: &str, pos: usize, end: usize) -> (&str, usize, usize) {
    let text = &src[pos..end];
    let trimmed = text.trim_start_matches(is_space);
    let start = pos + (text.len() - trimmed.len());
    let len = trimmed
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    (&src[start..start + len], start, start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(src: &str) -> Option<String> {
        structure(src).map(|p| p.message)
    }

    #[test]
    fn well_formed_templates_pass() {
        for src in [
            "{{.ID}}\t{{.Size}}",
            "{{if .A}}a{{else if .B}}b{{else}}c{{end}}",
            "{{with .A}}a{{else with .B}}b{{end}}",
            "{{range .L}}{{if eq . 1}}{{break}}{{end}}{{continue}}{{else}}none{{end}}",
            "{{define \"x\"}}{{.}}{{end}}{{template \"x\" .}}",
            "{{block \"b\" .}}{{.}}{{end}}",
            "{{- if .A -}} {{ end }}",
            "{{\"}}{{end}}\"}}{{`{{end}}`}}{{'}'}}",
            "{{/* {{end}} */}}{{- /* x */ -}}",
            "no actions at all",
        ] {
            assert_eq!(structure(src), None, "{src}");
        }
    }

    #[test]
    fn go_structure_errors() {
        assert_eq!(
            message("{{.ID}}{{end}}").as_deref(),
            Some("unexpected {{end}}")
        );
        assert_eq!(message("x{{else}}").as_deref(), Some("unexpected {{else}}"));
        assert_eq!(message("{{range .X}}").as_deref(), Some("unexpected EOF"));
        assert_eq!(
            message("{{if .A}}{{else}}{{else}}{{end}}").as_deref(),
            Some("expected end; found {{else}}")
        );
        assert_eq!(
            message("{{define \"x\"}}{{else}}{{end}}").as_deref(),
            Some("unexpected {{else}} in define clause")
        );
        assert_eq!(
            message("{{break}}").as_deref(),
            Some("{{break}} outside {{range}}")
        );
        assert_eq!(
            message("{{if 1}}{{continue}}{{end}}").as_deref(),
            Some("{{continue}} outside {{range}}")
        );
        assert_eq!(
            message("{{range .}}{{else if 1}}{{end}}").as_deref(),
            Some("unexpected <if> in input")
        );
        assert_eq!(structure("ab\n{{end}}").map(|p| p.offset), Some(5));
        assert_eq!(structure("{{if 1}}\n").map(|p| p.offset), Some(9));
    }

    #[test]
    fn undefined_functions_in_source_order() {
        let src = "{{if bad1 .}}{{join (bad2) \",\"}}{{end}}{{define \"d\"}}{{bad3}}{{end}}";
        let parser = gotmpl::parse::Parser::new(src, "{{", "}}").expect("lexes");
        let (tree, defines) = parser.parse().expect("parses");
        let known = |name: &str| name == "join";
        let problem = undefined_function(&tree, &defines, &known).expect("an undefined function");
        assert_eq!(problem.message, "function \"bad1\" not defined");
        assert_eq!(problem.offset, 5);
        let known = |name: &str| name == "join" || name == "bad1";
        let problem = undefined_function(&tree, &defines, &known).expect("an undefined function");
        assert_eq!(problem.message, "function \"bad2\" not defined");
        let known = |name: &str| name != "bad3";
        let problem = undefined_function(&tree, &defines, &known).expect("an undefined function");
        assert_eq!(problem.message, "function \"bad3\" not defined");
        let known = |_: &str| true;
        assert_eq!(undefined_function(&tree, &defines, &known), None);
    }
}
