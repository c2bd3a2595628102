//! Shared helpers for the end-to-end tests: run the real `strata` binary
//! against a temporary store, and the peer tools beside it.

#![allow(dead_code)]

pub mod plain_registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The output of one command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a prepared command and collects its output.
pub fn output(cmd: &mut Command) -> Run {
    Run::from(cmd.output().expect("run command"))
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics, showing everything, unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed with a one-line error.
    #[track_caller]
    pub fn fails(self) -> Run {
        assert_ne!(
            self.code, 0,
            "command unexpectedly succeeded:\n{}",
            self.stdout
        );
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "error is not one line:\n{}",
            self.stderr
        );
        self
    }
}

/// Unmounts whatever a test left mounted in its temporary directory (the
/// store and the scratch paths beside it), deepest first, even when it
/// fails half way, so no mount outlives the directory.
pub struct Unmounter<'s>(pub &'s Strata);

impl Drop for Unmounter<'_> {
    fn drop(&mut self) {
        let dir = self.0.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|target| target.starts_with(&dir))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for target in targets {
            let _ = Command::new("umount").args(["-l", target]).status();
        }
    }
}

/// A strata store in a temporary directory, removed afterwards.
pub struct Strata {
    pub dir: tempfile::TempDir,
}

impl Strata {
    pub fn new() -> Strata {
        Strata {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The store's root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A scratch path beside the store.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.env("STRATA_ROOT", self.root())
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        c
    }

    /// Runs strata with these arguments.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().expect("run strata"))
    }

    /// Runs strata with a file as standard input.
    pub fn run_stdin(&self, args: &[&str], input: &Path) -> Run {
        let file = std::fs::File::open(input).expect("open input");
        Run::from(
            self.command()
                .args(args)
                .stdin(file)
                .output()
                .expect("run strata"),
        )
    }

    /// Every file under the store with its contents' digest, to show that a
    /// failed command left the store exactly as it was.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk(&self.root(), &self.root(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if rel.ends_with("/lock") || rel == ".strata/lock" {
            continue;
        }
        if p.is_dir() {
            out.push((rel.clone() + "/", String::new()));
            walk(root, &p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.push((rel, sha256_hex(&bytes)));
        }
    }
}

/// sha256 of bytes as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The repository's own small demo archive.
pub fn demo_archive() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.tar")
}

/// A fixture built by scripts/fixtures. Missing fixtures fail the test
/// with the command that builds them: nothing is skipped silently.
pub fn fixture(name: &str) -> PathBuf {
    let dir =
        std::env::var_os("STRATA_FIXTURES").unwrap_or_else(|| "/var/cache/strata-fixtures".into());
    let p = PathBuf::from(dir).join(name);
    assert!(
        p.exists(),
        "fixture {} is missing: run scripts/fixtures (or scripts/test)",
        p.display()
    );
    p
}

/// Runs a peer tool; panics with its output when it fails.
#[track_caller]
pub fn peer(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let run = Run::from(out);
    assert_eq!(
        run.code, 0,
        "{program} {args:?} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// The docker client talking to the test harness's private daemon.
pub fn docker() -> Command {
    let host = std::env::var("STRATA_TEST_DOCKER_HOST")
        .expect("STRATA_TEST_DOCKER_HOST is not set: run the tests through scripts/test, which starts a private dockerd");
    let bin = std::env::var("STRATA_DOCKER_BIN").unwrap_or_else(|_| "/usr/bin/docker".into());
    let mut c = Command::new(bin);
    c.env("DOCKER_HOST", host).env("TZ", "UTC");
    c
}

/// Serialises the tests that use the shared Docker daemon, across test
/// processes (nextest runs each test in its own): one test's tags would
/// otherwise show in another's `inspect`.
pub fn docker_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/strata-test-docker.lock")
        .expect("docker lock file");
    f.lock().expect("docker lock");
    f
}

/// Runs docker with these arguments.
pub fn docker_run(args: &[&str]) -> Run {
    Run::from(docker().args(args).output().expect("run docker"))
}

/// Replaces relative times ("2 years ago", "About an hour ago") by a
/// placeholder, so outputs taken at different moments compare.
pub fn mask_relative_times(text: &str) -> String {
    let units = [
        "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
        "month", "months", "year", "years",
    ];
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        for phrase in [
            "Less than a second ago",
            "About a minute ago",
            "About an hour ago",
        ] {
            l = l.replace(phrase, &pad_like(phrase));
        }
        let words: Vec<&str> = l.split(' ').collect();
        let mut rebuilt = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if i + 2 < words.len()
                && words[i].chars().all(|c| c.is_ascii_digit())
                && !words[i].is_empty()
                && units.contains(&words[i + 1])
                && words[i + 2] == "ago"
            {
                let phrase = format!("{} {} ago", words[i], words[i + 1]);
                rebuilt.push(pad_like(&phrase));
                i += 3;
            } else {
                rebuilt.push(words[i].to_string());
                i += 1;
            }
        }
        out.push_str(&rebuilt.join(" "));
        out.push('\n');
    }
    out
}

fn pad_like(phrase: &str) -> String {
    "~".repeat(phrase.chars().count())
}

/// A variable the test harness exports (scripts/test starts the servers).
pub fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which starts the registries")
    })
}

impl Strata {
    /// A strata whose docker and strata config directories are private to
    /// the test, so logins and CA certificates do not leak between tests.
    pub fn isolated() -> Strata {
        let s = Strata::new();
        std::fs::create_dir_all(s.path("docker-config")).unwrap();
        std::fs::create_dir_all(s.path("strata-config")).unwrap();
        s
    }

    /// A command with the private config directories set.
    pub fn registry_command(&self) -> Command {
        let mut c = self.command();
        c.env("DOCKER_CONFIG", self.path("docker-config"))
            .env("STRATA_CONFIG", self.path("strata-config"));
        c
    }

    /// Runs strata with the private config directories.
    pub fn reg(&self, args: &[&str]) -> Run {
        Run::from(
            self.registry_command()
                .args(args)
                .output()
                .expect("run strata"),
        )
    }

    /// Trusts `ca` for `registry`, in strata's certs.d.
    pub fn trust(&self, registry: &str, ca: &str) {
        let dir = self.path("strata-config").join("certs.d").join(registry);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    }
}

/// A unique repository name for a test, so tests sharing a registry never
/// see each other's images.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The manifest digest skopeo sees for a registry image (plain HTTP or insecure).
pub fn skopeo_digest(image: &str) -> String {
    let out = peer(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{image}"),
        ],
    );
    out.trim().to_string()
}

/// Talks to the fault proxy's control API (plain HTTP on loopback).
pub fn fault_control(method: &str, path: &str, body: &str) -> String {
    let base = need("STRATA_TEST_FAULT_CONTROL");
    let mut args = vec!["-sS", "-X", method, "-H", "Content-Type: application/json"];
    let url = format!("{base}{path}");
    if !body.is_empty() {
        args.extend(["-d", body]);
    }
    args.push(&url);
    peer("curl", &args)
}

/// A test that cannot run here (not root): it fails, unless
/// `STRATA_ALLOW_UNPRIVILEGED=1` lets it skip, visibly: a `SKIPPED` line
/// on stderr and in the file `STRATA_SKIP_LOG` names, which scripts/test
/// counts and lists. Returns only when the test is to skip.
#[track_caller]
pub fn cannot_run(test: &str, reason: &str) {
    if std::env::var_os("STRATA_ALLOW_UNPRIVILEGED").is_some_and(|v| v == "1") {
        let line = format!("SKIPPED {test}: {reason}");
        eprintln!("{line}");
        if let Some(log) = std::env::var_os("STRATA_SKIP_LOG") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open STRATA_SKIP_LOG");
            writeln!(f, "{line}").expect("write STRATA_SKIP_LOG");
        }
    } else {
        panic!("{test} cannot run here: {reason} (STRATA_ALLOW_UNPRIVILEGED=1 skips it, visibly)");
    }
}
