//! Running a checked pipeline: steps in order, each request built from its
//! keys with expressions evaluated, `if`, `for_each` (with `parallel`),
//! `retry`, `timeout` and `continue_on_error`, outputs kept for later
//! steps, and a report of it all.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::cancel::Cancel;
use crate::command::{CommandError, Context, TransferMode, TransferView, Ui};
use crate::digest::Digest;
use crate::progress::{Event, Outcome, Progress};

use super::action::{Request, StepEnv};
use super::expr::{self, Scope, Template};
use super::spec::{Pipeline, Step};
use super::yaml::{Mode, Node, NodeKind};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// Run only this worker's shard of every mirror step.
    pub shard: Option<crate::mirror::Shard>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran and succeeded (every item, for `for_each`).
    Succeeded,
    /// It failed (some item, for `for_each`).
    Failed,
    /// Its `if:` was false, or an earlier step failed.
    Skipped,
    /// A dry run described it.
    Planned,
}

/// One run of a step's action (a step with `for_each` has one per item).
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// The item, for `for_each`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// How it ended.
    pub status: Status,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Bytes the action moved.
    pub bytes: u64,
    /// Its outputs.
    pub outputs: Value,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Its place, from 1.
    pub number: usize,
    /// Its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its action.
    pub action: String,
    /// How it ended.
    pub status: Status,
    /// True when it failed but `continue_on_error` let the pipeline go on.
    pub continued: bool,
    /// When it started (RFC 3339), if it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Bytes moved, all items together.
    pub bytes: u64,
    /// Its outputs: the action's, or a list of them for `for_each`.
    pub outputs: Value,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each item's run, for `for_each`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemReport>,
}

/// What a whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The pipeline file.
    pub pipeline: String,
    /// Its `name:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// True for a dry run.
    pub dry_run: bool,
    /// `succeeded` or `failed`.
    pub status: Status,
    /// When it started (RFC 3339).
    pub started: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
}

impl Report {
    /// The exit status: 0 when every step succeeded (or was allowed to
    /// fail), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.status == Status::Failed { 1 } else { 0 }
    }
}

/// Errors evaluating a pipeline's values at run time.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An expression failed.
    #[error("{file}:{line}:{col}: {message}")]
    Eval {
        /// The pipeline file.
        file: String,
        /// Its line.
        line: usize,
        /// Its column.
        col: usize,
        /// What went wrong.
        message: String,
    },
}

/// What expressions see while the pipeline runs.
struct State {
    vars: Map<String, Value>,
    steps: Map<String, Value>,
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl State {
    fn scope<'a>(&'a self, item: Option<&'a Value>) -> Scope<'a> {
        Scope {
            vars: &self.vars,
            env: &env_lookup,
            steps: &self.steps,
            item,
        }
    }
}

/// Evaluates every expression in `node`; a scalar that is exactly one
/// expression takes the expression's type (a list stays a list).
pub(crate) fn evaluate_node(node: &Node, scope: &Scope<'_>, file: &str) -> Result<Node, RunError> {
    let fail = |message: String| RunError::Eval {
        file: file.to_string(),
        line: node.pos.line,
        col: node.pos.col,
        message,
    };
    Ok(match &node.kind {
        NodeKind::Null => node.clone(),
        NodeKind::Seq(items) => Node::new(
            NodeKind::Seq(
                items
                    .iter()
                    .map(|i| evaluate_node(i, scope, file))
                    .collect::<Result<_, _>>()?,
            ),
            node.pos,
        ),
        NodeKind::Map(entries) => Node::new(
            NodeKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), evaluate_node(v, scope, file)?)))
                    .collect::<Result<_, RunError>>()?,
            ),
            node.pos,
        ),
        NodeKind::Scalar { text, .. } => {
            if !node.is_expression() {
                return Ok(node.clone());
            }
            let template = Template::parse(text).map_err(|e| fail(e.message))?;
            let value = template.eval(scope).map_err(|e| fail(e.to_string()))?;
            Node::from_json(&value, node.pos)
        }
    })
}

/// Runs `pipeline`: steps in order; a failed step stops the run unless it
/// has `continue_on_error`, and the steps after it are reported skipped.
pub fn run(pipeline: &Pipeline, ctx: &Context, ui: &dyn Ui, options: &RunOptions) -> Report {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mut report = Report {
        pipeline: pipeline.file.clone(),
        name: pipeline.name.clone(),
        dry_run: options.dry_run,
        status: Status::Succeeded,
        started: started.to_rfc3339(),
        duration_ms: 0,
        steps: Vec::new(),
    };
    let mut state = State {
        vars: Map::new(),
        steps: Map::new(),
    };
    let mut stopped: Option<String> = None;
    for (name, node) in &pipeline.vars {
        match evaluate_node(node, &state.scope(None), &pipeline.file) {
            Ok(n) => {
                state.vars.insert(name.clone(), n.to_json());
            }
            Err(e) => {
                ui.warn(&format!("strata: {e}"));
                stopped = Some(e.to_string());
                report.status = Status::Failed;
                break;
            }
        }
    }
    let total = pipeline.steps.len();
    for step in &pipeline.steps {
        let mut r = StepReport {
            number: step.index + 1,
            id: step.id.clone(),
            action: step.action.clone(),
            status: Status::Skipped,
            continued: false,
            started: None,
            duration_ms: 0,
            bytes: 0,
            outputs: Value::Null,
            error: None,
            items: Vec::new(),
        };
        if let Some(why) = &stopped {
            r.error = Some(format!("not run: {why}"));
            report.steps.push(r);
            continue;
        }
        ui.warn(&format!(
            "strata: step {}/{total}: {}{}",
            step.index + 1,
            step.action,
            step.id
                .as_ref()
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default()
        ));
        run_step(pipeline, step, ctx, ui, options, &state, &mut r);
        if r.status == Status::Failed {
            if step.continue_on_error {
                r.continued = true;
                ui.warn(&format!(
                    "strata: {} failed; continuing (continue_on_error)",
                    step.label()
                ));
            } else {
                stopped = Some(format!("{} failed", step.label()));
                report.status = Status::Failed;
            }
        }
        if let Some(id) = &step.id {
            let status = serde_json::to_value(r.status).unwrap_or(Value::Null);
            state.steps.insert(
                id.clone(),
                serde_json::json!({ "outputs": r.outputs, "status": status }),
            );
        }
        report.steps.push(r);
    }
    if options.dry_run && report.status != Status::Failed {
        report.status = Status::Planned;
    }
    report.duration_ms = clock.elapsed().as_millis() as u64;
    report
}

fn run_step(
    pipeline: &Pipeline,
    step: &Step,
    ctx: &Context,
    ui: &dyn Ui,
    options: &RunOptions,
    state: &State,
    r: &mut StepReport,
) {
    let clock = Instant::now();
    r.started = Some(chrono::Utc::now().to_rfc3339());
    let fail = |r: &mut StepReport, message: String| {
        ui.warn(&format!("strata: {}: {message}", step.label()));
        r.status = Status::Failed;
        r.error = Some(message);
    };
    if let Some(when) = &step.when {
        match evaluate_node(when, &state.scope(None), &pipeline.file) {
            Ok(n) if !expr::truthy(&n.to_json()) => {
                ui.warn(&format!("strata: {}: skipped (if: false)", step.label()));
                r.status = Status::Skipped;
                return;
            }
            Ok(_) => {}
            Err(e) if options.dry_run => {
                ui.warn(&format!(
                    "strata: {}: would run if its condition holds ({e})",
                    step.label()
                ));
            }
            Err(e) => return fail(r, e.to_string()),
        }
    }
    let items: Option<Vec<Value>> = match &step.for_each {
        None => None,
        Some(node) => match evaluate_node(node, &state.scope(None), &pipeline.file) {
            Ok(n) => match n.to_json() {
                Value::Array(list) => Some(list),
                other => {
                    return fail(
                        r,
                        format!("for_each gave {} instead of a list", short_json(&other)),
                    );
                }
            },
            Err(e) => return fail(r, e.to_string()),
        },
    };
    match items {
        None => {
            let item = run_item(pipeline, step, ctx, ui, options, state, None, false);
            r.status = item.status;
            r.bytes = item.bytes;
            r.outputs = item.outputs.clone();
            r.error = item.error.clone();
        }
        Some(list) => {
            let quiet = step.parallel > 1;
            let results: Mutex<Vec<Option<ItemReport>>> = Mutex::new(vec![None; list.len()]);
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..step.parallel.min(list.len()).max(1) {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(item) = list.get(i) else { break };
                            let done = run_item(
                                pipeline,
                                step,
                                ctx,
                                ui,
                                options,
                                state,
                                Some(item),
                                quiet,
                            );
                            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(done);
                        }
                    });
                }
            });
            r.items = results
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .into_iter()
                .flatten()
                .collect();
            r.bytes = r.items.iter().map(|i| i.bytes).sum();
            r.outputs = Value::Array(r.items.iter().map(|i| i.outputs.clone()).collect());
            let failed: Vec<&ItemReport> = r
                .items
                .iter()
                .filter(|i| i.status == Status::Failed)
                .collect();
            r.status = if !failed.is_empty() {
                Status::Failed
            } else if options.dry_run {
                Status::Planned
            } else {
                Status::Succeeded
            };
            if let Some(first) = failed.first() {
                r.error = Some(format!(
                    "{} of {} items failed; first: {}",
                    failed.len(),
                    r.items.len(),
                    first.error.clone().unwrap_or_default()
                ));
            }
        }
    }
    r.duration_ms = clock.elapsed().as_millis() as u64;
}

/// Runs one item (or the step itself), with its retries and timeout.
#[allow(clippy::too_many_arguments)]
fn run_item(
    pipeline: &Pipeline,
    step: &Step,
    ctx: &Context,
    ui: &dyn Ui,
    options: &RunOptions,
    state: &State,
    item: Option<&Value>,
    quiet: bool,
) -> ItemReport {
    let clock = Instant::now();
    let mut report = ItemReport {
        item: item.cloned(),
        status: Status::Failed,
        attempts: 0,
        duration_ms: 0,
        bytes: 0,
        outputs: Value::Null,
        error: None,
    };
    let label = match item {
        Some(v) => format!("{} [{}]", step.label(), short_json(v)),
        None => step.label(),
    };
    let evaluated = evaluate_node(&step.body, &state.scope(item), &pipeline.file)
        .map_err(|e| e.to_string())
        .and_then(|body| {
            Request::parse(&step.action, &body, Mode::Strict)
                .map(|r| (body, r))
                .map_err(|e| match e.pos {
                    Some(p) => format!(
                        "{}:{}:{}: {}: {}",
                        pipeline.file, p.line, p.col, step.action, e.message
                    ),
                    None => format!("{}: {}: {}", pipeline.file, step.action, e.message),
                })
        });
    let env = StepEnv {
        dry_run: options.dry_run,
        shard: options.shard,
    };
    if options.dry_run && !evaluated.as_ref().is_ok_and(|(_, r)| r.plans_itself()) {
        // Values from earlier steps are not known without running them:
        // such a step is shown with its expressions as written.
        let shown = match &evaluated {
            Ok((body, _)) => body.to_json(),
            Err(_) => step.body.to_json(),
        };
        let mut out = ui.stdout();
        let _ = writeln!(
            out,
            "would run {label}: {} {}",
            step.action,
            serde_json::to_string(&shown).unwrap_or_default()
        );
        report.status = Status::Planned;
        report.duration_ms = clock.elapsed().as_millis() as u64;
        return report;
    }
    let request = match evaluated {
        Ok((_, r)) => r,
        Err(e) => {
            ui.warn(&format!("strata: {label}: {e}"));
            report.error = Some(e);
            return report;
        }
    };
    let counting = CountingUi {
        inner: ui,
        bytes: AtomicU64::new(0),
        quiet,
    };
    // A dry run reads and plans: once is enough.
    let attempts = if options.dry_run {
        1
    } else {
        step.retry.attempts
    };
    for attempt in 1..=attempts {
        report.attempts = attempt;
        let result = attempt_once(step, ctx, &counting, &request, &env);
        match result {
            Ok(outputs) => {
                report.status = Status::Succeeded;
                report.outputs = outputs;
                report.error = None;
                break;
            }
            Err(e) => {
                let text = error_text(&e);
                report.error = Some(text.clone());
                if let StepError::Command(c) = &e
                    && let CommandError::Incomplete { outputs, .. } = &**c
                {
                    report.outputs = (**outputs).clone();
                }
                if attempt < attempts {
                    let wait = step.retry.backoff * 2u32.saturating_pow(attempt - 1);
                    ui.warn(&format!(
                        "strata: {label}: attempt {attempt} of {attempts} failed: {text}; trying again in {}",
                        humantime(wait)
                    ));
                    std::thread::sleep(wait);
                } else {
                    ui.warn(&format!("strata: {label}: {text}"));
                }
            }
        }
    }
    report.bytes = counting.bytes.load(Ordering::SeqCst);
    report.duration_ms = clock.elapsed().as_millis() as u64;
    report
}

/// A command's error on one line, each failed item of several.
fn error_text(e: &StepError) -> String {
    match e {
        StepError::Command(e) => match &**e {
            CommandError::Partial(list) => list.join("; "),
            CommandError::Incomplete { failures, .. } => {
                format!("{} failed: {}", failures.len(), failures.join("; "))
            }
            e => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    let t = s.to_string();
                    if !text.contains(&t) {
                        text = format!("{text}: {t}");
                    }
                    source = s.source();
                }
                text.replace(['\n', '\r'], " ")
            }
        },
        StepError::Timeout(d) => format!("timed out after {}", humantime(*d)),
        StepError::Panicked => "the step panicked".into(),
    }
}

enum StepError {
    Command(Box<CommandError>),
    Timeout(Duration),
    Panicked,
}

/// One attempt; with a timeout, on a thread of its own that is cancelled
/// (cooperatively: it stops at its next blob or chunk) when time is up.
fn attempt_once(
    step: &Step,
    ctx: &Context,
    ui: &CountingUi<'_>,
    request: &Request,
    env: &StepEnv,
) -> Result<Value, StepError> {
    let Some(limit) = step.timeout else {
        return request
            .run(ctx, ui, env)
            .map_err(|e| StepError::Command(Box::new(e)));
    };
    let cancel = Cancel::new();
    let ctx = ctx.with_cancel(cancel.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let ctx = &ctx;
        s.spawn(move || {
            let _ = tx.send(request.run(ctx, ui, env));
        });
        match rx.recv_timeout(limit) {
            Ok(result) => result.map_err(|e| StepError::Command(Box::new(e))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                cancel.cancel();
                // The step stops at its next check; wait for it so nothing
                // it does outlives the step.
                let _ = rx.recv();
                Err(StepError::Timeout(limit))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StepError::Panicked),
        }
    })
}

/// A duration as people write it: 1.5s, 2m, 250ms.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0}s")
        } else {
            format!("{s:.1}s")
        }
    }
}

fn short_json(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// The step's view of the front end: the same output, progress hidden when
/// items run in parallel (their bars would overwrite each other), and the
/// bytes every transfer moved counted for the report.
struct CountingUi<'a> {
    inner: &'a dyn Ui,
    bytes: AtomicU64,
    quiet: bool,
}

impl Ui for CountingUi<'_> {
    fn stdout(&self) -> Box<dyn Write + '_> {
        self.inner.stdout()
    }
    fn warn(&self, line: &str) {
        self.inner.warn(line);
    }
    fn transfer(&self, mode: TransferMode, shown: bool) -> Box<dyn TransferView + '_> {
        Box::new(Counting {
            inner: self.inner.transfer(mode, shown && !self.quiet),
            sizes: Mutex::new(HashMap::new()),
            bytes: &self.bytes,
        })
    }
    fn is_terminal(&self) -> bool {
        self.inner.is_terminal() && !self.quiet
    }
}

struct Counting<'a> {
    inner: Box<dyn TransferView + 'a>,
    sizes: Mutex<HashMap<Digest, u64>>,
    bytes: &'a AtomicU64,
}

impl Progress for Counting<'_> {
    fn event(&self, event: Event) {
        match &event {
            Event::BlobStart { digest, size, .. } => {
                self.sizes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(digest.clone(), *size);
            }
            Event::BlobDone {
                digest,
                outcome: Outcome::Moved,
                ..
            } => {
                let size = self
                    .sizes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(digest)
                    .copied()
                    .unwrap_or(0);
                self.bytes.fetch_add(size, Ordering::SeqCst);
            }
            _ => {}
        }
        self.inner.event(event);
    }
}

impl TransferView for Counting<'_> {
    fn announce(&self, digest: &Digest, id: &str, status: &str) {
        self.inner.announce(digest, id, status);
    }
    fn finish(&self) {
        self.inner.finish();
    }
}
