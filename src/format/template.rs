//! `--format` templates and docker's row formatter (`formatter.Context`).

use std::io::Write;
use std::sync::Arc;

use gotmpl::{MissingKey, TemplateError, Value};
use serde::Serialize;

use super::check::{self, Problem};
use super::funcs::{self, ContextRoot};
use super::inspect::Run;
use super::row::{self, RowType};
use super::table::TableWriter;

/// What the user asked `--format` to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// The command's default table (`--format table`, empty or absent).
    Table,
    /// `table TEMPLATE`: a header line, then aligned rows. Holds the template
    /// after the `table` prefix, with surrounding spaces removed.
    TableTemplate(String),
    /// A plain template: one rendering per row, each followed by a newline.
    Template(String),
    /// `json`: each row as one JSON object per line (docker 23's
    /// `--format json`, i.e. the template `{{json .}}`).
    Json,
}

impl OutputFormat {
    /// Interprets a `--format` argument as docker does: anything starting
    /// with `table` is a table (so `tablefoo` is the table template `foo`),
    /// bare `table`, `""` and no argument mean the default table.
    pub fn parse(arg: Option<&str>) -> OutputFormat {
        match arg {
            None | Some("" | "table") => OutputFormat::Table,
            Some("json") => OutputFormat::Json,
            Some(s) => match s.strip_prefix("table") {
                Some(rest) => OutputFormat::TableTemplate(rest.trim_matches(' ').to_string()),
                None => OutputFormat::Template(s.to_string()),
            },
        }
    }

    /// Whether rows are aligned under a header.
    pub fn is_table(&self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::TableTemplate(_))
    }
}

/// Errors from parsing or rendering a template, or writing its output.
///
/// The template variants display as docker's formatter reports them:
/// `template parsing error: template: :1: function "x" not defined`
/// (docker uses that prefix for execution errors too).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The template does not parse; the text is Go's, naming the template
    /// (docker's are unnamed, hence `template: :LINE:`) and the line.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// Rendering failed. gotmpl reports no position for these, unlike Go's
    /// `template: :1:2: executing "" at <.Foo>: ...`.
    #[error("template parsing error: {0}")]
    Execute(String),
    /// The data could not be turned into template values.
    #[error("cannot use data in a template: {0}")]
    Data(String),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A compiled template with docker's extra functions: `json`, `split`,
/// `join`, `title`, `lower`, `upper`, `pad`, `truncate`, besides Go's
/// builtins (`printf`, `println`, `index`, `len`, ...).
pub struct Template {
    /// The source, for positions in errors.
    source: String,
    /// The parsed tree, for the checks Go makes on a row (see `row`).
    tree: gotmpl::parse::ListNode,
    /// The template as docker runs it on rows.
    body: gotmpl::Template,
    /// The same source with docker's header functions, which pass header
    /// text through unchanged.
    header: gotmpl::Template,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `src` as docker's `templates.Parse` does. Errors read like Go's:
    /// `template: :2: unexpected {{end}}`.
    pub fn parse(src: &str) -> Result<Template, FormatError> {
        let mut problems: Vec<(usize, usize, String)> = Vec::new();
        if let Some(problem) = check::structure(src) {
            problems.push(located(src, problem));
        }
        let mut parsed = None;
        match gotmpl::parse::Parser::new(src, "{{", "}}").and_then(|p| p.parse()) {
            Ok((tree, defines)) => {
                if let Some(problem) =
                    check::undefined_function(&tree, &defines, &funcs::is_defined)
                {
                    problems.push(located(src, problem));
                }
                parsed = Some(tree);
            }
            Err(e) => problems.push(gotmpl_problem(&e)),
        }
        // Go stops at the first error in the source, whichever check finds it.
        if let Some((line, _, message)) = problems
            .into_iter()
            .min_by_key(|(line, col, _)| (*line, *col))
        {
            return Err(FormatError::Parse(format!("template: :{line}: {message}")));
        }
        let compile = |t: gotmpl::Template| {
            t.parse(src).map_err(|e| {
                let (line, _, message) = gotmpl_problem(&e);
                FormatError::Parse(format!("template: :{line}: {message}"))
            })
        };
        let Some(tree) = parsed else {
            unreachable!("a template that did not parse has a problem")
        };
        Ok(Template {
            source: src.to_string(),
            tree,
            body: compile(funcs::with_docker_functions(gotmpl::Template::new("")))?,
            header: compile(funcs::with_header_functions(gotmpl::Template::new("")))?,
        })
    }

    /// Makes a field missing from the data an error instead of printing
    /// `<no value>`. docker's row contexts are Go structs, where `{{.Foo}}`
    /// fails with "can't evaluate field Foo"; map data (labels, inspect
    /// output) keeps Go's map behaviour without this.
    pub fn strict(self) -> Template {
        Template {
            body: self.body.missing_key(MissingKey::Error),
            ..self
        }
    }

    /// Renders the template with any serializable value as `.`; struct fields
    /// are looked up by their serialized names (use PascalCase).
    pub fn render<T: Serialize>(&self, data: &T) -> Result<String, FormatError> {
        self.render_value(&to_value(data)?)
    }

    /// Renders the template with one image's inspect JSON as `.`, failing
    /// where `docker inspect --format` does (see `inspect.rs`): a field the
    /// image does not have is an error, not `<no value>`; a leaf prints as
    /// Go prints its typed value (`[]` for a null list).
    pub fn render_inspect<T: Serialize>(&self, data: &T) -> Result<String, FormatError> {
        let value = to_value(data)?;
        match super::inspect::which_run(&self.source, &self.tree, &value) {
            Run::Typed => self.render_value(&super::inspect::typed_view(&self.tree, &value)),
            Run::Raw => self.render_value(&value),
            Run::Fails(message) => Err(FormatError::Execute(message)),
        }
    }

    /// Renders the template with `data` as `.`.
    pub fn render_value(&self, data: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        self.body
            .execute_fmt(&mut out, data)
            .map_err(execute_error)?;
        Ok(out)
    }

    /// Renders the table header: the template run against a map of field
    /// name to header text, with docker's header functions. As in docker, an
    /// error ends the header where it happened rather than failing.
    pub fn render_header(&self, headers: &[(&str, &str)]) -> String {
        let map: std::collections::BTreeMap<Arc<str>, Value> = headers
            .iter()
            .map(|&(field, text)| (Arc::from(field), Value::String(Arc::from(text))))
            .collect();
        let mut out = String::new();
        // docker ignores this error and keeps what was written before it.
        let _ = self
            .header
            .execute_fmt(&mut out, &Value::Map(Arc::new(map)));
        out
    }
}

fn to_value<T: Serialize>(data: &T) -> Result<Value, FormatError> {
    gotmpl::to_value(data).map_err(|e| FormatError::Data(e.to_string()))
}

/// Line and column (both 1-based, columns in characters) of a check problem.
fn located(src: &str, problem: Problem) -> (usize, usize, String) {
    let before = &src[..problem.offset.min(src.len())];
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = 1 + before[line_start..].chars().count();
    (line, col, problem.message)
}

fn gotmpl_problem(e: &TemplateError) -> (usize, usize, String) {
    match e {
        TemplateError::Parse {
            line, col, message, ..
        }
        | TemplateError::Lex {
            line, col, message, ..
        } => (*line, *col, message.clone()),
        other => (0, 0, other.to_string()),
    }
}

fn execute_error(e: TemplateError) -> FormatError {
    let message = match e {
        TemplateError::Exec(message) => message,
        TemplateError::MissingKey { key } => format!("can't evaluate field {key}"),
        other => other.to_string(),
    };
    FormatError::Execute(format!("template: executing \"\": {message}"))
}

/// Writes `rows` the way docker's formatter does.
///
/// For a table (`Table` uses `default_table`, with or without its `table `
/// prefix), the header line is the template rendered against `headers`
/// (field name to header text, e.g. `("ID", "IMAGE ID")`), then each row, all
/// aligned by [`TableWriter::docker`]. A plain template prints each row
/// followed by a newline, unaligned; `json` prints one JSON object per row
/// with sorted keys. As in docker, the literal two-character sequences `\t`
/// and `\n` in a format are tabs and newlines and surrounding spaces are
/// dropped. Rows render strictly (see [`Template::strict`]) and nothing is
/// written unless every row renders.
pub fn write_rows<W: Write, R: Serialize>(
    out: &mut W,
    format: &OutputFormat,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[R],
) -> Result<(), FormatError> {
    write_rows_of(out, format, default_table, headers, rows, None)
}

/// [`write_rows`] for rows docker renders from a Go struct of type `ty`:
/// what Go refuses on a struct (ranging over it, `index` or `len` of it,
/// a field it lacks) fails as in docker, with Go's position and wording,
/// before any row is written (and, as in docker, only when there are rows).
pub fn write_rows_typed<W: Write, R: Serialize>(
    out: &mut W,
    format: &OutputFormat,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[R],
    ty: RowType,
) -> Result<(), FormatError> {
    write_rows_of(out, format, default_table, headers, rows, Some(ty))
}

fn write_rows_of<W: Write, R: Serialize>(
    out: &mut W,
    format: &OutputFormat,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[R],
    ty: Option<RowType>,
) -> Result<(), FormatError> {
    let source = match format {
        OutputFormat::Table => default_table.strip_prefix("table").unwrap_or(default_table),
        OutputFormat::TableTemplate(source) | OutputFormat::Template(source) => source.as_str(),
        OutputFormat::Json => "{{json .}}",
    };
    let source = source
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let template = Template::parse(&source)?.strict();

    let mut body = String::new();
    for (i, row) in rows.iter().enumerate() {
        let value = to_value(row)?;
        if i == 0
            && let Some(ty) = ty
            && let Some(message) = row::misuse(&template.source, &template.tree, &value, ty)
        {
            return Err(FormatError::Execute(message));
        }
        let _context = ContextRoot::enter(&value);
        body.push_str(&template.render_value(&value)?);
        body.push('\n');
    }

    if !format.is_table() {
        out.write_all(body.as_bytes())?;
        return Ok(());
    }
    let mut table = TableWriter::docker(out);
    table.write_all(template.render_header(headers).as_bytes())?;
    table.write_all(b"\n")?;
    table.write_all(body.as_bytes())?;
    table.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ellipsis, human_size};

    const IMAGES_TABLE: &str =
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    const IMAGE_HEADERS: &[(&str, &str)] = &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
    ];

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct ImageRow {
        #[serde(rename = "ID")]
        id: &'static str,
        repository: &'static str,
        tag: &'static str,
        digest: &'static str,
        created_since: &'static str,
        size: String,
    }

    fn image(
        repository: &'static str,
        tag: &'static str,
        id: &'static str,
        created: &'static str,
        size: u64,
    ) -> ImageRow {
        ImageRow {
            id,
            repository,
            tag,
            digest: "<none>",
            created_since: created,
            size: human_size(size),
        }
    }

    fn images() -> Vec<ImageRow> {
        vec![
            image(
                "nginx",
                "latest",
                "87a94228f133",
                "2 weeks ago",
                133_277_153,
            ),
            image(
                "test_nginx",
                "v1.0",
                "87a94228f133",
                "2 weeks ago",
                133_277_153,
            ),
            image(
                "hello-world",
                "latest",
                "feb5d9fea6a5",
                "5 weeks ago",
                13_256,
            ),
        ]
    }

    fn render<R: Serialize>(
        format: &OutputFormat,
        default_table: &str,
        headers: &[(&str, &str)],
        rows: &[R],
    ) -> String {
        let mut out = Vec::new();
        write_rows(&mut out, format, default_table, headers, rows).expect("rows render");
        String::from_utf8(out).expect("utf-8 output")
    }

    fn error<R: Serialize>(format: &OutputFormat, rows: &[R]) -> String {
        let mut out = Vec::new();
        let err =
            write_rows(&mut out, format, IMAGES_TABLE, IMAGE_HEADERS, rows).expect_err("an error");
        assert!(out.is_empty(), "nothing is written on error");
        err.to_string()
    }

    #[test]
    fn parses_format_arguments() {
        assert_eq!(OutputFormat::parse(None), OutputFormat::Table);
        assert_eq!(OutputFormat::parse(Some("")), OutputFormat::Table);
        assert_eq!(OutputFormat::parse(Some("table")), OutputFormat::Table);
        assert_eq!(OutputFormat::parse(Some("json")), OutputFormat::Json);
        assert_eq!(
            OutputFormat::parse(Some("table {{.ID}}\\t{{.Size}}")),
            OutputFormat::TableTemplate("{{.ID}}\\t{{.Size}}".to_string())
        );
        assert_eq!(
            OutputFormat::parse(Some("tablefoo")),
            OutputFormat::TableTemplate("foo".to_string())
        );
        assert_eq!(
            OutputFormat::parse(Some("table   ")),
            OutputFormat::TableTemplate(String::new())
        );
        assert_eq!(
            OutputFormat::parse(Some("{{.ID}}")),
            OutputFormat::Template("{{.ID}}".to_string())
        );
        assert_eq!(
            OutputFormat::parse(Some(" json")),
            OutputFormat::Template(" json".to_string())
        );
        assert!(OutputFormat::parse(Some("table {{.ID}}")).is_table());
        assert!(!OutputFormat::Json.is_table());
    }

    #[test]
    fn default_images_table_matches_docker() {
        let expected = "REPOSITORY    TAG       IMAGE ID       CREATED       SIZE\n\
                        nginx         latest    87a94228f133   2 weeks ago   133MB\n\
                        test_nginx    v1.0      87a94228f133   2 weeks ago   133MB\n\
                        hello-world   latest    feb5d9fea6a5   5 weeks ago   13.3kB\n";
        assert_eq!(
            render(&OutputFormat::Table, IMAGES_TABLE, IMAGE_HEADERS, &images()),
            expected
        );
        // The default may also be given without its `table` prefix.
        let bare = IMAGES_TABLE.trim_start_matches("table ");
        assert_eq!(
            render(&OutputFormat::Table, bare, IMAGE_HEADERS, &images()),
            expected
        );
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct HistoryRow {
        #[serde(rename = "ID")]
        id: &'static str,
        created_since: &'static str,
        created_by: String,
        size: String,
        comment: &'static str,
    }

    const HISTORY_TABLE: &str =
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    const HISTORY_HEADERS: &[(&str, &str)] = &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];

    fn layer(id: &'static str, created_by: &str, size: u64, comment: &'static str) -> HistoryRow {
        HistoryRow {
            id,
            created_since: "2 weeks ago",
            created_by: ellipsis(created_by, 45),
            size: human_size(size),
            comment,
        }
    }

    #[test]
    fn history_table_matches_docker() {
        let rows = vec![
            layer(
                "87a94228f133",
                "/bin/sh -c #(nop)  CMD [\"nginx\" \"-g\" \"daemon off;\"]",
                0,
                "",
            ),
            layer("<missing>", "/bin/sh -c #(nop)  STOPSIGNAL SIGQUIT", 0, ""),
            layer(
                "<missing>",
                "/bin/sh -c #(nop) ADD file:910392427fdf089bc26b9d6dc4de4d6d2c2c9b9ed8bee0ad2a1b8f3ab0b0b0b0 in / ",
                69_300_000,
                "",
            ),
        ];
        let expected = "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n\
            87a94228f133   2 weeks ago   /bin/sh -c #(nop)  CMD [\"nginx\" \"-g\" \"daemon…   0B        \n\
            <missing>      2 weeks ago   /bin/sh -c #(nop)  STOPSIGNAL SIGQUIT           0B        \n\
            <missing>      2 weeks ago   /bin/sh -c #(nop) ADD file:910392427fdf089bc…   69.3MB    \n";
        assert_eq!(
            render(&OutputFormat::Table, HISTORY_TABLE, HISTORY_HEADERS, &rows),
            expected
        );
    }

    #[test]
    fn history_table_from_docker_tests() {
        // docker/cli formatter_history_test.go, truncated variant.
        let long = "/bin/bash ls && npm i && npm run test && karma -c karma.conf.js start && npm start && more commands here && the list goes on";
        let row = |id, by: &str| HistoryRow {
            id,
            created_since: "24 hours ago",
            created_by: ellipsis(by, 45),
            size: human_size(182_964_289),
            comment: "Hi",
        };
        let rows = vec![
            row("imageID1", long),
            row("imageID2", "/bin/bash echo"),
            row("imageID3", "/bin/bash ls"),
            row("imageID4", "/bin/bash grep"),
        ];
        let expected = "IMAGE      CREATED        CREATED BY                                      SIZE      COMMENT
imageID1   24 hours ago   /bin/bash ls && npm i && npm run test && kar…   183MB     Hi
imageID2   24 hours ago   /bin/bash echo                                  183MB     Hi
imageID3   24 hours ago   /bin/bash ls                                    183MB     Hi
imageID4   24 hours ago   /bin/bash grep                                  183MB     Hi
";
        assert_eq!(
            render(&OutputFormat::Table, HISTORY_TABLE, HISTORY_HEADERS, &rows),
            expected
        );
    }

    #[test]
    fn custom_table_templates() {
        let format = OutputFormat::parse(Some("table {{.Repository}}\\t{{.Tag}}"));
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()),
            "REPOSITORY    TAG\nnginx         latest\ntest_nginx    v1.0\nhello-world   latest\n"
        );
        let format = OutputFormat::parse(Some("table {{.Repository}}"));
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()),
            "REPOSITORY\nnginx\ntest_nginx\nhello-world\n"
        );
        // No rows: the header still prints for a table, nothing otherwise.
        assert_eq!(
            render(
                &format,
                IMAGES_TABLE,
                IMAGE_HEADERS,
                &Vec::<ImageRow>::new()
            ),
            "REPOSITORY\n"
        );
        let plain = OutputFormat::parse(Some("{{.Repository}}"));
        assert_eq!(
            render(&plain, IMAGES_TABLE, IMAGE_HEADERS, &Vec::<ImageRow>::new()),
            ""
        );
    }

    #[test]
    fn header_functions_keep_header_text() {
        let format = OutputFormat::parse(Some(
            "table {{upper .Repository}}\\t{{pad .Tag 1 1}}\\t{{truncate .ID 5}}\\t{{lower .Size}}",
        ));
        // The header cell is " TAG " (pad applies to headers too), the rows'
        // " latest " make that column 11 wide.
        let expected = "REPOSITORY     TAG       IMAGE ID   SIZE\n\
                        NGINX          latest    87a94      133mb\n\
                        TEST_NGINX     v1.0      87a94      133mb\n\
                        HELLO-WORLD    latest    feb5d      13.3kb\n";
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()),
            expected
        );
    }

    #[test]
    fn header_of_unknown_field_and_failed_header() {
        // The header map has no "Containers": Go prints <no value> there.
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Row {
            containers: &'static str,
        }
        let format = OutputFormat::parse(Some("table {{.Containers}}"));
        assert_eq!(
            render(
                &format,
                IMAGES_TABLE,
                IMAGE_HEADERS,
                &[Row { containers: "N/A" }]
            ),
            "<no value>\nN/A\n"
        );
        // `json` on the whole header map fails in docker's header functions:
        // the header line stays empty and the rows still print.
        let format = OutputFormat::parse(Some("table {{json .}}"));
        assert_eq!(
            render(
                &format,
                IMAGES_TABLE,
                IMAGE_HEADERS,
                &[Row { containers: "N/A" }]
            ),
            "\n{\"Containers\":\"N/A\"}\n"
        );
    }

    #[test]
    fn plain_templates_are_not_aligned() {
        let format = OutputFormat::parse(Some("{{.Repository}}:{{.Tag}}\\t{{.Size}}"));
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()),
            "nginx:latest\t133MB\ntest_nginx:v1.0\t133MB\nhello-world:latest\t13.3kB\n"
        );
        let format = OutputFormat::parse(Some("{{.ID}} {{println .Tag}}"));
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()[..1]),
            "87a94228f133 latest\n\n"
        );
    }

    #[test]
    fn json_rows_are_sorted_and_html_escaped_like_docker_contexts() {
        let out = render(
            &OutputFormat::Json,
            IMAGES_TABLE,
            IMAGE_HEADERS,
            &images()[..2],
        );
        assert_eq!(
            out,
            "{\"CreatedSince\":\"2 weeks ago\",\"Digest\":\"\\u003cnone\\u003e\",\"ID\":\"87a94228f133\",\"Repository\":\"nginx\",\"Size\":\"133MB\",\"Tag\":\"latest\"}\n\
             {\"CreatedSince\":\"2 weeks ago\",\"Digest\":\"\\u003cnone\\u003e\",\"ID\":\"87a94228f133\",\"Repository\":\"test_nginx\",\"Size\":\"133MB\",\"Tag\":\"v1.0\"}\n"
        );
        // A single field goes through docker's encoder, which does not escape.
        let format = OutputFormat::parse(Some("{{json .Digest}} {{json .Repository}}"));
        assert_eq!(
            render(&format, IMAGES_TABLE, IMAGE_HEADERS, &images()[..1]),
            "\"<none>\" \"nginx\"\n"
        );
        assert_eq!(
            render(
                &OutputFormat::Json,
                IMAGES_TABLE,
                IMAGE_HEADERS,
                &Vec::<ImageRow>::new()
            ),
            ""
        );
    }

    #[test]
    fn template_functions() {
        let t = |src: &str, data: &str| {
            Template::parse(src)
                .and_then(|t| t.render(&data))
                .unwrap_or_else(|e| format!("error: {e}"))
        };
        assert_eq!(
            t("{{join (split . \":\") \"/\"}}", "text:with:colon"),
            "text/with/colon"
        );
        assert_eq!(t("{{split . \"\"}}", "abc"), "[a b c]");
        assert_eq!(t("{{len (split . \",\")}}", ""), "1");
        assert_eq!(t("{{json .}}", "0.0.0.0:2->8/udp"), "\"0.0.0.0:2->8/udp\"");
        assert_eq!(t("{{truncate . 5}}", "tupx5xzf6hvsrhnruz5cr8gwp"), "tupx5");
        assert_eq!(
            t("{{truncate . 30}}", "tupx5xzf6hvsrhnruz5cr8gwp"),
            "tupx5xzf6hvsrhnruz5cr8gwp"
        );
        assert_eq!(t("{{pad . 3 3}}", "tupx5"), "   tupx5   ");
        assert_eq!(t("{{pad . 3 3}}", ""), "");
        assert_eq!(t("{{truncate . 4}}", "日本"), "日");
        assert_eq!(t("{{title .}}", "hello docker-world"), "Hello Docker-World");
        assert_eq!(t("{{upper .}}|{{lower .}}", "MiXed"), "MIXED|mixed");
        assert_eq!(t("{{printf \"%-8s|\" .}}", "ab"), "ab      |");
        assert_eq!(
            t("{{pad . -1 0}}", "x"),
            "error: template parsing error: template: executing \"\": error calling pad: strings: negative Repeat count"
        );
        assert_eq!(
            t("{{join . \",\"}}", "abc"),
            "error: template parsing error: template: executing \"\": error calling join: expected slice, got string"
        );
        assert_eq!(
            t("{{upper 3}}", ""),
            "error: template parsing error: template: executing \"\": wrong type for value; expected string; got int"
        );
    }

    #[test]
    fn join_lists_and_maps() {
        #[derive(Serialize)]
        struct Data {
            names: Vec<&'static str>,
            ports: Vec<u16>,
            labels: std::collections::BTreeMap<&'static str, &'static str>,
            none: Option<Vec<String>>,
        }
        let data = Data {
            names: vec!["a", "b"],
            ports: vec![80, 443],
            labels: [("z", "1"), ("a", "2")].into_iter().collect(),
            none: None,
        };
        let t = Template::parse("{{join .names \", \"}}|{{join .ports \"/\"}}|{{join .labels \",\"}}|{{join .none \",\"}}")
            .expect("parses");
        assert_eq!(t.render(&data).expect("renders"), "a, b|80/443|1,2|");
    }

    #[test]
    fn render_with_map_semantics_and_strict_mode() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Row {
            name: &'static str,
        }
        let t = Template::parse("{{.Name}} {{.Missing}}").expect("parses");
        assert_eq!(
            t.render(&Row { name: "x" }).expect("renders"),
            "x <no value>"
        );
        let strict = t.strict();
        assert_eq!(
            strict.render(&Row { name: "x" }).map_err(|e| e.to_string()),
            Err(
                "template parsing error: template: executing \"\": can't evaluate field Missing"
                    .to_string()
            )
        );
        let value = gotmpl::to_value(&Row { name: "y" }).expect("converts");
        let t = Template::parse("<{{.Name}}>").expect("parses");
        assert_eq!(t.render_value(&value).expect("renders"), "<y>");
        assert_eq!(t.render_header(&[("Name", "NAME")]), "<NAME>");
    }

    #[test]
    fn parse_errors_read_like_docker() {
        let rows = images();
        assert_eq!(
            error(&OutputFormat::parse(Some("{{InvalidFunction}}")), &rows),
            "template parsing error: template: :1: function \"InvalidFunction\" not defined"
        );
        // Checked before any row: an empty list still fails.
        assert_eq!(
            error(
                &OutputFormat::parse(Some("{{InvalidFunction}}")),
                &Vec::<ImageRow>::new()
            ),
            "template parsing error: template: :1: function \"InvalidFunction\" not defined"
        );
        assert_eq!(
            error(&OutputFormat::parse(Some("{{.ID")), &rows),
            "template parsing error: template: :1: unclosed action"
        );
        assert_eq!(
            error(
                &OutputFormat::parse(Some("{{.ID}}\\n{{end}}{{.Size}}")),
                &rows
            ),
            "template parsing error: template: :2: unexpected {{end}}"
        );
        assert_eq!(
            error(&OutputFormat::parse(Some("table {{range .X}}")), &rows),
            "template parsing error: template: :1: unexpected EOF"
        );
        assert_eq!(
            error(&OutputFormat::parse(Some("{{nil}}")), &rows),
            "template parsing error: template: executing \"\": nil is not a command"
        );
        assert_eq!(
            error(&OutputFormat::parse(Some("{{.Foo}}")), &rows),
            "template parsing error: template: executing \"\": can't evaluate field Foo"
        );
        // The first problem in the source wins, whichever check finds it.
        assert_eq!(
            error(&OutputFormat::parse(Some("{{bad}}{{end}}")), &rows),
            "template parsing error: template: :1: function \"bad\" not defined"
        );
        assert_eq!(
            error(&OutputFormat::parse(Some("{{end}}{{bad}}")), &rows),
            "template parsing error: template: :1: unexpected {{end}}"
        );
    }
}
