//! A whole mirror run: plan every repository, copy every selected tag with
//! bounded parallelism, prune, and say what happened — on a terminal as a
//! status line (tags done of all, bytes, rate), otherwise as plain lines.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::command::{CommandError, Context, Ui};
use crate::digest::Digest;
use crate::format::human_size;
use crate::image::Platform;
use crate::progress::{Event, Progress};

use super::execute::{self, JobSettings, Outcome, Pruned, Status, Wanted};
use super::ledger::Ledger;
use super::plan::{self, Endpoints, PlanError, RepoPlan, TargetRegistry};
use super::request::MirrorRequest;
use super::shard::Shard;

/// How to run a mirror.
#[derive(Debug, Clone, Copy, Default)]
pub struct MirrorOptions {
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Only this worker's share of the repositories.
    pub shard: Option<Shard>,
}

/// Blob transfers per tag; tags run `concurrency` at once.
const BLOBS_PER_TAG: usize = 4;

/// Blob streams in flight in the whole run: what bounds memory (each holds
/// a few 1 MiB chunks), and plenty for loopback or LAN registries.
const STREAMS: usize = 8;

/// Counts bytes as they move, for the status line and the outputs.
#[derive(Default)]
struct Bytes {
    total: AtomicU64,
    seen: Mutex<HashMap<Digest, u64>>,
}

impl Progress for Bytes {
    fn event(&self, event: Event) {
        if let Event::BlobProgress { digest, done, .. } = event {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let before = seen.insert(digest, done).unwrap_or(0);
            // A retried transfer starts again from 0: count only growth.
            if done > before {
                self.total.fetch_add(done - before, Ordering::Relaxed);
            }
        }
    }
}

impl From<PlanError> for CommandError {
    fn from(e: PlanError) -> Self {
        CommandError::Invalid(e.to_string())
    }
}

/// Runs (or, with `dry_run`, plans) a mirror. The outputs: `copied`,
/// `skipped` (up to date, or no selected platform) and `failed`, one entry
/// per tag and target; `pruned`; `repositories` (the plan: tags found,
/// what each filter dropped, what was selected); `bytes`, `blobs_uploaded`,
/// `blobs_mounted`. Some tags failing fails the step, with the outputs.
pub fn run(
    ctx: &Context,
    req: &MirrorRequest,
    ui: &dyn Ui,
    options: &MirrorOptions,
) -> Result<Value, CommandError> {
    let selector = req
        .selector()
        .map_err(|e| CommandError::Invalid(e.to_string()))?;
    let platforms: Vec<Platform> = req
        .platforms
        .iter()
        .map(|p| {
            Platform::parse(p).ok_or_else(|| {
                CommandError::Invalid(format!("{p:?} is not a platform: use os/arch[/variant]"))
            })
        })
        .collect::<Result<_, _>>()?;
    let registries = ctx.registries();
    let mut targets = Vec::new();
    for t in &req.to {
        targets.push(TargetRegistry {
            spec: t.clone(),
            client: registries.client(&t.registry)?,
            ledger: std::sync::Arc::new(Ledger::default()),
        });
    }
    let endpoints = Endpoints {
        from: req.from.clone(),
        source: registries.client(&req.from)?,
        targets,
    };
    let clock = Instant::now();
    // Every registry's endpoint is found at once, not one after another
    // as the first requests reach them; failures surface on first use.
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = endpoints.source.endpoint();
        });
        for t in &endpoints.targets {
            s.spawn(|| {
                let _ = t.client.endpoint();
            });
        }
    });
    let lines: std::sync::Arc<Mutex<Vec<String>>> = std::sync::Arc::default();
    let tag_plugin = match &req.tag_filter {
        None => None,
        Some(name) => {
            let plugin = ctx.plugins().plugin(name, Some(&ctx.plugin_fetch()))?;
            if plugin.world() != crate::plugin::World::Tags {
                return Err(CommandError::Invalid(format!(
                    "plugin {name} is a {}, not a tag filter",
                    plugin.world().name()
                )));
            }
            Some(plugin)
        }
    };
    let tag_plugin = tag_plugin.as_ref().map(|p| plan::TagPlugin {
        plugin: p,
        skip_on_error: ctx
            .plugins()
            .on_error(req.tag_filter.as_deref().unwrap_or_default())
            == crate::plugin::OnError::Skip,
        lines: lines.clone(),
    });
    let transforms = if req.transform.is_empty() {
        None
    } else {
        Some(ctx.transforms(&req.transform, &lines)?)
    };
    let store = if transforms.is_some() {
        Some(ctx.store()?)
    } else {
        None
    };
    let repos = plan::repositories(req, &endpoints.source, options.shard)?;
    let now = chrono::Utc::now();
    let workers = req.concurrency.max(1);
    let plans: Vec<RepoPlan> = parallel(&repos, workers, |r| {
        plan::plan_repository(req, &selector, &endpoints, r, now, tag_plugin.as_ref())
    });
    crate::command::show_plugin_lines(ui, &lines);

    let mut jobs: Vec<(usize, Wanted)> = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        if p.error.is_some() {
            continue;
        }
        jobs.extend(p.selected.iter().map(|t| (i, Wanted::Tag(t.clone()))));
        jobs.extend(plan::digests(p).into_iter().map(|d| (i, Wanted::Digest(d))));
    }
    if options.dry_run {
        return dry_run(ui, req, &endpoints, &plans, &jobs, options);
    }

    let bytes = Bytes::default();
    let done = AtomicUsize::new(0);
    let total = jobs.len();
    let terminal = ui.is_terminal();
    let flights = super::fanout::Flights::default();
    let gate = super::fanout::Gate::new(STREAMS);
    let settings = JobSettings {
        platforms: &platforms,
        referrers: req.referrers,
        blobs: BLOBS_PER_TAG,
        cancel: ctx.cancel(),
        flights: &flights,
        gate: &gate,
        transforms: transforms.as_ref().zip(store),
    };
    let show = |outcomes: &[Outcome]| {
        let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
        let mut out = ui.stdout();
        for o in outcomes {
            if terminal && o.status != Status::Failed {
                continue;
            }
            let line = match o.status {
                Status::Copied => {
                    format!("copied {} -> {} ({} blobs)", o.source, o.target, o.blobs)
                }
                Status::UpToDate => format!("up to date {}", o.target),
                Status::Skipped => format!(
                    "skipped {}: {}",
                    o.source,
                    o.note.clone().unwrap_or_default()
                ),
                Status::Failed => format!(
                    "failed {} -> {}: {}",
                    o.source,
                    o.target,
                    o.error.clone().unwrap_or_default()
                ),
            };
            let clear = if terminal { "\r\x1b[2K" } else { "" };
            let _ = writeln!(out, "{clear}{line}");
        }
        if terminal {
            let moved = bytes.total.load(Ordering::Relaxed);
            let secs = clock.elapsed().as_secs_f64().max(0.001);
            let _ = write!(
                out,
                "\r\x1b[2Kmirror: {finished}/{total} tags, {} at {}/s",
                human_size(moved),
                human_size((moved as f64 / secs) as u64)
            );
            let _ = out.flush();
        }
    };
    let outcomes: Vec<Vec<Outcome>> = parallel(&jobs, workers, |(i, wanted)| {
        let o = execute::run_job(&endpoints, &plans[*i], wanted, &settings, &bytes);
        show(&o);
        o
    });
    if terminal && total > 0 {
        let _ = writeln!(ui.stdout());
    }
    crate::command::show_plugin_lines(ui, &lines);
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();

    let mut pruned: Vec<Pruned> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for p in &plans {
        if let Some(e) = &p.error {
            failures.push(format!("{}/{}: {e}", req.from, p.source));
        }
    }
    if req.prune {
        for p in &plans {
            let mine = |o: &&Outcome| {
                o.source.starts_with(&format!("{}/{}:", req.from, p.source))
                    || o.source.starts_with(&format!("{}/{}@", req.from, p.source))
            };
            let repo_failed = p.error.is_some()
                || outcomes
                    .iter()
                    .filter(mine)
                    .any(|o| o.status == Status::Failed);
            if repo_failed {
                // Not after a partial copy: a half-known state is no basis
                // for deleting.
                continue;
            }
            for t in 0..endpoints.targets.len() {
                match execute::prune(&endpoints, p, t, false) {
                    Ok(done) => {
                        let mut out = ui.stdout();
                        for tag in &done.deleted {
                            let _ = writeln!(out, "pruned {}:{tag}", done.target);
                        }
                        pruned.push(done);
                    }
                    Err(e) => failures.push(format!("prune {}: {e}", p.targets[t])),
                }
            }
        }
    }
    failures.extend(
        outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .map(|o| {
                format!(
                    "{} -> {}: {}",
                    o.source,
                    o.target,
                    o.error.clone().unwrap_or_default()
                )
            }),
    );
    let (mut uploaded, mut mounted) = (0, 0);
    for t in &endpoints.targets {
        let (u, m) = t.ledger.counts();
        uploaded += u;
        mounted += m;
    }
    let pick = |s: &[Status]| -> Vec<&Outcome> {
        outcomes.iter().filter(|o| s.contains(&o.status)).collect()
    };
    let outputs = json!({
        "copied": pick(&[Status::Copied]),
        "skipped": pick(&[Status::UpToDate, Status::Skipped]),
        "failed": pick(&[Status::Failed]),
        "pruned": pruned,
        "repositories": plans,
        "bytes": bytes.total.load(Ordering::Relaxed),
        "blobs_uploaded": uploaded,
        "blobs_mounted": mounted,
        "shard": options.shard.map(|s| s.to_string()),
    });
    {
        let copied = outcomes
            .iter()
            .filter(|o| o.status == Status::Copied)
            .count();
        let fresh = outcomes
            .iter()
            .filter(|o| o.status == Status::UpToDate)
            .count();
        let _ = writeln!(
            ui.stdout(),
            "mirror: {copied} copied, {fresh} up to date, {} failed; {} blobs uploaded ({}), {} mounted, in {:.1}s",
            failures.len(),
            uploaded,
            human_size(bytes.total.load(Ordering::Relaxed)),
            mounted,
            clock.elapsed().as_secs_f64()
        );
    }
    if failures.is_empty() {
        Ok(outputs)
    } else {
        Err(CommandError::Incomplete {
            outputs: Box::new(outputs),
            failures,
        })
    }
}

/// Runs `f` over `items` on `workers` threads; results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.min(items.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The plan, with what each target lacks and how many bytes that is;
/// read-only requests only.
fn dry_run(
    ui: &dyn Ui,
    req: &MirrorRequest,
    endpoints: &Endpoints,
    plans: &[RepoPlan],
    jobs: &[(usize, Wanted)],
    options: &MirrorOptions,
) -> Result<Value, CommandError> {
    let mut out = ui.stdout();
    let mut repos_out = Vec::new();
    if let Some(s) = options.shard {
        let _ = writeln!(out, "shard {s}: {} repositories", plans.len());
    }
    for (i, p) in plans.iter().enumerate() {
        let targets: Vec<String> = endpoints
            .targets
            .iter()
            .zip(&p.targets)
            .map(|(t, r)| format!("{}/{r}", t.spec.registry))
            .collect();
        let _ = writeln!(out, "{}/{} -> {}", req.from, p.source, targets.join(", "));
        if let Some(e) = &p.error {
            let _ = writeln!(out, "  error: {e}");
            repos_out.push(json!({"source": p.source, "error": e}));
            continue;
        }
        let _ = writeln!(out, "  tags found: {}", p.found);
        for d in &p.dropped {
            let shown: Vec<String> = if d.reasons.is_empty() {
                d.tags.clone()
            } else {
                d.tags
                    .iter()
                    .zip(&d.reasons)
                    .map(|(t, r)| format!("{t} ({r})"))
                    .collect()
            };
            let _ = writeln!(
                out,
                "  dropped by {} ({}): {}",
                d.filter,
                d.tags.len(),
                shown.join(" ")
            );
        }
        let mut to_copy = Vec::new();
        let mut fresh = Vec::new();
        let mut blobs: HashMap<Digest, u64> = HashMap::new();
        for (_, wanted) in jobs.iter().filter(|(r, _)| *r == i) {
            let text = match wanted {
                Wanted::Tag(t) => t.clone(),
                Wanted::Digest(d) => d.to_string(),
            };
            let source = match endpoints.source.get_manifest(&p.source, &text) {
                Ok(m) => m,
                Err(e) => {
                    let _ = writeln!(out, "  cannot read {text}: {e}");
                    continue;
                }
            };
            let mut lacking = false;
            for (t, repo) in endpoints.targets.iter().zip(&p.targets) {
                let there = t.client.head_manifest(repo, &text).ok().flatten();
                if there.is_none_or(|h| h.digest != source.digest) {
                    lacking = true;
                    for b in blobs_of(endpoints, &p.source, &source) {
                        if t.client
                            .blob_size(repo, b.digest())
                            .ok()
                            .flatten()
                            .is_none()
                        {
                            blobs.insert(b.digest().clone(), b.size());
                        }
                    }
                }
            }
            if lacking {
                to_copy.push(text);
            } else {
                fresh.push(text);
            }
        }
        let bytes: u64 = blobs.values().sum();
        let _ = writeln!(
            out,
            "  to copy ({}): {}{}",
            to_copy.len(),
            to_copy.join(" "),
            if to_copy.is_empty() {
                String::new()
            } else {
                format!(" — {} blobs, {}", blobs.len(), human_size(bytes))
            }
        );
        let _ = writeln!(out, "  up to date ({}): {}", fresh.len(), fresh.join(" "));
        let mut prune_list = Vec::new();
        if req.prune {
            for t in 0..endpoints.targets.len() {
                if let Ok(pr) = execute::prune(endpoints, p, t, true) {
                    let _ = writeln!(
                        out,
                        "  to prune in {} ({}): {}",
                        pr.target,
                        pr.deleted.len(),
                        pr.deleted.join(" ")
                    );
                    for k in &pr.kept {
                        let _ = writeln!(out, "  not pruned: {k}");
                    }
                    prune_list.push(pr);
                }
            }
        }
        repos_out.push(json!({
            "source": p.source,
            "targets": targets,
            "found": p.found,
            "dropped": p.dropped,
            "selected": p.selected,
            "to_copy": to_copy,
            "up_to_date": fresh,
            "bytes": bytes,
            "blobs": blobs.len(),
            "prune": prune_list,
        }));
    }
    let outputs = json!({
        "repositories": repos_out,
        "copied": [],
        "skipped": [],
        "failed": [],
        "pruned": [],
        "shard": options.shard.map(|s| s.to_string()),
    });
    // A repository that cannot be planned would fail the real run too.
    let failures: Vec<String> = plans
        .iter()
        .filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("{}/{}: {e}", req.from, p.source))
        })
        .collect();
    if failures.is_empty() {
        Ok(outputs)
    } else {
        Err(CommandError::Incomplete {
            outputs: Box::new(outputs),
            failures,
        })
    }
}

/// The blobs an image or index needs (children's too), from manifests only.
fn blobs_of(
    endpoints: &Endpoints,
    repo: &str,
    top: &crate::image::RawManifest,
) -> Vec<oci_spec::image::Descriptor> {
    let mut out = Vec::new();
    let mut image = |m: &crate::image::RawManifest| {
        if let Ok(parsed) = serde_json::from_slice::<oci_spec::image::ImageManifest>(&m.bytes) {
            out.push(parsed.config().clone());
            out.extend(parsed.layers().iter().cloned());
        }
    };
    match top.kind() {
        Ok(crate::image::ManifestKind::Image) => image(top),
        Ok(crate::image::ManifestKind::Index) => {
            if let Ok(index) = crate::image::Index::new(top.clone()) {
                for c in index.children() {
                    if let Ok(m) = endpoints.source.get_manifest(repo, c.digest().as_ref()) {
                        image(&m);
                    }
                }
            }
        }
        Err(_) => {}
    }
    out
}
