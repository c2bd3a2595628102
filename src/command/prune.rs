//! `strata image prune`: removes dangling images (or, with `-a`, every
//! image not in use), with docker's rules and output. An image is in use
//! when it is mounted (`strata mount`): strata has no containers, and a
//! mount is what holds an image here.
//!
//! Asking for confirmation is the front end's: the command line asks
//! unless `--force`; a library caller has decided already.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::digest::Digest;
use crate::format;
use crate::transport::store::{LookupError, Removal, RemoveError, Store, StoredImage};

use super::{CommandError, Context, Ui};

/// `image prune [OPTIONS]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ImagePruneRequest {
    /// Remove all unused images, not just dangling ones.
    pub all: bool,
    /// Do not prompt for confirmation (the prompt is the front end's).
    pub force: bool,
    /// Provide filter values (until=TIMESTAMP|DURATION, label=KEY[=VALUE], label!=KEY[=VALUE]).
    #[serde(deserialize_with = "super::one_or_many")]
    pub filter: Vec<String>,
}

/// docker's confirmation for `image prune`.
pub const DANGLING_WARNING: &str =
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue?";
/// docker's confirmation for `image prune -a`, with mounts for containers.
pub const ALL_WARNING: &str = "WARNING! This will remove all images without at least one mount associated to them.\nAre you sure you want to continue?";

/// What a prune removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// docker's `untagged:` and `deleted:` records, in order.
    pub removals: Vec<Removal>,
    /// Unpacked sizes of the layers deleted, as docker counts reclaimed space.
    pub reclaimed: u64,
}

/// The filters `image prune` understands.
#[derive(Debug, Default)]
pub struct PruneFilters {
    until: Option<DateTime<Utc>>,
    labels: Vec<(String, Option<String>)>,
    not_labels: Vec<(String, Option<String>)>,
}

impl PruneFilters {
    /// Parses `until=…`, `label=…` and `label!=…`, in docker's words.
    pub fn parse(filters: &[String], now: DateTime<Utc>) -> Result<PruneFilters, CommandError> {
        let mut out = PruneFilters::default();
        for raw in filters {
            let (key, value) = raw.split_once('=').ok_or_else(|| {
                CommandError::Invalid("bad format of filter (expected name=value)".into())
            })?;
            let kv = || match value.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (value.to_string(), None),
            };
            match key {
                "until" => out.until = Some(parse_until(value, now)?),
                "label" => out.labels.push(kv()),
                "label!" => out.not_labels.push(kv()),
                _ => return Err(CommandError::Invalid(format!("Invalid filter '{key}'"))),
            }
        }
        Ok(out)
    }

    fn keeps(&self, image: &StoredImage) -> bool {
        if let Some(until) = self.until
            && let Some(created) = image
                .image
                .config()
                .created()
                .as_deref()
                .and_then(super::images::parse_time)
            && created > until
        {
            return false;
        }
        let labels = image.image.labels();
        let has =
            |(k, v): &(String, Option<String>)| super::images::has_label(&labels, k, v.as_deref());
        // docker drops an image only when every `label!` filter matches it.
        let excluded = !self.not_labels.is_empty() && self.not_labels.iter().all(has);
        self.labels.iter().all(has) && !excluded
    }
}

/// docker's `until`: a Go duration before now (`24h`, `1h30m`), an RFC 3339
/// time or date, or Unix seconds.
fn parse_until(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CommandError> {
    let bad = || {
        CommandError::Invalid(format!(
            "failed to parse value as time or duration: {value:?}"
        ))
    };
    if let Some(d) = go_duration(value) {
        return chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for layout in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, layout) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
    {
        let whole = secs.trunc() as i64;
        let nanos = ((secs - secs.trunc()) * 1e9) as u32;
        return DateTime::from_timestamp(whole, nanos).ok_or_else(bad);
    }
    Err(bad())
}

/// Go's `time.ParseDuration` for non-negative values: numbers with units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, one after another.
fn go_duration(text: &str) -> Option<std::time::Duration> {
    if text.is_empty() || text == "0" {
        return (text == "0").then_some(std::time::Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += number * unit;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// Removes what `image prune` removes: images without a tag (or, with
/// `all`, every image) that no mount uses and the filters keep.
pub fn prune_images(
    store: &Store,
    all: bool,
    filters: &PruneFilters,
) -> Result<Pruned, CommandError> {
    let images = store.list()?;
    let mounted: HashSet<Digest> = store.mounts()?.into_iter().map(|m| m.image).collect();
    // Layer sizes by chain ID, taken before anything goes (docker counts
    // the unpacked size of each layer it deletes).
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    for i in &images {
        for (layer, chain) in i.image.layers().iter().zip(i.image.chain_ids()) {
            if let Ok(info) = store.layer_info_for(layer) {
                sizes.insert(chain, info.size);
            }
        }
    }
    // One candidate per image ID, with every name of it.
    let mut candidates: Vec<(&StoredImage, Vec<String>)> = Vec::new();
    for i in &images {
        match candidates.iter_mut().find(|(c, _)| c.id() == i.id()) {
            Some((_, names)) => names.extend(i.names.iter().map(|n| n.to_string())),
            None => candidates.push((i, i.names.iter().map(|n| n.to_string()).collect())),
        }
    }
    let mut pruned = Pruned::default();
    for (image, names) in candidates {
        if mounted.contains(image.id()) || !filters.keeps(image) {
            continue;
        }
        let tagged = images
            .iter()
            .filter(|i| i.id() == image.id())
            .any(|i| i.tags().next().is_some());
        if tagged && !all {
            continue;
        }
        // docker's reference store gives an image's names sorted.
        let queries = if names.is_empty() {
            vec![image.id().to_string()]
        } else {
            let mut names = names;
            names.sort();
            names
        };
        for q in queries {
            match store.remove(&q, false) {
                Ok(records) => pruned.removals.extend(records),
                // A digest name goes with its repository's last tag.
                Err(RemoveError::Lookup(LookupError::NotFound(_))) => {}
                // In use or referenced elsewhere: docker skips it too.
                Err(RemoveError::Conflict { .. }) => break,
                Err(e) => return Err(store_error(e)),
            }
        }
    }
    pruned.reclaimed = pruned
        .removals
        .iter()
        .filter_map(|r| match r {
            Removal::Deleted(d) => sizes.get(d),
            Removal::Untagged(_) => None,
        })
        .sum();
    Ok(pruned)
}

fn store_error(e: RemoveError) -> CommandError {
    match e {
        RemoveError::Lookup(e) => e.into(),
        RemoveError::Store(e) => e.into(),
        other => CommandError::Invalid(other.to_string()),
    }
}

/// Writes docker's `Deleted Images:` section (nothing when nothing went).
pub(crate) fn write_removals(out: &mut dyn Write, pruned: &Pruned) -> std::io::Result<()> {
    if pruned.removals.is_empty() {
        return Ok(());
    }
    writeln!(out, "Deleted Images:")?;
    for r in &pruned.removals {
        match r {
            Removal::Untagged(name) => writeln!(out, "untagged: {}", name.familiar_string())?,
            Removal::Deleted(d) => writeln!(out, "deleted: {d}")?,
        }
    }
    // docker prints the section with Println: one blank line after it.
    writeln!(out)
}

/// The outputs of a prune, for a pipeline or a library caller.
pub(crate) fn outputs(pruned: &Pruned) -> serde_json::Value {
    let (mut untagged, mut deleted) = (Vec::new(), Vec::new());
    for r in &pruned.removals {
        match r {
            Removal::Untagged(n) => untagged.push(n.to_string()),
            Removal::Deleted(d) => deleted.push(d.to_string()),
        }
    }
    serde_json::json!({
        "untagged": untagged,
        "deleted": deleted,
        "reclaimed": pruned.reclaimed,
    })
}

/// Runs `image prune` (the caller has confirmed).
pub fn run(
    ctx: &Context,
    args: &ImagePruneRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let filters = PruneFilters::parse(&args.filter, Utc::now())?;
    let store = ctx.store_for_writing()?;
    let pruned = prune_images(store, args.all, &filters)?;
    let mut out = ui.stdout();
    write_removals(&mut out, &pruned)?;
    writeln!(
        out,
        "Total reclaimed space: {}",
        format::human_size_precision(pruned.reclaimed as f64, 4)
    )?;
    out.flush()?;
    Ok(outputs(&pruned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn until_takes_durations_times_and_unix_seconds_as_docker_does() {
        let at = |v: &str| parse_until(v, now()).unwrap().to_rfc3339();
        assert_eq!(at("24h"), "2026-01-01T03:04:05+00:00");
        assert_eq!(at("1h30m"), "2026-01-02T01:34:05+00:00");
        assert_eq!(at("2025-12-31"), "2025-12-31T00:00:00+00:00");
        assert_eq!(at("2025-12-31T10:00:00Z"), "2025-12-31T10:00:00+00:00");
        assert_eq!(at("1700000000"), "2023-11-14T22:13:20+00:00");
        let e = parse_until("xyz", now()).unwrap_err().to_string();
        assert_eq!(e, "failed to parse value as time or duration: \"xyz\"");
        assert!(parse_until("24d", now()).is_err());
    }

    #[test]
    fn filter_keys_are_checked_in_docker_words() {
        let e = PruneFilters::parse(&["foo=bar".into()], now()).unwrap_err();
        assert_eq!(e.to_string(), "Invalid filter 'foo'");
        let e = PruneFilters::parse(&["label".into()], now()).unwrap_err();
        assert_eq!(e.to_string(), "bad format of filter (expected name=value)");
        let f = PruneFilters::parse(&["label=a=b".into(), "label!=c".into()], now()).unwrap();
        assert_eq!(f.labels, [("a".to_string(), Some("b".to_string()))]);
        assert_eq!(f.not_labels, [("c".to_string(), None)]);
    }
}
