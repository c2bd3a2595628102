//! `strata search TERM`: Docker Hub's search API, or a registry's catalog
//! for `HOST[:PORT]/TERM`, in docker's columns.

use std::io::Read;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use strata::format::{self, OutputFormat};
use strata::transport::registry::{catalog, client};

use crate::cli::args::SearchArgs;
use crate::cli::cmd::registry::Registries;

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

#[derive(Deserialize, Clone)]
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

fn parse_filters(raw: &[String]) -> anyhow::Result<Filters> {
    let mut f = Filters::default();
    for r in raw {
        let (k, v) = r
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        let bool_of = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(anyhow!("invalid filter '{k}={v}'")),
        };
        match k {
            "stars" => {
                f.stars = v
                    .parse()
                    .map_err(|_| anyhow!("invalid filter 'stars={v}'"))?
            }
            "is-official" => f.official = Some(bool_of(v)?),
            "is-automated" => f.automated = Some(bool_of(v)?),
            _ => bail!("invalid filter '{k}'"),
        }
    }
    Ok(f)
}

/// A registry-qualified term (`HOST[:PORT]/TERM`) names a registry to search.
fn registry_term(term: &str) -> Option<(&str, &str)> {
    let (first, rest) = term.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some((first, rest))
}

/// Runs `search`.
pub fn run(registries: &Registries, args: &SearchArgs) -> anyhow::Result<()> {
    if args.limit < 1 || args.limit > 100 {
        bail!("Limit {} is outside the range of [1, 100]", args.limit);
    }
    let filters = parse_filters(&args.filter)?;
    let results = match registry_term(&args.term) {
        Some((registry, term)) if registry != "docker.io" && registry != "index.docker.io" => {
            let client = registries.client(registry)?;
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
    let rows: Vec<Row> = results
        .into_iter()
        .filter(|r| r.star_count >= filters.stars)
        .filter(|r| filters.official.is_none_or(|o| o == r.is_official))
        .filter(|r| filters.automated.is_none_or(|a| a == r.is_automated))
        .take(args.limit)
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
    let mut out = std::io::stdout().lock();
    format::write_rows(&mut out, &fmt, DEFAULT_TABLE, HEADERS, &rows)?;
    Ok(())
}

fn hub_search(term: &str, limit: usize) -> anyhow::Result<Vec<HubResult>> {
    let base = hub_base();
    let url = format!(
        "{}/v1/search?q={}&n={limit}",
        base.trim_end_matches('/'),
        client::url_escape(term)
    );
    let client = reqwest::blocking::Client::builder()
        .user_agent(format!("strata/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up HTTP")?;
    let resp = client
        .get(&url)
        .send()
        .with_context(|| format!("cannot reach the search service at {base}"))?;
    if !resp.status().is_success() {
        bail!(
            "the search service at {base} answered HTTP {}",
            resp.status().as_u16()
        );
    }
    let mut body = Vec::new();
    resp.take(16 << 20)
        .read_to_end(&mut body)
        .context("reading search results")?;
    let parsed: HubResults = serde_json::from_slice(&body).with_context(|| {
        format!("the search service at {base} answered something that is not search results")
    })?;
    Ok(parsed.results)
}
