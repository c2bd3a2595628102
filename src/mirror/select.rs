//! Tag selection, in a fixed order whose every stage the dry run reports:
//! include and exclude regexes, a semver range, the latest N, newer than a
//! duration, then explicit digests (which add manifests rather than drop
//! tags).

use std::cmp::Reverse;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use semver::{Version, VersionReq};

/// Why a tag policy is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// A regex does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The compiler's message, on one line.
        reason: String,
    },
    /// A semver range does not parse.
    #[error("invalid semver range {range:?}: {reason}")]
    Semver {
        /// The range.
        range: String,
        /// Why.
        reason: String,
    },
    /// A duration does not parse.
    #[error("invalid duration {0:?}: use a number and a unit (s, m, h, d or w), e.g. 90d")]
    Duration(String),
}

/// Compiles a regex, with its error on one line.
pub fn regex(pattern: &str) -> Result<Regex, SelectError> {
    Regex::new(pattern).map_err(|e| SelectError::Regex {
        pattern: pattern.to_string(),
        reason: e
            .to_string()
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
    })
}

/// Parses a semver range as npm writes them (`>=1.2 <3`, `^1.4 || ~2.0`,
/// `1.x`): comparators separated by spaces all apply, `||` separates
/// alternatives.
pub fn semver_range(range: &str) -> Result<Vec<VersionReq>, SelectError> {
    let bad = |reason: String| SelectError::Semver {
        range: range.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for alternative in range.split("||") {
        // Join an operator written apart from its version (`>= 1.2`).
        let mut parts: Vec<String> = Vec::new();
        let mut pending = String::new();
        for token in alternative.split_whitespace() {
            if token.chars().all(|c| "<>=~^".contains(c)) {
                pending.push_str(token);
                continue;
            }
            parts.push(format!("{pending}{token}"));
            pending.clear();
        }
        if !pending.is_empty() {
            return Err(bad(format!("operator {pending:?} has no version")));
        }
        if parts.is_empty() {
            return Err(bad("an empty alternative".into()));
        }
        let req = VersionReq::parse(&parts.join(", ")).map_err(|e| bad(e.to_string()))?;
        out.push(req);
    }
    Ok(out)
}

/// A tag read as a version: a leading `v` dropped, missing minor and patch
/// taken as 0 (`v1.2` is 1.2.0), a suffix after `-` kept as a pre-release.
/// Tags that are not versions (`latest`, `bookworm`) give `None`.
pub fn tag_version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.is_empty()
        || nums.len() > 3
        || nums
            .iter()
            .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = nums.join(".");
    for _ in nums.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&format!("{full}{rest}")).ok()
}

/// Parses `90d`, `12h`, `30m`, `45s`, `2w`.
pub fn duration(text: &str) -> Result<Duration, SelectError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| SelectError::Duration(text.into()))?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| SelectError::Duration(text.into()))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(SelectError::Duration(text.into())),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Gives a tag's image creation time, when known.
pub type CreatedFn<'a, E> = dyn FnMut(&str) -> Result<Option<DateTime<Utc>>, E> + 'a;

/// A tag policy, compiled.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Keep tags matching any of these (all when empty).
    pub include: Vec<Regex>,
    /// Drop tags matching any of these.
    pub exclude: Vec<Regex>,
    /// Keep tags that are versions within any of these ranges.
    pub semver: Option<Vec<VersionReq>>,
    /// Keep the newest N.
    pub latest: Option<usize>,
    /// Keep tags whose image was created within this long before now.
    pub newer_than: Option<Duration>,
}

/// One stage of selection and the tags it dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// The stage: `include`, `exclude`, `semver`, `latest`, `newer_than`,
    /// `tag_filter`.
    pub filter: &'static str,
    /// The tags it dropped, in the order they were listed.
    pub tags: Vec<String>,
    /// Why, per tag, when the stage says (a tag-filter plugin does).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The outcome of selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The tags kept, in the order the registry listed them.
    pub kept: Vec<String>,
    /// What each stage dropped (stages that ran, in order).
    pub dropped: Vec<Dropped>,
}

impl Selector {
    /// True when a stage needs each tag's creation time.
    pub fn needs_created(&self, tags: &[String]) -> bool {
        self.newer_than.is_some()
            || (self.latest.is_some() && tags.iter().any(|t| tag_version(t).is_none()))
    }

    /// Selects from `tags`. `created` gives a tag's image creation time; it
    /// is asked only for tags that reach a stage needing it, so a registry
    /// is queried no more than needed. A tag whose time is unknown counts as
    /// the oldest.
    pub fn select<E>(
        &self,
        tags: &[String],
        now: DateTime<Utc>,
        created: &mut CreatedFn<'_, E>,
    ) -> Result<Selection, E> {
        let mut kept: Vec<String> = tags.to_vec();
        let mut dropped = Vec::new();
        let mut stage =
            |name: &'static str, kept: &mut Vec<String>, keep: &dyn Fn(&str) -> bool| {
                let (k, d): (Vec<String>, Vec<String>) = kept.drain(..).partition(|t| keep(t));
                *kept = k;
                dropped.push(Dropped {
                    filter: name,
                    tags: d,
                    reasons: Vec::new(),
                });
            };
        if !self.include.is_empty() {
            stage("include", &mut kept, &|t| {
                self.include.iter().any(|r| r.is_match(t))
            });
        }
        if !self.exclude.is_empty() {
            stage("exclude", &mut kept, &|t| {
                !self.exclude.iter().any(|r| r.is_match(t))
            });
        }
        if let Some(reqs) = &self.semver {
            stage("semver", &mut kept, &|t| {
                tag_version(t).is_some_and(|v| reqs.iter().any(|r| r.matches(&v)))
            });
        }
        let mut times: std::collections::HashMap<String, Option<DateTime<Utc>>> =
            std::collections::HashMap::new();
        if let Some(n) = self.latest {
            let by_version = kept.iter().all(|t| tag_version(t).is_some());
            let mut order: Vec<String> = kept.clone();
            if by_version {
                order.sort_by_key(|t| Reverse(tag_version(t)));
            } else {
                for t in &order {
                    if !times.contains_key(t) {
                        times.insert(t.clone(), created(t)?);
                    }
                }
                // Newest first; equal times keep the registry's order.
                order.sort_by_key(|t| Reverse(times[t]));
            }
            let newest: std::collections::HashSet<String> = order.into_iter().take(n).collect();
            stage("latest", &mut kept, &|t| newest.contains(t));
        }
        if let Some(age) = self.newer_than {
            let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            for t in &kept {
                if !times.contains_key(t) {
                    times.insert(t.clone(), created(t)?);
                }
            }
            stage("newer_than", &mut kept, &|t| {
                times.get(t).copied().flatten().is_some_and(|c| c > cutoff)
            });
        }
        Ok(Selection { kept, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn no_times(_: &str) -> Result<Option<DateTime<Utc>>, ()> {
        panic!("creation times were not needed")
    }

    #[test]
    fn versions_from_tags() {
        assert_eq!(tag_version("v1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(tag_version("1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(tag_version("3"), Some(Version::new(3, 0, 0)));
        assert_eq!(tag_version("2.1.0-rc1").unwrap().pre.as_str(), "rc1");
        assert_eq!(tag_version("latest"), None);
        assert_eq!(tag_version("1.2.3.4"), None);
        assert_eq!(tag_version("bookworm"), None);
        assert_eq!(tag_version("v"), None);
    }

    #[test]
    fn npm_style_ranges() {
        let r = semver_range(">=1.2 <3").unwrap();
        let ok = |t: &str| r.iter().any(|q| q.matches(&tag_version(t).unwrap()));
        assert!(ok("1.2.0") && ok("2.9.9") && !ok("3.0.0") && !ok("1.1.9"));
        let r = semver_range(">= 1.2 || ^4").unwrap();
        assert!(r.iter().any(|q| q.matches(&Version::new(4, 5, 0))));
        assert!(semver_range(">=").is_err());
        assert!(semver_range("not a range").is_err());
    }

    #[test]
    fn stages_run_in_order_and_report_what_they_drop() {
        let s = Selector {
            include: vec![regex("^v").unwrap()],
            exclude: vec![regex("-rc").unwrap()],
            semver: Some(semver_range(">=1.2 <3").unwrap()),
            latest: Some(2),
            newer_than: None,
        };
        let all = tags(&[
            "v1.0.0",
            "v1.2.0",
            "v2.0.0-rc1",
            "v2.0.0",
            "v2.1.0",
            "latest",
            "v3.0.0",
        ]);
        let sel = s.select(&all, Utc::now(), &mut no_times).unwrap();
        assert_eq!(sel.kept, tags(&["v2.0.0", "v2.1.0"]));
        assert_eq!(sel.dropped[0].tags, tags(&["latest"]));
        assert_eq!(sel.dropped[1].tags, tags(&["v2.0.0-rc1"]));
        assert_eq!(sel.dropped[2].tags, tags(&["v1.0.0", "v3.0.0"]));
        assert_eq!(sel.dropped[3].tags, tags(&["v1.2.0"]));
    }

    #[test]
    fn latest_by_creation_time_for_tags_that_are_not_versions() {
        let now = Utc::now();
        let s = Selector {
            latest: Some(1),
            newer_than: Some(duration("10d").unwrap()),
            ..Selector::default()
        };
        let all = tags(&["bookworm", "bullseye", "trixie"]);
        let mut asked = Vec::new();
        let sel = s
            .select(&all, now, &mut |t: &str| -> Result<_, ()> {
                asked.push(t.to_string());
                Ok(match t {
                    "trixie" => Some(now - chrono::Duration::days(1)),
                    "bookworm" => Some(now - chrono::Duration::days(100)),
                    _ => None,
                })
            })
            .unwrap();
        assert_eq!(sel.kept, tags(&["trixie"]));
        // Each time is asked once, however many stages use it.
        asked.sort();
        assert_eq!(asked, tags(&["bookworm", "bullseye", "trixie"]));
    }

    #[test]
    fn newer_than_drops_old_and_unknown() {
        let now = Utc::now();
        let s = Selector {
            newer_than: Some(duration("90d").unwrap()),
            ..Selector::default()
        };
        let all = tags(&["a", "b", "c"]);
        let sel = s
            .select(&all, now, &mut |t: &str| -> Result<_, ()> {
                Ok(match t {
                    "a" => Some(now - chrono::Duration::days(10)),
                    "b" => Some(now - chrono::Duration::days(91)),
                    _ => None,
                })
            })
            .unwrap();
        assert_eq!(sel.kept, tags(&["a"]));
        assert_eq!(sel.dropped[0].tags, tags(&["b", "c"]));
    }

    #[test]
    fn durations_and_regex_errors() {
        assert_eq!(duration("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert!(duration("90").is_err());
        assert!(duration("d").is_err());
        assert!(duration("5y").is_err());
        let e = regex("(").unwrap_err().to_string();
        assert!(e.starts_with("invalid regex \"(\": "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
