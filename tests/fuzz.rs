//! Fuzzing the parsers on stable Rust: one test per parser, each mutating
//! real inputs (references, the example archive's documents and layers,
//! the pipelines shipped in `pipelines/`) for a bounded time and asserting
//! that every input ends in `Ok` or `Err`: no panic, no call that hangs, no
//! call that allocates far beyond its input.
//!
//! `STRATA_FUZZ_SECS` is each target's time (default 4 s, about 30 s for
//! the eight); `STRATA_FUZZ_SEED` replays a run (the seed is printed). An
//! input that fails is written to the test's temporary directory and
//! quoted in the failure; it then becomes a unit test beside the parser.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastrand::Rng;
use strata::image::{self, Image, Index, Platform, RawManifest};
use strata::plugin::PluginError;
use strata::plugin::layer::{
    Codec, Decide, Decision, EntryHeader, EntryKind, LayerInfo, LayerMeta, Replacement,
    transform_with,
};
use strata::plugin::state::Content;
use strata::reference::{self, Reference};
use strata::transport::Source;
use strata::transport::archive::{ArchiveSource, Input};
use strata::transport::registry::PlatformChoice;

// ---------------------------------------------------------------------------
// Allocation accounting: bytes live on each thread, and the peak since the
// last reset, so one call's allocations can be bounded.

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes straight to the system allocator; the counters
// are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated on this thread while `f` ran, beyond what was
/// live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as u64)
}

// ---------------------------------------------------------------------------
// The harness.

/// A call taking longer than this is a hang (debug builds included).
const HANG: Duration = Duration::from_secs(10);
/// Inputs are kept below this size.
const MAX_INPUT: usize = 512 << 10;

fn seconds() -> Duration {
    let secs = std::env::var("STRATA_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(4.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn base_seed() -> u64 {
    std::env::var("STRATA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Allocation allowed for one call: a fixed allowance (buffers of a MiB or
/// two, decoder state) plus a multiple of the input.
fn alloc_bound(input: &[u8]) -> u64 {
    (48 << 20) + 64 * input.len() as u64
}

thread_local! {
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Counts an input the parser accepted, so a run shows how many inputs
/// reached past the first checks.
fn accepted() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

/// What the worker thread is doing, for the watchdog.
struct Progress {
    current: Mutex<Vec<u8>>,
    /// Milliseconds since `epoch` at which the current call started; 0
    /// between calls.
    started: AtomicU64,
    done: AtomicBool,
}

/// Runs `target` on inputs from `generate` for the configured time;
/// fails the test with the input at the first panic, hang or allocation
/// beyond the bound.
fn fuzz<G, T>(name: &'static str, generate: G, target: T)
where
    G: FnMut(&mut Rng) -> Vec<u8> + Send + 'static,
    T: Fn(&[u8]) + Send + 'static,
{
    let seed = base_seed();
    let budget = seconds();
    eprintln!("fuzz {name}: STRATA_FUZZ_SEED={seed} STRATA_FUZZ_SECS={budget:?}");
    match run(name, seed, budget, HANG, generate, target) {
        Ok((runs, accepted)) => {
            eprintln!("fuzz {name}: {runs} inputs ({accepted} accepted), none failed");
            assert!(runs > 0 || budget.is_zero(), "fuzz {name}: no input ran");
        }
        Err(Failure { input, why }) => {
            let path =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-{seed}.bin"));
            let _ = std::fs::write(&path, &input);
            let shown: String = input
                .iter()
                .take(4096)
                .flat_map(|b| b.escape_ascii())
                .map(char::from)
                .collect();
            panic!(
                "fuzz {name}: {why}\nseed {seed}; input ({} bytes) saved as {}:\nb\"{shown}\"",
                input.len(),
                path.display()
            );
        }
    }
}

/// An input that made a target fail, and how.
#[derive(Debug)]
struct Failure {
    input: Vec<u8>,
    why: String,
}

/// The harness: inputs and calls on a worker thread, watched from this
/// one. Inputs run and inputs accepted, or the first failure.
fn run<G, T>(
    name: &'static str,
    seed: u64,
    budget: Duration,
    hang: Duration,
    mut generate: G,
    target: T,
) -> Result<(u64, u64), Failure>
where
    G: FnMut(&mut Rng) -> Vec<u8> + Send + 'static,
    T: Fn(&[u8]) + Send + 'static,
{
    let epoch = Instant::now();
    let progress = Arc::new(Progress {
        current: Mutex::new(Vec::new()),
        started: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let shared = Arc::clone(&progress);
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        // The size of a main thread's stack, where the parsers run.
        .stack_size(8 << 20)
        .spawn(move || -> Result<(u64, u64), Failure> {
            let mut rng = Rng::with_seed(seed ^ fnv(name.as_bytes()));
            let mut runs = 0u64;
            while epoch.elapsed() < budget {
                let mut input = generate(&mut rng);
                input.truncate(MAX_INPUT);
                *shared.current.lock().unwrap() = input.clone();
                shared
                    .started
                    .store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                let (outcome, peak) = peak_of(|| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)))
                });
                shared.started.store(0, Ordering::SeqCst);
                if let Err(panic) = outcome {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let why = format!("panicked: {message}");
                    return Err(Failure { input, why });
                }
                if peak > alloc_bound(&input) {
                    let why = format!(
                        "allocated {peak} bytes at once (bound {})",
                        alloc_bound(&input)
                    );
                    return Err(Failure { input, why });
                }
                runs += 1;
            }
            shared.done.store(true, Ordering::SeqCst);
            Ok((runs, ACCEPTED.with(Cell::get)))
        })
        .expect("spawn the fuzz worker");
    while !progress.done.load(Ordering::SeqCst) && !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        let started = progress.started.load(Ordering::SeqCst);
        if started != 0 {
            let now = epoch.elapsed().as_millis() as u64 + 1;
            if now.saturating_sub(started) > hang.as_millis() as u64 {
                // The worker is left to itself: it may never return.
                let input = progress.current.lock().unwrap().clone();
                let why = format!("a call ran longer than {hang:?}");
                return Err(Failure { input, why });
            }
        }
    }
    worker.join().expect("the worker catches panics")
}

/// The harness itself: a panic, a hang and an allocation past the bound
/// are each caught, with the input that caused them.
#[test]
fn the_harness_catches_panics_hangs_and_allocations() {
    let second = Duration::from_secs(1);
    let bytes = |rng: &mut Rng| vec![rng.u8(..); 4];
    let panicked = run("self-panic", 1, second, second, bytes, |input| {
        assert!(input[0] < 200, "a byte too high");
    })
    .unwrap_err();
    assert!(
        panicked.why.contains("panicked: a byte too high"),
        "{panicked:?}"
    );
    assert!(panicked.input[0] >= 200);

    let hung = run(
        "self-hang",
        1,
        second,
        Duration::from_millis(100),
        bytes,
        |_| {
            std::thread::sleep(Duration::from_millis(500));
        },
    )
    .unwrap_err();
    assert!(hung.why.contains("ran longer than 100ms"), "{hung:?}");

    let greedy = run("self-alloc", 1, second, second, bytes, |input| {
        let v = vec![1u8; 64 << 20];
        assert_eq!(v.len() + input.len(), (64 << 20) + 4);
    })
    .unwrap_err();
    assert!(
        greedy.why.starts_with("allocated ") && greedy.why.contains(" bytes at once"),
        "{greedy:?}"
    );

    let (runs, _) = run(
        "self-calm",
        1,
        Duration::from_millis(100),
        second,
        bytes,
        |_| {},
    )
    .unwrap();
    assert!(runs > 0);
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------
// Mutations.

/// Tokens for JSON documents and the names in them.
const JSON_DICT: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"sha256:\"",
    "sha256:",
    "sha512:",
    "\"mediaType\"",
    "\"manifests\"",
    "\"layers\"",
    "\"config\"",
    "\"digest\"",
    "\"size\"",
    "\"diff_ids\"",
    "\"rootfs\"",
    "\"history\"",
    "\"platform\"",
    "\"schemaVersion\"",
    "\"annotations\"",
    "\"org.opencontainers.image.ref.name\"",
    "\"RepoTags\"",
    "\"Layers\"",
    "\"Config\"",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "../",
    "/",
    "é",
    "\u{202e}",
];

/// Tokens for references and platforms.
const REF_DICT: &[&str] = &[
    ":",
    "@",
    "/",
    ".",
    "-",
    "_",
    "__",
    "sha256:",
    "localhost",
    ":5000",
    "[::1]",
    "]",
    "[",
    "docker.io/",
    "library/",
    "index.docker.io",
    "latest",
    "A",
    "0",
    "..",
    "//",
    "@sha256:",
    "linux",
    "amd64",
    "arm64/v8",
    "\u{0}",
    "é",
];

/// Tokens for pipeline YAML and its expressions.
const YAML_DICT: &[&str] = &[
    "\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!tag ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "---",
    "...",
    "? ",
    "${{ ",
    " }}",
    "steps.",
    "vars.",
    "env.",
    "item",
    ".outputs.",
    "&&",
    "||",
    "!",
    "==",
    "(",
    ")",
    "length(",
    "contains(",
    "join(",
    "toJSON(",
    "for_each: ",
    "parallel: ",
    "retry: ",
    "timeout: ",
    "id: ",
    "if: ",
    "pull:",
    "mirror:",
    "1e999",
    "-1",
    "99999999999999999999",
    "~",
    "null",
    "\t",
    "\r",
    "\u{feff}",
];

/// One random change to `data`, using `dict` for tokens and `others` for
/// splices.
fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&str], others: &[Vec<u8>]) {
    let len = data.len();
    let at = |rng: &mut Rng| rng.usize(0..=len);
    match rng.u8(0..12) {
        0 if len > 0 => {
            let i = rng.usize(0..len);
            data[i] ^= 1 << rng.u8(0..8);
        }
        1 if len > 0 => {
            let i = rng.usize(0..len);
            data[i] = rng.u8(..);
        }
        2 if len > 0 => {
            let a = rng.usize(0..len);
            let b = (a + rng.usize(1..=16.min(len - a))).min(len);
            data.drain(a..b);
        }
        3 | 4 => {
            let token = dict[rng.usize(0..dict.len())].as_bytes();
            let i = at(rng);
            data.splice(i..i, token.iter().copied());
        }
        5 if len > 0 => {
            // Overwrite with a token where something was.
            let token = dict[rng.usize(0..dict.len())].as_bytes();
            let a = rng.usize(0..len);
            let b = (a + token.len()).min(len);
            data.splice(a..b, token.iter().copied());
        }
        6 if len > 1 => {
            // Repeat a piece, sometimes many times (long names, deep nesting).
            let a = rng.usize(0..len);
            let b = (a + rng.usize(1..=64.min(len - a))).min(len);
            let piece = data[a..b].to_vec();
            let times = if rng.u8(0..4) == 0 {
                rng.usize(2..2000)
            } else {
                2
            };
            let repeated: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * times)
                .collect();
            data.splice(a..b, repeated);
        }
        7 if len > 0 => data.truncate(rng.usize(0..len)),
        8 if !others.is_empty() => {
            // Splice in part of another input.
            let other = &others[rng.usize(0..others.len())];
            if !other.is_empty() {
                let a = rng.usize(0..other.len());
                let b = (a + rng.usize(1..=256.min(other.len() - a))).min(other.len());
                let i = at(rng);
                data.splice(i..i, other[a..b].iter().copied());
            }
        }
        9 => {
            // Nest: the same opener many times.
            let opener = ["[", "{\"a\":", "(", "- ", "  "][rng.usize(0..5)];
            let depth = rng.usize(1..5000);
            let i = at(rng);
            data.splice(i..i, opener.bytes().cycle().take(opener.len() * depth));
        }
        10 if len > 0 => {
            // A number where a number was.
            let numbers = [
                "0",
                "-1",
                "4294967295",
                "18446744073709551615",
                "1e308",
                "0.5",
                "-0",
            ];
            if let Some(i) = (0..len)
                .map(|k| (k + rng.usize(0..len)) % len)
                .find(|&k| data[k].is_ascii_digit())
            {
                let end = (i..len).find(|&k| !data[k].is_ascii_digit()).unwrap_or(len);
                data.splice(i..end, numbers[rng.usize(0..numbers.len())].bytes());
            }
        }
        _ => {
            let i = at(rng);
            let n = rng.usize(1..8);
            data.splice(i..i, std::iter::repeat_with(|| rng.u8(..)).take(n));
        }
    }
}

/// A seed with a few mutations.
fn mutated(rng: &mut Rng, seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut data = seeds[rng.usize(0..seeds.len())].clone();
    for _ in 0..rng.usize(1..=6) {
        mutate_once(rng, &mut data, dict, seeds);
    }
    data
}

// ---------------------------------------------------------------------------
// Seeds: the example archive, and documents made from it.

fn example_members() -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.tar");
    let mut archive = tar::Archive::new(std::fs::File::open(path).expect("examples/hello.tar"));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if entry.header().entry_type().is_file() {
            out.push((name, data));
        }
    }
    out
}

/// The example image's config and layers (uncompressed tars).
fn example_image() -> (Vec<u8>, Vec<Vec<u8>>) {
    let members = example_members();
    let config = members
        .iter()
        .find(|(n, _)| n.ends_with(".json") && !n.contains('/') && n != "manifest.json");
    let config = config.expect("a config in examples/hello.tar").1.clone();
    let listed: serde_json::Value = serde_json::from_slice(
        &members
            .iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let layers = listed[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let l = l.as_str().unwrap();
            members.iter().find(|(n, _)| n == l).unwrap().1.clone()
        })
        .collect();
    (config, layers)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_type,
        "digest": digest_of(bytes),
        "size": bytes.len(),
    })
}

fn digest_of(bytes: &[u8]) -> String {
    strata::digest::sha256_of(bytes).to_string()
}

/// Image manifests (OCI and docker) for the example image, its blobs
/// (config and gzip layers), and an index over them.
struct Documents {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifests: Vec<Vec<u8>>,
    index: Vec<u8>,
}

fn documents() -> Documents {
    let (config, tars) = example_image();
    let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let oci = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_MANIFEST,
        "config": descriptor(image::OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| descriptor(image::OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    let docker = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", l)).collect::<Vec<_>>(),
    });
    let manifests: Vec<Vec<u8>> = [oci, docker]
        .iter()
        .map(|m| serde_json::to_vec_pretty(m).unwrap())
        .collect();
    let mut oci_desc = descriptor(image::OCI_MANIFEST, &manifests[0]);
    oci_desc["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    oci_desc["annotations"] = serde_json::json!({
        "org.opencontainers.image.ref.name": "docker.io/strata-demo/hello:1.0",
        "io.containerd.image.name": "docker.io/strata-demo/hello:1.0",
    });
    let mut arm = descriptor(image::OCI_MANIFEST, &manifests[0]);
    arm["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
    let index = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_INDEX,
        "manifests": [oci_desc, arm],
    }))
    .unwrap();
    Documents {
        config,
        layers,
        manifests,
        index,
    }
}

// ---------------------------------------------------------------------------
// Reference, digest and platform parsers.

#[test]
fn references() {
    let hex = "b1dcaf3cc163fb83e331a45beca0ccd82397d169b2c97cee7ebda146db9ee8dd";
    let seeds: Vec<Vec<u8>> = [
        "nginx".to_string(),
        "nginx:1.27".into(),
        "docker.io/library/nginx:latest".into(),
        "index.docker.io/library/debian:bookworm".into(),
        format!("localhost:5000/team/app:v1@sha256:{hex}"),
        format!("registry.example.com/a/b/c@sha256:{hex}"),
        "[::1]:5000/ns/repo:tag".into(),
        "127.0.0.1:5000/x_y__z.w-v:Tag_1.0".into(),
        format!("sha256:{hex}"),
        hex[..12].into(),
        "Upper/Case".into(),
        "linux/arm64/v8".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    fuzz(
        "references",
        move |rng| mutated(rng, &seeds, REF_DICT),
        |input| {
            let text = String::from_utf8_lossy(input);
            for r in [Reference::parse(&text), Reference::parse_canonical(&text)]
                .into_iter()
                .flatten()
            {
                accepted();
                let _ = (r.domain(), r.path(), r.tag(), r.digest());
                let _ = (r.repository(), r.familiar_name(), r.familiar_string());
                let _ = r.with_tag("v1");
                let _ = r.with_tag(&text);
                let _ = r.with_digest(&text);
                let _ = r.without_tag_or_digest();
                let _ = r.is_name_only();
                let again = r.clone().with_default_tag().to_string();
                assert!(
                    Reference::parse(&again).is_ok(),
                    "{again:?} does not parse again"
                );
            }
            let _ = reference::is_full_id(&text);
            let _ = reference::is_id_prefix(&text);
            let _ = strata::digest::parse(&text);
            if let Some(p) = Platform::parse(&text) {
                let _ = p.matches(&Platform::host());
            }
        },
    );
}

// ---------------------------------------------------------------------------
// Manifest, index and config parsers.

#[test]
fn manifests() {
    let docs = documents();
    let mut seeds = docs.manifests.clone();
    seeds.push(docs.index.clone());
    let config = docs.config;
    fuzz(
        "manifests",
        move |rng| mutated(rng, &seeds, JSON_DICT),
        move |input| {
            for hint in [None, Some(image::OCI_MANIFEST), Some(image::OCI_INDEX)] {
                let media_type = image::sniff_media_type(input, hint);
                let raw = RawManifest::new(input.to_vec(), media_type);
                let _ = raw.descriptor();
                let _ = raw.kind();
                if let Ok(image) = Image::new(raw.clone(), config.clone()) {
                    accepted();
                    let _ = (image.id(), image.platform(), image.chain_ids());
                    let _ = image.config_descriptor();
                }
                if let Ok(index) = Index::new(raw) {
                    accepted();
                    let _ = index.platforms();
                    let _ = index.select(&Platform::host());
                    let _ = index.select(&Platform::parse("linux/arm64/v8").unwrap());
                }
            }
        },
    );
}

#[test]
fn configs() {
    let docs = documents();
    let seeds = vec![docs.config.clone()];
    let layers = docs.layers;
    fuzz(
        "configs",
        move |rng| mutated(rng, &seeds, JSON_DICT),
        move |input| {
            // A manifest naming exactly this config, so the config is parsed.
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": image::OCI_MANIFEST,
                "config": descriptor(image::OCI_CONFIG, input),
                "layers": layers.iter().map(|l| descriptor(image::OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
            });
            let raw = RawManifest::new(
                serde_json::to_vec(&manifest).unwrap(),
                image::OCI_MANIFEST.into(),
            );
            if let Ok(image) = Image::new(raw, input.to_vec()) {
                accepted();
                let _ = (image.platform(), image.chain_ids(), image.config_json());
                let _ = image.config().history();
            }
        },
    );
}

// ---------------------------------------------------------------------------
// The archive reader: tar member table, manifest.json, index.json.

/// A tar member as the generator sees it.
#[derive(Clone)]
struct Member {
    name: String,
    kind: tar::EntryType,
    link: String,
    data: Vec<u8>,
}

fn file(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.into(),
        kind: tar::EntryType::Regular,
        link: String::new(),
        data: data.to_vec(),
    }
}

/// Three archives: the example (docker's legacy layout, with links), a
/// plain OCI archive, and docker's current layout (both documents).
fn archive_seeds() -> Vec<Vec<Member>> {
    let legacy: Vec<Member> = {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.tar");
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                Member {
                    name: e.path().unwrap().display().to_string(),
                    kind: e.header().entry_type(),
                    link: e
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| l.display().to_string())
                        .unwrap_or_default(),
                    data,
                }
            })
            .collect()
    };
    let docs = documents();
    let blob = |bytes: &[u8]| {
        file(
            &format!("blobs/sha256/{}", &digest_of(bytes)["sha256:".len()..]),
            bytes,
        )
    };
    let mut oci = vec![
        file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        file("index.json", &docs.index),
        blob(&docs.manifests[0]),
        blob(&docs.config),
    ];
    oci.extend(docs.layers.iter().map(|l| blob(l)));
    let mut current = oci.clone();
    current.push(file(
        "manifest.json",
        &serde_json::to_vec(&serde_json::json!([{
            "Config": format!("blobs/sha256/{}", &digest_of(&docs.config)[7..]),
            "RepoTags": ["strata-demo/hello:1.0", "localhost:5000/x:y"],
            "Layers": docs.layers.iter().map(|l| format!("blobs/sha256/{}", &digest_of(l)[7..])).collect::<Vec<_>>(),
        }]))
        .unwrap(),
    ));
    vec![legacy, oci, current]
}

/// Renames OCI blobs after their content changed, and replaces their old
/// digests in the other members, so a change reaches past the digest checks.
fn rehash(members: &mut [Member]) {
    for _ in 0..4 {
        let mut renamed = Vec::new();
        for m in members.iter_mut() {
            if let Some(old) = m.name.strip_prefix("blobs/sha256/") {
                let new = digest_of(&m.data)["sha256:".len()..].to_string();
                if old != new && old.len() == 64 {
                    renamed.push((old.to_string(), new.clone()));
                    m.name = format!("blobs/sha256/{new}");
                }
            }
        }
        if renamed.is_empty() {
            return;
        }
        for m in members.iter_mut() {
            for (old, new) in &renamed {
                m.data = replace(&m.data, old.as_bytes(), new.as_bytes());
            }
        }
    }
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fn build_tar(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(m.kind);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        let data: &[u8] = if m.kind.is_file() { &m.data } else { &[] };
        h.set_size(data.len() as u64);
        let done = if m.kind.is_symlink() || m.kind.is_hard_link() {
            b.append_link(&mut h, &m.name, &m.link)
        } else {
            b.append_data(&mut h, &m.name, data)
        };
        // Names the tar writer refuses (absolute, `..`) are left out.
        let _ = done;
    }
    b.into_inner().unwrap()
}

/// Recomputes the checksum of every header block, so byte mutations of a
/// tar reach past the checksum test.
fn fix_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(text.as_bytes());
    }
}

/// Changes one field of one tar header: numbers beyond their range (octal
/// and GNU base-256), fields without a terminator, another entry type.
fn mutate_tar_header(rng: &mut Rng, tar: &mut [u8]) {
    let headers: Vec<usize> = (0..tar.len() / 512)
        .map(|i| i * 512)
        .filter(|&at| &tar[at + 257..at + 262] == b"ustar")
        .collect();
    if headers.is_empty() {
        return;
    }
    let at = headers[rng.usize(0..headers.len())];
    // (offset, length) of name, mode, uid, gid, size, mtime, type, link.
    let fields = [
        (0, 100),
        (100, 8),
        (108, 8),
        (116, 8),
        (124, 12),
        (136, 12),
        (156, 1),
        (157, 100),
    ];
    let (off, len) = fields[rng.usize(0..fields.len())];
    let field = &mut tar[at + off..at + off + len];
    match rng.u8(0..6) {
        0 => {
            // GNU base-256: the top bit set, then big-endian bytes.
            field.fill(0xff);
            field[0] = 0x80 | rng.u8(0..0x80);
            let n = rng.usize(0..len);
            field[len - n..].fill(rng.u8(..));
        }
        1 => field.fill(b'7'),
        2 => field.fill(0),
        3 => field.fill(b' '),
        4 => {
            let kinds = b"0125 67LKxgSDMVA\0";
            field[0] = kinds[rng.usize(0..kinds.len())];
        }
        _ => {
            let i = rng.usize(0..len);
            field[i] = rng.u8(..);
        }
    }
}

const PATH_DICT: &[&str] = &[
    "manifest.json",
    "index.json",
    "repositories",
    "oci-layout",
    "./",
    "../",
    "/",
    "a/../",
    "blobs/sha256/",
    "layer.tar",
    "json",
    "VERSION",
    "\u{0}",
];

fn archive_input(rng: &mut Rng, seeds: &[Vec<Member>]) -> Vec<u8> {
    let mut members = seeds[rng.usize(0..seeds.len())].clone();
    let datas: Vec<Vec<u8>> = members.iter().map(|m| m.data.clone()).collect();
    for _ in 0..rng.usize(1..=4) {
        if members.is_empty() {
            break;
        }
        let i = rng.usize(0..members.len());
        match rng.u8(0..10) {
            0..=4 => {
                let small = members[i].data.len() < 4096;
                if small || rng.bool() {
                    mutate_once(rng, &mut members[i].data, JSON_DICT, &datas);
                }
            }
            5 => {
                members.remove(i);
            }
            6 => {
                let copy = members[i].clone();
                members.push(copy);
            }
            7 => {
                // A link to another member, to outside, or to itself.
                let j = rng.usize(0..members.len());
                let target = match rng.u8(0..4) {
                    0 => "../../etc/passwd".to_string(),
                    1 => members[i].name.clone(),
                    _ => members[j].name.clone(),
                };
                members[i].kind = if rng.bool() {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                members[i].link = target;
            }
            8 => {
                let mut name = members[i].name.clone().into_bytes();
                mutate_once(rng, &mut name, PATH_DICT, &[]);
                members[i].name = String::from_utf8_lossy(&name).into_owned();
            }
            _ => {
                members[i].kind = [
                    tar::EntryType::Directory,
                    tar::EntryType::Char,
                    tar::EntryType::Fifo,
                    tar::EntryType::Continuous,
                    tar::EntryType::GNUSparse,
                ][rng.usize(0..5)];
            }
        }
    }
    if rng.u8(0..4) != 0 {
        rehash(&mut members);
    }
    let mut tar = build_tar(&members);
    match rng.u8(0..8) {
        0 => {
            for _ in 0..rng.usize(1..=4) {
                mutate_once(rng, &mut tar, &["\0", "7777777777", "\u{80}"], &[]);
            }
            fix_checksums(&mut tar);
        }
        1 | 2 => {
            mutate_tar_header(rng, &mut tar);
            fix_checksums(&mut tar);
        }
        _ => {}
    }
    match rng.u8(0..10) {
        0 => gzip(&tar),
        1 => zstd::encode_all(&tar[..], 1).unwrap(),
        _ => tar,
    }
}

#[test]
fn archives() {
    let seeds = archive_seeds();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.tar");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    fuzz(
        "archives",
        move |rng| archive_input(rng, &seeds),
        move |input| {
            std::fs::write(&path, input).unwrap();
            let Ok(archive) = ArchiveSource::open(&Input::Path(path.clone()), &spool) else {
                return;
            };
            accepted();
            for choice in [PlatformChoice::All, PlatformChoice::One(Platform::host())] {
                let _ = archive.resolve(None, &choice);
                let _ = archive.resolve(Some("strata-demo/hello:1.0"), &choice);
            }
            for image in archive.images() {
                for i in image.what.images() {
                    let _ = archive.read_small_blob(i.config_descriptor());
                    for layer in i.layers() {
                        if let Ok(mut r) = archive.open_blob(&layer.descriptor) {
                            let _ = io::copy(&mut r, &mut io::sink());
                        }
                    }
                }
            }
            drop(archive);
            let left = std::fs::read_dir(&spool).unwrap().count();
            assert_eq!(left, 0, "a spool file outlived its archive");
        },
    );
}

// ---------------------------------------------------------------------------
// The layer scanner.

/// Layers with every kind of entry the scanner counts, plain and compressed.
fn layer_seeds() -> Vec<Vec<u8>> {
    let (_, tars) = example_image();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    b.append_data(&mut h.clone(), "./", io::empty()).unwrap();
    let long = format!("usr/{}/file", "d".repeat(150));
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(5);
    b.append_data(&mut h.clone(), &long, &b"hello"[..]).unwrap();
    b.append_pax_extensions([
        ("SCHILY.xattr.user.k", &b"v"[..]),
        ("path", &b"usr/pax"[..]),
    ])
    .unwrap();
    b.append_data(&mut h.clone(), "usr/x", &b"world"[..])
        .unwrap();
    h.set_size(0);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h.clone(), "usr/link", "../etc/target")
        .unwrap();
    h.set_entry_type(tar::EntryType::Link);
    b.append_link(&mut h.clone(), "usr/hard", "usr/x").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h.clone(), "usr/.wh.gone", io::empty())
        .unwrap();
    let built = b.into_inner().unwrap();
    let mut seeds = tars;
    seeds.push(built);
    let compressed: Vec<Vec<u8>> = seeds
        .iter()
        .flat_map(|t| [gzip(t), zstd::encode_all(&t[..], 1).unwrap()])
        .collect();
    seeds.extend(compressed);
    seeds
}

#[test]
fn layers() {
    let seeds = layer_seeds();
    let plain: Vec<Vec<u8>> = seeds
        .iter()
        .filter(|s| s.len() % 512 == 0)
        .cloned()
        .collect();
    fuzz(
        "layers",
        move |rng| {
            if rng.u8(0..4) == 0 {
                // The compressed stream itself damaged.
                return mutated(rng, &seeds, &["\0", "\u{ff}"]);
            }
            let mut tar = plain[rng.usize(0..plain.len())].clone();
            for _ in 0..rng.usize(0..=2) {
                mutate_tar_header(rng, &mut tar);
            }
            for _ in 0..rng.usize(0..=3) {
                mutate_once(
                    rng,
                    &mut tar,
                    &["\0", "7777777777", "L", "K", "x", "g", "S", "ustar"],
                    &plain,
                );
            }
            fix_checksums(&mut tar);
            match rng.u8(0..4) {
                0 => gzip(&tar),
                1 => zstd::encode_all(&tar[..], 1).unwrap(),
                _ => tar,
            }
        },
        |input| {
            if strata::rootfs::scan_layer(io::BufReader::new(input)).is_ok() {
                accepted();
            }
        },
    );
}

// ---------------------------------------------------------------------------
// The pipeline loader, and the expressions in it.

#[test]
fn pipelines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no pipelines in {}", dir.display());
    seeds.push(
        b"vars:\n  tags: [a, b]\nsteps:\n  - id: p\n    for_each: ${{ vars.tags }}\n    parallel: 2\n    retry: {attempts: 2, delay: 1s}\n    timeout: 5m\n    if: ${{ !(length(vars.tags) == 0) && contains(vars.tags, 'a') || false }}\n    pull: {image: \"nginx:${{ item }}\", platform: linux/amd64}\n  - tag: {source: ${{ steps.p.outputs[0].id }}, target: x:y}\n"
            .to_vec(),
    );
    fuzz(
        "pipelines",
        move |rng| mutated(rng, &seeds, YAML_DICT),
        |input| {
            let text = String::from_utf8_lossy(input);
            let vars = [("tag".to_string(), text.chars().take(64).collect::<String>())];
            if strata::pipeline::spec::parse("fuzz.yaml", &text, &vars).is_ok() {
                accepted();
            }
            if let Ok(node) = strata::pipeline::yaml::parse(&text) {
                let _ = node.to_json();
                let _ = node.describe();
            }
            let _ = strata::pipeline::expr::Template::parse(&text);
        },
    );
}

// ---------------------------------------------------------------------------
// The host's checks of a layer transform's decisions.

/// A decider answering at random, seeded by the input: every shape of
/// answer a plugin could give, hostile ones included.
struct Chaos {
    rng: Rng,
    /// Out of 8: how often an answer is a changed or hostile one.
    hostility: u8,
}

const HOSTILE_PATHS: &[&str] = &[
    "",
    ".",
    "./",
    "/",
    "/etc/passwd",
    "../escape",
    "a/../../b",
    "usr/link/through",
    "usr/link",
    "bin/a",
    "usr",
    "usr/",
    "a\0b",
    "a\nb",
    "é/ü",
    "usr//x",
    "usr/./x",
];

impl Chaos {
    fn text(&mut self) -> String {
        let mut s = HOSTILE_PATHS[self.rng.usize(0..HOSTILE_PATHS.len())].to_string();
        if self.rng.u8(0..4) == 0 {
            s = s.repeat(self.rng.usize(1..200));
        }
        if self.rng.bool() {
            s.push_str(&self.rng.u32(..).to_string());
        }
        s
    }

    fn header(&mut self, like: Option<&EntryHeader>) -> EntryHeader {
        let kinds = [
            EntryKind::File,
            EntryKind::Directory,
            EntryKind::Symlink,
            EntryKind::Hardlink,
            EntryKind::CharDevice,
            EntryKind::BlockDevice,
            EntryKind::Fifo,
        ];
        let mut h = like.cloned().unwrap_or(EntryHeader {
            path: String::new(),
            kind: EntryKind::File,
            size: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: None,
            xattrs: Vec::new(),
            devmajor: 0,
            devminor: 0,
        });
        for _ in 0..self.rng.usize(1..4) {
            match self.rng.u8(0..9) {
                0 | 1 => h.path = self.text(),
                2 => h.kind = kinds[self.rng.usize(0..kinds.len())],
                3 => h.size = [0, 1, 5, u64::MAX, 1 << 40][self.rng.usize(0..5)],
                4 => h.link_target = self.rng.bool().then(|| self.text()),
                5 => h.mode = self.rng.u32(..),
                6 => {
                    (h.uid, h.gid, h.mtime) = (self.rng.u32(..), self.rng.u32(..), self.rng.i64(..))
                }
                7 => h.xattrs.push((self.text(), vec![0; self.rng.usize(0..64)])),
                _ => (h.devmajor, h.devminor) = (self.rng.u32(..), self.rng.u32(..)),
            }
        }
        h
    }

    fn replacement(&mut self, like: Option<&EntryHeader>) -> Replacement {
        let header = self.header(like);
        let len = if self.rng.bool() && header.size < 4096 {
            header.size as usize
        } else {
            self.rng.usize(0..64)
        };
        Replacement {
            header,
            content: vec![b'x'; len],
        }
    }
}

impl Decide for Chaos {
    fn name(&self) -> &str {
        "chaos"
    }
    fn begin(&mut self, _layer: &LayerInfo) -> Result<(), PluginError> {
        Ok(())
    }
    fn entries(
        &mut self,
        headers: &[EntryHeader],
        contents: &mut Vec<Content>,
    ) -> Result<Vec<Decision>, PluginError> {
        for c in contents.iter_mut() {
            if self.rng.bool() {
                let _ = c.read_next(self.rng.usize(0..100));
            }
        }
        let mut out: Vec<Decision> = headers
            .iter()
            .map(|h| match self.rng.u8(0..8) {
                n if n >= self.hostility => Decision::Keep,
                0..=2 => Decision::Keep,
                3 => Decision::Drop,
                4 | 5 => Decision::Rewrite(self.header(Some(h))),
                _ => Decision::Replace(self.replacement(Some(h))),
            })
            .collect();
        match self.rng.u8(0..16) {
            0 if self.hostility > 0 => {
                out.pop();
            }
            1 if self.hostility > 0 => out.push(Decision::Keep),
            2 if self.hostility > 0 => contents.clear(),
            _ => {}
        }
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<Replacement>, PluginError> {
        let n = if self.hostility == 0 {
            0
        } else {
            self.rng.usize(0..4)
        };
        Ok((0..n).map(|_| self.replacement(None)).collect())
    }
}

#[test]
fn decisions() {
    let layers: Vec<Vec<u8>> = layer_seeds()
        .into_iter()
        .filter(|s| s.len() % 512 == 0)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_path_buf();
    fuzz(
        "decisions",
        |rng| {
            // The deciders' seed, then the layer, chain length and hostility.
            let mut seed = rng.u64(..).to_le_bytes().to_vec();
            seed.extend([rng.u8(..), rng.u8(..), rng.u8(0..9)]);
            seed
        },
        move |input| {
            let mut seed = [0u8; 8];
            seed.copy_from_slice(&input[..8]);
            let mut layer = layers[usize::from(input[8]) % layers.len()].clone();
            // Half the time the layer itself is damaged, for the host's reader.
            let mut damage = Rng::with_seed(u64::from_le_bytes(seed).rotate_left(31));
            if damage.bool() {
                mutate_tar_header(&mut damage, &mut layer);
                fix_checksums(&mut layer);
            }
            let layer = &layer[..];
            let mut first = Chaos {
                rng: Rng::with_seed(u64::from_le_bytes(seed)),
                hostility: input[10],
            };
            let mut second = Chaos {
                rng: Rng::with_seed(u64::from_le_bytes(seed).rotate_left(17)),
                hostility: input[10] / 2,
            };
            let d = strata::digest::sha256_of(layer);
            let meta = LayerMeta {
                digest: d.clone(),
                diff_id: d,
                index: 0,
                count: 1,
            };
            let chain: &mut [&mut dyn Decide] = if input[9] % 2 == 0 {
                &mut [&mut first]
            } else {
                &mut [&mut first, &mut second]
            };
            let Ok(done) = transform_with(chain, &mut &layer[..], &meta, &out_dir, Codec::Gzip(1))
            else {
                return;
            };
            accepted();
            // Whatever was decided, what was written keeps the rootfs rules.
            let gz = flate2::read::GzDecoder::new(std::fs::File::open(done.file.path()).unwrap());
            let mut written = tar::Archive::new(gz);
            let mut links: Vec<String> = Vec::new();
            for entry in written.entries().expect("the written layer is a tar") {
                let entry = entry.expect("the written layer's entries read back");
                let path = entry.path().expect("a path").display().to_string();
                assert!(!path.starts_with('/'), "absolute path {path:?} written");
                assert!(
                    !path.split('/').any(|c| c == ".."),
                    "path {path:?} leaves the layer"
                );
                let trimmed = path.trim_end_matches('/');
                assert!(
                    !links.iter().any(|l| trimmed.starts_with(&format!("{l}/"))),
                    "{path:?} written through a symlink"
                );
                if entry.header().entry_type().is_symlink() {
                    links.push(trimmed.to_string());
                }
            }
        },
    );
}
