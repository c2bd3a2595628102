//! `strata images [REPOSITORY[:TAG]]`

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, FixedOffset, Timelike};
use serde::{Deserialize, Serialize};

use crate::format::{self, OutputFormat};
use crate::reference::Reference;
use crate::transport::store::{StoredImage, lookup_in};

use super::{CommandError, Context, Ui};

/// `images [OPTIONS] [REPOSITORY[:TAG]]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesRequest {
    /// Only images of this repository (and tag).
    pub reference: Option<String>,
    /// Show all images (default hides intermediate images).
    pub all: bool,
    /// Show digests.
    pub digests: bool,
    /// Filter output based on conditions provided (reference=PATTERN, dangling=BOOL, label=KEY[=VALUE], before=IMAGE, since=IMAGE).
    #[serde(deserialize_with = "super::one_or_many")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    pub format: Option<String>,
    /// Don't truncate output.
    pub no_trunc: bool,
    /// Only show image IDs.
    pub quiet: bool,
}

const DEFAULT_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGESTS_TABLE: &str =
    "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// One row, with every field docker's image templates can use.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    repository: String,
    tag: String,
    digest: String,
    #[serde(rename = "ID")]
    id: String,
    created_since: String,
    created_at: String,
    size: String,
    containers: String,
    virtual_size: String,
    shared_size: String,
    unique_size: String,
}

/// Parses an RFC 3339 time from an image config.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// An image as listed: every manifest with this config, merged.
struct Listed<'a> {
    first: &'a StoredImage,
    names: Vec<Reference>,
    created: Option<DateTime<FixedOffset>>,
}

/// The filters `images` understands.
#[derive(Default)]
struct Filters {
    references: Vec<String>,
    dangling: Option<bool>,
    labels: Vec<(String, Option<String>)>,
    before: Option<DateTime<FixedOffset>>,
    since: Option<DateTime<FixedOffset>>,
}

fn parse_filters(args: &ImagesRequest, images: &[StoredImage]) -> Result<Filters, CommandError> {
    let mut f = Filters::default();
    let created_of = |q: &str| -> Result<Option<DateTime<FixedOffset>>, CommandError> {
        let img = lookup_in(images, q)?;
        Ok(img.image.config().created().as_deref().and_then(parse_time))
    };
    for raw in &args.filter {
        let (key, value) = raw.split_once('=').ok_or_else(|| {
            CommandError::Invalid("bad format of filter (expected name=value)".into())
        })?;
        match key {
            "reference" => f.references.push(value.to_string()),
            "dangling" => {
                f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(CommandError::Invalid(format!(
                            "invalid filter 'dangling={value}'"
                        )));
                    }
                })
            }
            "label" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                };
                f.labels.push((k, v));
            }
            "before" => f.before = created_of(value)?,
            "since" => f.since = created_of(value)?,
            _ => return Err(CommandError::Invalid(format!("invalid filter '{key}'"))),
        }
    }
    if let Some(r) = &args.reference {
        f.references.push(r.clone());
    }
    Ok(f)
}

/// Runs `images`; the outputs are the rows.
pub fn run(
    ctx: &Context,
    args: &ImagesRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let store = ctx.store()?;
    let stored = store.list()?;
    let filters = parse_filters(args, &stored)?;
    let mut listed: Vec<Listed> = Vec::new();
    for s in &stored {
        if let Some(l) = listed.iter_mut().find(|l| l.first.id() == s.id()) {
            l.names.extend(s.names.iter().cloned());
            continue;
        }
        let created = s.image.config().created().as_deref().and_then(parse_time);
        listed.push(Listed {
            first: s,
            names: s.names.clone(),
            created,
        });
    }
    // docker's daemon matches each name against each pattern, and a
    // malformed pattern fails the listing as soon as there is a name.
    if stored.iter().any(|s| !s.names.is_empty())
        && filters.references.iter().any(|p| !is_valid_pattern(p))
    {
        return Err(CommandError::Invalid("syntax error in pattern".into()));
    }
    listed.retain_mut(|l| keep(l, &filters));
    listed.sort_by_key(|l| std::cmp::Reverse(l.created));
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for l in &listed {
        let mut size = 0;
        for layer in l.first.image.layers() {
            size += store.layer_info_for(layer)?.size;
        }
        let id = l.first.id();
        for (repo, tag, digest) in row_names(&l.names, args.digests) {
            rows.push(Row {
                repository: repo,
                tag,
                digest,
                id: if args.no_trunc {
                    id.to_string()
                } else {
                    format::truncate_id(id.as_ref())
                },
                created_since: format::created_since(l.created, now),
                // docker keeps image creation times in whole seconds here.
                created_at: l
                    .created
                    .and_then(|t| t.with_nanosecond(0))
                    .map(|t| format::go_time_string(&t))
                    .unwrap_or_default(),
                size: format::human_size(size),
                containers: "N/A".into(),
                virtual_size: format::human_size_precision(size as f64, 4),
                shared_size: "N/A".into(),
                unique_size: "N/A".into(),
            });
        }
    }
    let outputs = serde_json::json!({ "images": &rows });
    let mut out = ui.stdout();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(outputs);
    }
    let default = if args.digests {
        DIGESTS_TABLE
    } else {
        DEFAULT_TABLE
    };
    let fmt = OutputFormat::parse(args.format.as_deref());
    format::write_rows_typed(
        &mut out,
        &fmt,
        default,
        HEADERS,
        &rows,
        format::RowType("formatter.imageContext"),
    )?;
    Ok(outputs)
}

/// docker's `label=KEY` (the key is there) or `label=KEY=VALUE` (with
/// that value) filter on an image's labels.
pub(crate) fn has_label(
    labels: &std::collections::HashMap<String, String>,
    key: &str,
    value: Option<&str>,
) -> bool {
    match (labels.get(key), value) {
        (None, _) => false,
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
    }
}

/// Applies the filters; a reference filter also narrows the names shown.
fn keep(l: &mut Listed, f: &Filters) -> bool {
    if let Some(d) = f.dangling
        && d != l.names.is_empty()
    {
        return false;
    }
    if !f.references.is_empty() {
        l.names
            .retain(|n| f.references.iter().any(|p| reference_matches(p, n)));
        if l.names.is_empty() {
            return false;
        }
    }
    let labels = l.first.image.labels();
    if !f
        .labels
        .iter()
        .all(|(k, v)| has_label(&labels, k, v.as_deref()))
    {
        return false;
    }
    if let Some(before) = f.before
        && l.created.is_none_or(|c| c >= before)
    {
        return false;
    }
    if let Some(since) = f.since
        && l.created.is_none_or(|c| c <= since)
    {
        return false;
    }
    true
}

/// docker's `reference` filter: the pattern matches the familiar name with
/// its tag, or the familiar name alone.
fn reference_matches(pattern: &str, name: &Reference) -> bool {
    glob_match(pattern, &name.familiar_string()) || glob_match(pattern, &name.familiar_name())
}

/// Go's `path.Match`: `*` and `?` never match `/`; `[...]` classes with
/// ranges and `^` negation; `\` escapes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

/// Whether Go's `path.Match` accepts `pattern` (it checks the whole of it,
/// matching or not): every `\` escapes a character, every `[` class is
/// closed and not empty, and no `-` or `]` stands where a member must.
pub fn is_valid_pattern(pattern: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    // One class member: a character, or `\` and one; never a bare `-` or `]`.
    let member = |i: usize| -> Option<(char, usize)> {
        match p.get(i)? {
            '-' | ']' => None,
            '\\' => p.get(i + 1).map(|&c| (c, i + 2)),
            &c => Some((c, i + 1)),
        }
    };
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if p.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if p.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    let Some((_lo, next)) = member(i) else {
                        return false;
                    };
                    i = next;
                    if p.get(i) == Some(&'-') {
                        // `z-a` is an empty range, not a malformed one.
                        let Some((_hi, next)) = member(i + 1) else {
                            return false;
                        };
                        i = next;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len())
            .take_while(|&i| i == 0 || t[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => t.first().is_some_and(|&c| c != '/') && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(&c) = t.first() else { return false };
            let Some(end) = p.iter().skip(1).position(|&x| x == ']').map(|e| e + 1) else {
                return false;
            };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && c != '/' && glob_at(&p[end + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && glob_at(&p[2..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && glob_at(&p[1..], &t[1..]),
    }
}

/// docker's rows for one image: one per repository and tag (and, with
/// `--digests`, per digest); digest-only repositories get a `<none>` tag;
/// an image with no names one `<none> <none>` row.
fn row_names(names: &[Reference], digests: bool) -> Vec<(String, String, String)> {
    if names.is_empty() {
        return vec![("<none>".into(), "<none>".into(), "<none>".into())];
    }
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut repo_digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in names {
        if let Some(d) = n.digest() {
            repo_digests
                .entry(n.familiar_name())
                .or_default()
                .push(d.to_string());
        } else if let Some(t) = n.tag() {
            tags.entry(n.familiar_name())
                .or_default()
                .push(t.to_string());
        }
    }
    let mut rows = Vec::new();
    for (repo, repo_tags) in &tags {
        let ds = repo_digests.remove(repo).unwrap_or_default();
        for tag in repo_tags {
            if !digests || ds.is_empty() {
                rows.push((repo.clone(), tag.clone(), "<none>".into()));
            } else {
                for d in &ds {
                    rows.push((repo.clone(), tag.clone(), d.clone()));
                }
            }
        }
    }
    for (repo, ds) in repo_digests {
        if digests {
            for d in ds {
                rows.push((repo.clone(), "<none>".into(), d));
            }
        } else {
            rows.push((repo, "<none>".into(), "<none>".into()));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_follows_go_path_match() {
        assert!(glob_match("ngin*", "nginx:latest"));
        assert!(!glob_match("*", "library/nginx"));
        assert!(glob_match("*/*", "user/app"));
        assert!(glob_match("ng?nx", "nginx"));
        assert!(!glob_match("[a-m]ginx", "nginx"));
        assert!(glob_match("[^a-m]ginx", "nginx"));
        assert!(glob_match("nginx:1.[0-9]", "nginx:1.7"));
    }

    #[test]
    fn malformed_patterns_are_refused_as_go_refuses_them() {
        for good in ["ngin*", "[a-m]ginx", "[^a-m]x", "a\\*b", "[\\]]", "x[z-a]"] {
            assert!(is_valid_pattern(good), "{good}");
        }
        let bad = [
            "[", "ab[", "[]", "[]a]", "x[a-]", "[-a]", "a\\", "[a", "[^]",
        ];
        for bad in bad {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn rows_follow_docker_grouping() {
        let n = |s: &str| Reference::parse(s).unwrap();
        let names = vec![n("nginx:latest"), n("test_nginx:v1.0")];
        let rows = row_names(&names, false);
        assert_eq!(rows[0], ("nginx".into(), "latest".into(), "<none>".into()));
        assert_eq!(
            rows[1],
            ("test_nginx".into(), "v1.0".into(), "<none>".into())
        );
        assert_eq!(row_names(&[], true)[0].0, "<none>");
    }
}
