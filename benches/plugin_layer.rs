//! strata's layer-plugin benchmark (run by `scripts/bench-plugins`, which
//! documents it): layer transforms through the host's own pipeline
//! (`strata::plugin::layer::transform_with`: decompress, tar, rules,
//! recompress, digests), deciding either in a WebAssembly component or
//! natively, on the same layer, in one process.
//!
//! - `native-slim`: slim's rules (`plugins/slim/src/rules.rs`, compiled
//!   here as it is compiled into the component) behind the host's `Decide`
//!   seam; `native-reproducible`: reproducible's rule (C in its component)
//!   written again in Rust, three assignments; `native-keep`: keeps all,
//!   the pipeline's own cost.
//! - `wasm:NAME=FILE`: a component, instantiated per layer as strata does.
//!
//! Every decider runs `--runs` full transforms of each layer (interleaved,
//! so a burst of other load hits all alike); the time inside its calls
//! (`begin`, `entries`, `finish`) is measured around each call. Then the
//! layer's batches (recorded from the first run, as the pipeline cut them)
//! are replayed `--replays` times through a fresh decider with nothing
//! else running: the decision cost alone, per entry. Contents are not
//! replayed (every entry reads as empty): none of the plugins measured
//! reads content.
//!
//! usage: plugin_layer --out FILE.tsv --tmp DIR [--cache DIR] [--runs N]
//!        [--replays N] (--layer NAME=FILE --deciders D,D,...)...
//!   D: native-slim | native-reproducible | native-keep | wasm:NAME=FILE
//! Prints a table; FILE.tsv has one line per (layer, decider):
//!   layer entries decider full_median_s decide_median_s calls_median_s
//!   replay_ns_per_entry instantiate_ms output_digest

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::digest;
use strata::plugin::PluginError;
use strata::plugin::layer::{
    Codec, Decide, Decision, EntryHeader, EntryKind, LayerInfo, LayerMeta, PluginDecider,
    Replacement, transform_with,
};
use strata::plugin::load::{LoadOptions, Plugin};
use strata::plugin::state::{Content, ContentSource, LogSink};
use strata::plugin::{Limits, PluginEngine};

// Its unit tests come along, compiled out (hence the allowances).
#[path = "../plugins/slim/src/rules.rs"]
#[allow(dead_code, unused_imports)]
mod slim_rules;

/// slim's decisions, natively: the component's `entries` with the same
/// rules and the same per-layer memory.
struct NativeSlim(slim_rules::Slimmer);

impl Decide for NativeSlim {
    fn name(&self) -> &str {
        "native-slim"
    }
    fn begin(&mut self, _layer: &LayerInfo) -> Result<(), PluginError> {
        self.0 = slim_rules::Slimmer::default();
        Ok(())
    }
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        _contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        headers
            .iter()
            .map(|h| {
                let link = match h.kind {
                    EntryKind::Hardlink => h.link_target.as_deref(),
                    _ => None,
                };
                match self
                    .0
                    .drops(&h.path, h.size, h.kind == EntryKind::File, link)
                {
                    Ok(true) => Ok(Decision::Drop),
                    Ok(false) => Ok(Decision::Keep),
                    Err(e) => Err(self.failed("entries", Some(&h.path), e)),
                }
            })
            .collect()
    }
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        Ok(Vec::new())
    }
}

/// reproducible's rule (mtime 0, owner and group 0), natively.
struct NativeReproducible;

impl Decide for NativeReproducible {
    fn name(&self) -> &str {
        "native-reproducible"
    }
    fn begin(&mut self, _layer: &LayerInfo) -> Result<(), PluginError> {
        Ok(())
    }
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        _contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        Ok(headers
            .iter()
            .map(|h| {
                if h.mtime == 0 && h.uid == 0 && h.gid == 0 {
                    Decision::Keep
                } else {
                    let mut h = h.clone();
                    h.mtime = 0;
                    h.uid = 0;
                    h.gid = 0;
                    Decision::Rewrite(h)
                }
            })
            .collect())
    }
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        Ok(Vec::new())
    }
}

/// Keeps everything: what the pipeline costs with no decision to make.
struct NativeKeep;

impl Decide for NativeKeep {
    fn name(&self) -> &str {
        "native-keep"
    }
    fn begin(&mut self, _layer: &LayerInfo) -> Result<(), PluginError> {
        Ok(())
    }
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        _contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        Ok(vec![Decision::Keep; headers.len()])
    }
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        Ok(Vec::new())
    }
}

/// A decider with the time spent in its calls, and (optionally) the
/// batches it was given.
struct Timed<'a> {
    inner: Box<dyn Decide + 'a>,
    entries: Duration,
    calls: Duration,
    record: Option<Vec<Vec<EntryHeader>>>,
}

impl<'a> Timed<'a> {
    fn new(inner: Box<dyn Decide + 'a>) -> Self {
        Timed {
            inner,
            entries: Duration::ZERO,
            calls: Duration::ZERO,
            record: None,
        }
    }
}

impl Decide for Timed<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn begin(&mut self, layer: &LayerInfo) -> Result<(), PluginError> {
        let t = Instant::now();
        let r = self.inner.begin(layer);
        self.calls += t.elapsed();
        r
    }
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        if let Some(rec) = &mut self.record {
            rec.push(headers.to_vec());
        }
        let t = Instant::now();
        let r = self.inner.entries(headers, contents);
        let spent = t.elapsed();
        self.entries += spent;
        self.calls += spent;
        r
    }
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        let t = Instant::now();
        let r = self.inner.finish();
        self.calls += t.elapsed();
        r
    }
    fn failed(&self, call: &'static str, entry: Option<&str>, detail: String) -> PluginError {
        self.inner.failed(call, entry, detail)
    }
}

/// A decider of the command line.
enum Spec {
    NativeSlim,
    NativeReproducible,
    NativeKeep,
    Wasm(String, Arc<Plugin>),
}

impl Spec {
    fn label(&self) -> String {
        match self {
            Spec::NativeSlim => "native-slim".into(),
            Spec::NativeReproducible => "native-reproducible".into(),
            Spec::NativeKeep => "native-keep".into(),
            Spec::Wasm(name, _) => format!("wasm-{name}"),
        }
    }

    /// A fresh decider for one layer, and how long making it took (a
    /// component's instantiation).
    fn make(&self) -> Result<(Box<dyn Decide + '_>, Duration), PluginError> {
        let t = Instant::now();
        let d: Box<dyn Decide> = match self {
            Spec::NativeSlim => Box::new(NativeSlim(slim_rules::Slimmer::default())),
            Spec::NativeReproducible => Box::new(NativeReproducible),
            Spec::NativeKeep => Box::new(NativeKeep),
            Spec::Wasm(_, p) => {
                let quiet: LogSink = Arc::new(|_: &str| {});
                Box::new(PluginDecider::new(p, quiet)?)
            }
        };
        Ok((d, t.elapsed()))
    }
}

struct Args {
    out: PathBuf,
    tmp: PathBuf,
    cache: Option<PathBuf>,
    runs: usize,
    replays: usize,
    layers: Vec<(String, PathBuf, Vec<String>)>,
}

fn usage(msg: &str) -> ! {
    eprintln!("plugin_layer: {msg}");
    eprintln!(
        "usage: plugin_layer --out FILE.tsv --tmp DIR [--cache DIR] [--runs N] [--replays N] (--layer NAME=FILE --deciders D,...)..."
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        out: PathBuf::new(),
        tmp: std::env::temp_dir(),
        cache: None,
        runs: 3,
        replays: 5,
        layers: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{what} needs a value")))
        };
        match arg.as_str() {
            // cargo bench passes --bench to a harness-less bench.
            "--bench" => {}
            // A test runner listing every target (nextest's --list) finds
            // no tests here: the benchmark runs only from
            // scripts/bench-plugins.
            "--list" => std::process::exit(0),
            "--out" => a.out = val("--out").into(),
            "--tmp" => a.tmp = val("--tmp").into(),
            "--cache" => a.cache = Some(val("--cache").into()),
            "--runs" => {
                a.runs = val("--runs")
                    .parse()
                    .unwrap_or_else(|_| usage("--runs: not a number"))
            }
            "--replays" => {
                a.replays = val("--replays")
                    .parse()
                    .unwrap_or_else(|_| usage("--replays: not a number"))
            }
            "--layer" => {
                let v = val("--layer");
                let (name, file) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage(&format!("--layer {v}: not NAME=FILE")));
                a.layers.push((name.into(), file.into(), Vec::new()));
            }
            "--deciders" => {
                let v = val("--deciders");
                let Some(last) = a.layers.last_mut() else {
                    usage("--deciders before any --layer")
                };
                last.2 = v.split(',').map(str::to_string).collect();
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if std::env::args().len() <= 2 && a.layers.is_empty() {
        // `cargo bench` or `cargo test --all-targets` alone: the data comes
        // from scripts/bench-plugins, so there is nothing to measure.
        eprintln!(
            "plugin_layer: run by scripts/bench-plugins (it builds the layers); nothing to do"
        );
        std::process::exit(0);
    }
    if a.out.as_os_str().is_empty() || a.layers.is_empty() || a.runs == 0 {
        usage("--out, at least one --layer and --runs ≥ 1 are needed");
    }
    a
}

fn spec_of(engine: &PluginEngine, d: &str) -> Spec {
    match d {
        "native-slim" => Spec::NativeSlim,
        "native-reproducible" => Spec::NativeReproducible,
        "native-keep" => Spec::NativeKeep,
        _ => {
            let Some((name, file)) = d.strip_prefix("wasm:").and_then(|r| r.split_once('=')) else {
                usage(&format!("decider {d}: not native-… or wasm:NAME=FILE"))
            };
            let options = LoadOptions {
                limits: Limits {
                    // Python and JavaScript take their time on a busy machine.
                    deadline: Duration::from_secs(60),
                    ..Limits::default()
                },
                ..LoadOptions::default()
            };
            match Plugin::load_file(engine, name, Path::new(file), &options) {
                Ok(p) => Spec::Wasm(name.to_string(), Arc::new(p)),
                Err(e) => {
                    eprintln!("plugin_layer: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One full transform of `file` by `d`: its wall time and the new layer's
/// digest.
fn full(
    d: &mut Timed<'_>,
    file: &Path,
    meta: &LayerMeta,
    tmp: &Path,
) -> Result<(Duration, String), PluginError> {
    let io = |e: std::io::Error| PluginError::Io {
        name: "bench".into(),
        context: format!("open {}", file.display()),
        source: e,
    };
    let mut input = BufReader::with_capacity(1 << 20, File::open(file).map_err(io)?);
    let t = Instant::now();
    let mut chain: [&mut dyn Decide; 1] = [d];
    let done = transform_with(&mut chain, &mut input, meta, tmp, Codec::Gzip(1))?;
    Ok((t.elapsed(), done.digest.to_string()))
}

/// A fresh decider through the recorded batches; nanoseconds per entry of
/// its `entries` calls.
fn replay(spec: &Spec, batches: &[Vec<EntryHeader>], info: &LayerInfo) -> Result<f64, PluginError> {
    let (mut d, _) = spec.make()?;
    d.begin(info)?;
    let mut spent = Duration::ZERO;
    let mut n = 0usize;
    for b in batches {
        let mut contents: Vec<Content> = b
            .iter()
            .map(|_| Content::new(ContentSource::Memory(Arc::new(Vec::new())), 0))
            .collect();
        let t = Instant::now();
        let decisions = d.entries(b, &mut contents)?;
        spent += t.elapsed();
        std::hint::black_box(&decisions);
        n += b.len();
    }
    d.finish()?;
    Ok(spent.as_nanos() as f64 / n.max(1) as f64)
}

fn main() {
    let args = parse_args();
    let engine = match PluginEngine::new(args.cache.clone(), false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("plugin_layer: cannot start the WebAssembly engine: {e}");
            std::process::exit(1);
        }
    };
    let mut tsv = String::new();
    println!(
        "{:<10} {:<22} {:>8} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}",
        "layer",
        "decider",
        "entries",
        "full s",
        "decide s",
        "calls s",
        "µs/entry*",
        "replay µs/e",
        "inst ms"
    );
    for (lname, file, deciders) in &args.layers {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let blob = digest::parse(&format!("sha256:{name}"))
            .unwrap_or_else(|_| digest::sha256_of(file.to_string_lossy().as_bytes()));
        let meta = LayerMeta {
            digest: blob.clone(),
            diff_id: blob,
            index: 0,
            count: 1,
        };
        let info = LayerInfo {
            digest: meta.digest.to_string(),
            diff_id: meta.diff_id.to_string(),
            index: 0,
            count: 1,
        };
        let specs: Vec<Spec> = deciders.iter().map(|d| spec_of(&engine, d)).collect();
        // The batches as the pipeline cuts them, recorded once.
        let mut recorder = Timed::new(Box::new(NativeKeep));
        recorder.record = Some(Vec::new());
        if let Err(e) = full(&mut recorder, file, &meta, &args.tmp) {
            eprintln!("plugin_layer: {lname}: {e}");
            std::process::exit(1);
        }
        let batches = recorder.record.take().unwrap_or_default();
        let entries: usize = batches.iter().map(Vec::len).sum();
        struct Acc {
            full: Vec<f64>,
            decide: Vec<f64>,
            calls: Vec<f64>,
            inst: Vec<f64>,
            out: String,
        }
        let mut acc: Vec<Acc> = specs
            .iter()
            .map(|_| Acc {
                full: vec![],
                decide: vec![],
                calls: vec![],
                inst: vec![],
                out: String::new(),
            })
            .collect();
        for run in 0..args.runs {
            for (s, a) in specs.iter().zip(acc.iter_mut()) {
                let result = s.make().and_then(|(d, inst)| {
                    let mut t = Timed::new(d);
                    let (wall, out) = full(&mut t, file, &meta, &args.tmp)?;
                    Ok((wall, out, t.entries, t.calls, inst))
                });
                match result {
                    Ok((wall, out, dec, calls, inst)) => {
                        a.full.push(wall.as_secs_f64());
                        a.decide.push(dec.as_secs_f64());
                        a.calls.push(calls.as_secs_f64());
                        a.inst.push(inst.as_secs_f64() * 1e3);
                        a.out = out;
                    }
                    Err(e) => {
                        eprintln!("plugin_layer: {lname}, {}, run {}: {e}", s.label(), run + 1);
                        std::process::exit(1);
                    }
                }
            }
        }
        for (s, a) in specs.iter().zip(acc.iter_mut()) {
            let mut rep = Vec::with_capacity(args.replays);
            for _ in 0..args.replays {
                match replay(s, &batches, &info) {
                    Ok(ns) => rep.push(ns),
                    Err(e) => {
                        eprintln!("plugin_layer: {lname}, {} replay: {e}", s.label());
                        std::process::exit(1);
                    }
                }
            }
            let (f, d, c, i, r) = (
                median(&mut a.full),
                median(&mut a.decide),
                median(&mut a.calls),
                median(&mut a.inst),
                median(&mut rep),
            );
            println!(
                "{:<10} {:<22} {:>8} {:>9.3} {:>9.4} {:>9.4} {:>11.3} {:>11.3} {:>8.2}",
                lname,
                s.label(),
                entries,
                f,
                d,
                c,
                d * 1e6 / entries.max(1) as f64,
                r / 1e3,
                i
            );
            tsv.push_str(&format!(
                "{lname}\t{entries}\t{}\t{f:.6}\t{d:.6}\t{c:.6}\t{r:.1}\t{i:.3}\t{}\n",
                s.label(),
                a.out
            ));
        }
    }
    println!("* µs/entry: decide s (inside the pipeline) / entries; replay: the batches alone");
    if let Err(e) = File::create(&args.out).and_then(|mut f| f.write_all(tsv.as_bytes())) {
        eprintln!("plugin_layer: cannot write {}: {e}", args.out.display());
        std::process::exit(1);
    }
}
