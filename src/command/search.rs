//! `strata search TERM`: Docker Hub's search API, or a registry's catalog
//! for `HOST[:PORT]/TERM`, in docker's columns.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::format::{self, OutputFormat};
use crate::transport::registry::{catalog, client};

use super::{CommandError, Context, Ui};

/// `search [OPTIONS] TERM`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What to look for; `HOST[:PORT]/TERM` searches that registry's catalog.
    pub term: String,
    /// Filter output based on conditions provided (stars=N, is-official=BOOL, is-automated=BOOL).
    #[serde(default, deserialize_with = "super::one_or_many")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template.
    #[serde(default)]
    pub format: Option<String>,
    /// Max number of search results.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Don't truncate output.
    #[serde(default)]
    pub no_trunc: bool,
}

fn default_limit() -> usize {
    25
}

/// Search errors that are not the registry's.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The search service could not be reached or answered badly.
    #[error("{what}: {detail}")]
    Service {
        /// What failed, with the service's address.
        what: String,
        /// Why.
        detail: String,
    },
    /// The search service answered with an error status.
    #[error("the search service at {base} answered HTTP {status}")]
    Status {
        /// The service's address.
        base: String,
        /// The HTTP status.
        status: u16,
    },
}

const DEFAULT_TABLE: &str =
    "{{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}";
const HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
];

/// Where Docker Hub's search API is; `STRATA_HUB_SEARCH_URL` points it
/// elsewhere (the tests serve a recorded Hub answer on loopback).
fn hub_base() -> String {
    std::env::var("STRATA_HUB_SEARCH_URL").unwrap_or_else(|_| "https://index.docker.io".into())
}

#[derive(Deserialize)]
struct HubResults {
    #[serde(default)]
    results: Vec<HubResult>,
}

#[derive(Deserialize, Serialize, Clone)]
struct HubResult {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    star_count: u64,
    #[serde(default)]
    is_official: bool,
    #[serde(default)]
    is_automated: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    name: String,
    description: String,
    star_count: String,
    is_official: String,
    is_automated: String,
}

#[derive(Default)]
struct Filters {
    stars: u64,
    official: Option<bool>,
    automated: Option<bool>,
}

fn parse_filters(raw: &[String]) -> Result<Filters, CommandError> {
    let mut f = Filters::default();
    for r in raw {
        let (k, v) = r.split_once('=').ok_or_else(|| {
            CommandError::Invalid("bad format of filter (expected name=value)".into())
        })?;
        let bool_of = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(CommandError::Invalid(format!("invalid filter '{k}={v}'"))),
        };
        match k {
            "stars" => {
                f.stars = v
                    .parse()
                    .map_err(|_| CommandError::Invalid(format!("invalid filter 'stars={v}'")))?
            }
            "is-official" => f.official = Some(bool_of(v)?),
            "is-automated" => f.automated = Some(bool_of(v)?),
            _ => return Err(CommandError::Invalid(format!("invalid filter '{k}'"))),
        }
    }
    Ok(f)
}

/// A registry-qualified term (`HOST[:PORT]/TERM`) names a registry to search.
fn registry_term(term: &str) -> Option<(&str, &str)> {
    let (first, rest) = term.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some((first, rest))
}

/// Runs `search`. The outputs: `results`, each with `name`,
/// `description`, `star_count`, `is_official` and `is_automated` (for a
/// registry's catalog, `name` is the full repository name to pull).
pub fn run(
    ctx: &Context,
    args: &SearchRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    if args.limit < 1 || args.limit > 100 {
        return Err(CommandError::Invalid(format!(
            "Limit {} is outside the range of [1, 100]",
            args.limit
        )));
    }
    let filters = parse_filters(&args.filter)?;
    let results = match registry_term(&args.term) {
        Some((registry, term)) if registry != "docker.io" && registry != "index.docker.io" => {
            let client = ctx.registries().client(registry)?;
            catalog(&client)?
                .into_iter()
                .filter(|repo| repo.contains(term))
                .map(|repo| HubResult {
                    name: format!("{registry}/{repo}"),
                    description: String::new(),
                    star_count: 0,
                    is_official: false,
                    is_automated: false,
                })
                .collect()
        }
        other => hub_search(other.map_or(args.term.as_str(), |(_, t)| t), args.limit)?,
    };
    let kept: Vec<HubResult> = results
        .into_iter()
        .filter(|r| r.star_count >= filters.stars)
        .filter(|r| filters.official.is_none_or(|o| o == r.is_official))
        .filter(|r| filters.automated.is_none_or(|a| a == r.is_automated))
        .take(args.limit)
        .collect();
    let outputs = serde_json::json!({ "results": &kept });
    let rows: Vec<Row> = kept
        .into_iter()
        .map(|r| {
            let desc = r.description.replace(['\n', '\r'], " ");
            Row {
                name: r.name,
                description: if args.no_trunc {
                    desc
                } else {
                    format::ellipsis(&desc, 45)
                },
                star_count: r.star_count.to_string(),
                is_official: if r.is_official {
                    "[OK]".into()
                } else {
                    String::new()
                },
                is_automated: if r.is_automated {
                    "[OK]".into()
                } else {
                    String::new()
                },
            }
        })
        .collect();
    let fmt = OutputFormat::parse(args.format.as_deref());
    let mut out = ui.stdout();
    format::write_rows_typed(
        &mut out,
        &fmt,
        DEFAULT_TABLE,
        HEADERS,
        &rows,
        format::RowType("search.searchContext"),
    )?;
    Ok(outputs)
}

fn hub_search(term: &str, limit: usize) -> Result<Vec<HubResult>, SearchError> {
    let base = hub_base();
    let url = format!(
        "{}/v1/search?q={}&n={limit}",
        base.trim_end_matches('/'),
        client::url_escape(term)
    );
    let fail = |what: String, detail: String| SearchError::Service { what, detail };
    let client = reqwest::blocking::Client::builder()
        .user_agent(format!("strata/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail("cannot set up HTTP".into(), e.to_string()))?;
    let resp = client.get(&url).send().map_err(|e| {
        fail(
            format!("cannot reach the search service at {base}"),
            e.to_string(),
        )
    })?;
    if !resp.status().is_success() {
        return Err(SearchError::Status {
            base,
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    resp.take(16 << 20)
        .read_to_end(&mut body)
        .map_err(|e| fail("reading search results".into(), e.to_string()))?;
    let parsed: HubResults = serde_json::from_slice(&body).map_err(|e| {
        fail(
            format!("the search service at {base} answered something that is not search results"),
            e.to_string(),
        )
    })?;
    Ok(parsed.results)
}
