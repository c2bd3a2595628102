//! Crash consistency, measured: rounds of `load`, `pull`, `tag`, `rmi`,
//! `mount` and a pipeline mirror running as separate processes on one
//! store and one registry, one of them killed with SIGKILL at a random
//! moment. After each round `strata system check` must find nothing wrong,
//! every name a completed command reported must be there (and every name a
//! completed `rmi` removed gone), and the mirror's target registry must have
//! no tag whose blobs are missing.
//!
//! Seeded: the seed is printed, `STRATA_CRASH_SEED` repeats a run and
//! `STRATA_CRASH_ROUNDS` (default 50: rounds go on until that many
//! processes were killed mid-work, not after they ended) makes it longer.
//! Each round works on
//! distinct images, so the order in which its commands finish cannot change
//! what must be there.

#[path = "common/archive.rs"]
mod archive;
mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use archive::{Img, docker_archive};
use common::plain_registry::{has_blob, manifest_bytes, tag_list};
use common::{Strata, demo_archive, need, unique};
use serde_json::Value;

/// What a round's process does.
#[derive(Debug, Clone)]
enum Op {
    /// Loads image K's archive.
    Load(usize),
    /// Pulls image K.
    Pull(usize),
    /// Tags image K (by ID) with a new name.
    Tag(usize, String),
    /// Removes image K by ID, every name of it (`rmi -f`).
    Rmi(usize),
    /// Mounts image K (a flattened copy in the store).
    Mount(usize),
    /// Mirrors the pulled images' repositories to a fresh prefix.
    Mirror(String),
}

/// The images: two loaded from archives, two pulled from the registry.
struct World {
    /// Per image: its ID, the name it arrives under, and for a loaded one
    /// its archive.
    images: Vec<(String, String, Option<PathBuf>)>,
    registry: String,
    prefix: String,
    pipelines: PathBuf,
}

/// Deterministic bytes that do not compress away: a layer big enough that
/// a kill lands while it is written.
fn noise(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.u8(..)).collect()
}

fn setup(s: &Strata, rng: &mut fastrand::Rng) -> World {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let prefix = unique("crash");
    let mut archives = vec![demo_archive()];
    let names = [
        "crash/loaded:1".to_string(),
        format!("{registry}/{prefix}/p0:1"),
        format!("{registry}/{prefix}/p1:1"),
    ];
    for (i, name) in names.iter().enumerate() {
        let path = s.path(&format!("img{i}.tar"));
        let layers = vec![
            ("a.bin", noise(rng, 1_500_000)),
            ("b.bin", noise(rng, 1_500_000)),
        ];
        docker_archive(
            &path,
            &[Img {
                tag: Some(name),
                layers,
                created: "2024-01-01T00:00:00Z",
                labels: vec![],
            }],
        );
        archives.push(path);
    }
    // The pulled images go to the registry from a scratch store.
    let scratch = Strata::isolated();
    let mut images = Vec::new();
    for (i, archive) in archives.iter().enumerate() {
        scratch
            .reg(&["load", "-q", "-i", archive.to_str().unwrap()])
            .ok();
        let name = match i {
            0 => "strata-demo/hello:1.0".to_string(),
            _ => names[i - 1].clone(),
        };
        let id = scratch
            .reg(&["images", "--no-trunc", "-q", &name])
            .ok()
            .stdout
            .trim()
            .to_string();
        if i >= 2 {
            scratch.reg(&["push", "-q", &name]).ok();
            images.push((id, name, None));
        } else {
            images.push((id, name, Some(archive.clone())));
        }
    }
    let pipelines = s.path("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    World {
        images,
        registry,
        prefix,
        pipelines,
    }
}

impl World {
    fn command(&self, s: &Strata, op: &Op) -> std::process::Command {
        let mut c = s.registry_command();
        match op {
            Op::Load(k) => {
                let archive = self.images[*k].2.as_ref().unwrap();
                c.args(["load", "-i", archive.to_str().unwrap()]);
            }
            Op::Pull(k) => {
                c.args(["pull", "-q", &self.images[*k].1]);
            }
            Op::Tag(k, name) => {
                c.args(["tag", &self.images[*k].0, name]);
            }
            Op::Rmi(k) => {
                c.args(["rmi", "-f", &self.images[*k].0]);
            }
            Op::Mount(k) => {
                c.args(["mount", "--flatten", &self.images[*k].0]);
            }
            Op::Mirror(target) => {
                let file = self.pipelines.join(format!("{}.yaml", unique("m")));
                let text = format!(
                    "version: 1\nsteps:\n  - mirror:\n      from: {reg}\n      to: [{{registry: {reg}, prefix: {target}/}}]\n      repositories: [{p}/p0, {p}/p1]\n      referrers: false\n",
                    reg = self.registry,
                    p = self.prefix,
                );
                std::fs::write(&file, text).unwrap();
                c.arg("run").arg(file);
            }
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// A round's operations: up to three on distinct images, sometimes a
    /// mirror beside them.
    fn round(&self, rng: &mut fastrand::Rng, round: usize) -> Vec<Op> {
        let mut ks: Vec<usize> = (0..self.images.len()).collect();
        rng.shuffle(&mut ks);
        let mut ops = Vec::new();
        for &k in ks.iter().take(3) {
            ops.push(match rng.usize(..5) {
                0 | 1 if k < 2 => Op::Load(k),
                0 | 1 => Op::Pull(k),
                2 => Op::Tag(k, format!("crash/tag{k}:r{round}")),
                3 => Op::Rmi(k),
                _ => Op::Mount(k),
            });
        }
        if rng.usize(..3) == 0 {
            ops.push(Op::Mirror(format!("{}-m{round}", self.prefix)));
        }
        ops
    }
}

/// An index per kind of operation.
fn kind(op: &Op) -> usize {
    match op {
        Op::Load(_) => 0,
        Op::Pull(_) => 1,
        Op::Tag(..) => 2,
        Op::Rmi(_) => 3,
        Op::Mount(_) => 4,
        Op::Mirror(_) => 5,
    }
}

/// What a finished process said it did: names now there, names gone,
/// directories made.
#[derive(Default, Debug)]
struct Reported {
    present: Vec<String>,
    absent: Vec<String>,
    dirs: Vec<PathBuf>,
}

fn reported(world: &World, op: &Op, stdout: &str) -> Reported {
    let mut r = Reported::default();
    match op {
        Op::Load(_) => r.present.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("Loaded image: "))
                .map(str::to_string),
        ),
        Op::Pull(k) => r.present.push(world.images[*k].1.clone()),
        Op::Tag(_, name) => r.present.push(name.clone()),
        Op::Rmi(_) => r.absent.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("Untagged: "))
                .map(str::to_string),
        ),
        Op::Mount(_) => r.dirs.push(PathBuf::from(stdout.trim())),
        Op::Mirror(_) => {}
    }
    r
}

/// Names as `images` lists them.
fn names(s: &Strata) -> BTreeSet<String> {
    s.reg(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

/// Every tag of `repo` on the registry names a manifest whose blobs are
/// all there; gives the tags seen.
fn registry_whole(registry: &str, repo: &str) -> Result<usize, String> {
    let tags = tag_list(registry, repo);
    for tag in &tags {
        let body = manifest_bytes(registry, repo, tag);
        let m: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{repo}:{tag}: the manifest does not parse: {e}"))?;
        let mut blobs = vec![m["config"]["digest"].as_str().unwrap_or("").to_string()];
        for l in m["layers"].as_array().into_iter().flatten() {
            blobs.push(l["digest"].as_str().unwrap().to_string());
        }
        for b in blobs {
            if !has_blob(registry, repo, &b) {
                return Err(format!("{repo}:{tag} names blob {b}, which is missing"));
            }
        }
    }
    Ok(tags.len())
}

#[test]
fn killed_commands_leave_a_sound_store_and_registry() {
    let rounds: usize = std::env::var("STRATA_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test: seed {seed} (STRATA_CRASH_SEED={seed} repeats it), {rounds} rounds");
    let mut rng = fastrand::Rng::with_seed(seed);
    let s = Strata::isolated();
    let world = setup(&s, &mut rng);
    let started = Instant::now();
    let (mut kills, mut mirrors_killed) = (0, 0);
    let mut lives = [Duration::from_millis(300); 6];
    let mut round = 0;
    // A kill can land after its victim ended: rounds go on until enough
    // landed (a bound keeps a run whose kills never land finite).
    while kills < rounds && round < rounds * 4 {
        round += 1;
        let ops = world.round(&mut rng, round);
        let mut children: Vec<(Op, Child)> = ops
            .iter()
            .map(|op| (op.clone(), world.command(&s, op).spawn().unwrap()))
            .collect();
        let spawned = Instant::now();
        // A random moment of the victim's life: a fraction of how long its
        // kind of command took when it last ran whole.
        let victim = rng.usize(..children.len());
        let life = lives[kind(&children[victim].0)];
        std::thread::sleep(life.mul_f64(rng.f64()));
        let _ = children[victim].1.kill();
        let mut expect = Reported::default();
        let mut mirror_targets = Vec::new();
        let mut log = Vec::new();
        for (op, child) in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if let Op::Mirror(target) = &op {
                mirror_targets.push(target.clone());
            }
            if out.status.signal() == Some(libc::SIGKILL) {
                kills += 1;
                if matches!(op, Op::Mirror(_)) {
                    mirrors_killed += 1;
                }
                log.push(format!("{op:?}: killed"));
                continue;
            }
            // A command that was not killed succeeds, or fails only because
            // an earlier round's removal left it nothing to work on. (A
            // write that found a blob present, left unnamed by a killed
            // command, and lost it to a collection beside it used to fail
            // here with "run it again"; the store sink pins such blobs now.)
            assert!(
                out.status.success() || stderr.contains("No such image"),
                "seed {seed}, round {round}: {op:?} failed: {stderr}"
            );
            log.push(format!("{op:?}: exit {:?}", out.status.code()));
            // Waited for in turn, a process may have ended before: what is
            // seen is at least its life, and the least seen comes closest.
            if out.status.success() {
                let life = &mut lives[kind(&op)];
                *life = (*life).min(spawned.elapsed());
            }
            if out.status.success() {
                let r = reported(&world, &op, &stdout);
                expect.present.extend(r.present);
                expect.absent.extend(r.absent);
                expect.dirs.extend(r.dirs);
            }
        }
        let check = s.reg(&["system", "check"]);
        assert_eq!(
            check.code, 0,
            "seed {seed}, round {round} ({log:?}): system check found problems:\n{}{}",
            check.stdout, check.stderr
        );
        let have = names(&s);
        for n in &expect.present {
            assert!(
                have.contains(n),
                "seed {seed}, round {round} ({log:?}): {n} was reported but is not there: {have:?}"
            );
        }
        for n in &expect.absent {
            assert!(
                !have.contains(n),
                "seed {seed}, round {round} ({log:?}): {n} was removed but is there"
            );
        }
        for d in &expect.dirs {
            assert!(
                d.is_dir(),
                "seed {seed}, round {round} ({log:?}): mount {} is gone",
                d.display()
            );
        }
        for target in mirror_targets {
            for repo in ["p0", "p1"] {
                let repo = format!("{target}/{}/{repo}", world.prefix);
                if let Err(e) = registry_whole(&world.registry, &repo) {
                    panic!("seed {seed}, round {round} ({log:?}): {e}");
                }
            }
        }
    }
    // What killed processes left in the ingest area goes with the next
    // writing command.
    s.reg(&["tag", &world.images[0].0, "crash/final:1"]);
    let ingest = s.root().join(".strata/ingest");
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "seed {seed}: left in the ingest area: {left:?}"
    );
    // What killed mounts left goes with `system prune`: every state
    // directory left is a recorded mount's.
    let states = || {
        std::fs::read_dir(s.root().join(".strata/mounts"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let states_before = states();
    s.reg(&["system", "prune", "-f"]).ok();
    let swept = states_before - states();
    let recorded =
        std::fs::read_to_string(s.root().join(".strata/mounts.json")).unwrap_or_default();
    if let Ok(states) = std::fs::read_dir(s.root().join(".strata/mounts")) {
        for state in states.flatten() {
            let path = state.path().display().to_string();
            assert!(
                recorded.contains(&format!("\"{path}\"")),
                "seed {seed}: {path} is left by a killed mount"
            );
        }
    }
    s.reg(&["system", "check"]).ok();
    eprintln!(
        "crash test: {round} rounds, {kills} processes killed ({mirrors_killed} mirrors), \
         {swept} killed mounts' state swept, {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        kills, rounds,
        "seed {seed}: too few kills landed in {round} rounds"
    );
}
