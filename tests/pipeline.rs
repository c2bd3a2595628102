//! `strata run` end to end: the example pipelines, checking before running
//! (every error class with its message and place, exit 125, nothing run),
//! expressions and outputs, `if`, `for_each` with `parallel`,
//! `continue_on_error`, `retry`, `timeout`, `--var`, `--dry-run`,
//! `--report` and `--schema`.

mod common;

use std::path::{Path, PathBuf};

use common::{Strata, demo_archive, fault_control, fixture, need, peer, unique};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a pipeline file into the test's directory.
fn pipeline(s: &Strata, name: &str, text: &str) -> PathBuf {
    let p = s.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_quickstart_pipeline_runs() {
    let s = Strata::new();
    let out = s.path("hello.tar.gz");
    let report_file = s.path("report.json");
    let run = output(
        s.command()
            .current_dir(repo_root())
            .args(["run", "--report"])
            .arg(&report_file)
            .args(["--var", &format!("out={}", out.display())])
            .arg("pipelines/quickstart.yaml"),
    )
    .ok();
    assert!(
        run.stdout
            .starts_with("Loaded image: strata-demo/hello:1.0\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("sha256:b1dcaf3cc163fb83e331a45beca0ccd82397d169b2c97cee7ebda146db9ee8dd linux/amd64 [\"cat\",\"/etc/motd\"]\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Untagged: demo/hello:latest\n"),
        "{}",
        run.stdout
    );
    assert!(out.exists(), "save wrote {}", out.display());
    let r = report(&report_file);
    assert_eq!(r["status"], "succeeded");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    assert!(steps.iter().all(|s| s["status"] == "succeeded"), "{r:#}");
    assert_eq!(
        steps[0]["outputs"]["images"][0],
        "docker.io/strata-demo/hello:1.0"
    );
    assert!(steps[0]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(steps[6]["items"].as_array().unwrap().len(), 2);
    // What the pipeline leaves: both names, loaded back from the archive.
    let images = s
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert_eq!(images.stdout, "demo/hello:latest\nstrata-demo/hello:1.0\n");
}

fn output(cmd: &mut std::process::Command) -> common::Run {
    common::output(cmd)
}

/// Runs a pipeline that must be refused before anything runs: exit 125,
/// one `FILE:LINE:COL: message` line per problem, and no store made.
#[track_caller]
fn refused(text: &str) -> Vec<String> {
    let s = Strata::new();
    let file = pipeline(&s, "bad.yaml", text);
    let run = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, 125, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "", "nothing ran");
    assert!(!s.root().exists(), "the store was not even opened");
    let prefix = format!("{}:", file.display());
    run.stderr
        .lines()
        .map(|l| {
            assert!(l.starts_with(&prefix), "{l}");
            l[prefix.len()..].to_string()
        })
        .collect()
}

#[test]
fn problems_are_reported_with_their_place_before_anything_runs() {
    // YAML syntax.
    let e = refused("version: 1\nsteps:\n  - load: {input: [\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("4:1: "), "{e:?}");
    // An unknown key in a step's action, at the key.
    let e = refused("version: 1\nsteps:\n  - load:\n      inptu: x.tar\n");
    assert_eq!(
        e,
        ["4:7: load: unknown key `inptu` (expected one of `input`, `quiet`, `transform`)"]
    );
    // A wrong type, at the value.
    let e =
        refused("version: 1\nsteps:\n  - pull: {image: nginx, max_concurrent_downloads: lots}\n");
    assert!(
        e[0].starts_with("3:52: pull: invalid value \"lots\" for a number"),
        "{e:?}"
    );
    // An unknown step id in an expression, at the expression.
    let e = refused(
        "version: 1\nsteps:\n  - tag: {source: a, target: '${{ steps.load.outputs.id }}'}\n",
    );
    assert_eq!(e, ["3:35: step 1 (tag): unknown step `load`"]);
    // A bad image reference.
    let e = refused("version: 1\nsteps:\n  - pull: {image: 'Bad:Ref:x'}\n");
    assert!(e[0].starts_with("3:19: pull: "), "{e:?}");
    // Two problems in one file: both, in file order.
    let e = refused("version: 1\nsteps:\n  - images: {colour: red}\n  - rmi: {}\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("3:14: images: unknown key `colour`"),
        "{e:?}"
    );
    assert!(e[1].starts_with("4:10: rmi: missing key `images`"), "{e:?}");
    // A file that is not there.
    let s = Strata::new();
    let run = s.run(&["run", "/nonexistent/p.yaml"]);
    assert_eq!(run.code, 125);
    assert!(
        run.stderr
            .starts_with("/nonexistent/p.yaml: cannot read the pipeline: ")
    );
}

const DEMO_STEPS: &str = r#"version: 1
vars:
  tags: [one, two, three]
steps:
  - id: load
    load: {input: "${{ vars.archive }}"}
  - id: tags
    for_each: ${{ vars.tags }}
    parallel: 2
    tag:
      source: ${{ steps.load.outputs.ids[0] }}
      target: "copies/hello:${{ item }}"
  - id: never
    if: ${{ length(steps.tags.outputs) == 99 }}
    rmi: {image: copies/hello:one}
  - id: missing
    continue_on_error: true
    retry: {attempts: 2, backoff: 10ms}
    inspect: {image: no/such:image}
  - if: ${{ steps.missing.status == 'failed' && steps.never.status == 'skipped' }}
    images: {format: "{{.Repository}}:{{.Tag}}", reference: copies/hello}
"#;

#[test]
fn outputs_conditions_loops_retries_and_continuing_after_a_failure() {
    let s = Strata::new();
    let file = pipeline(&s, "p.yaml", DEMO_STEPS);
    let report_file = s.path("report.json");
    let run = s.run(&[
        "run",
        "--var",
        &format!("archive={}", demo_archive().display()),
        "--report",
        report_file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // inspect prints `[]` for an image it cannot find, as docker does;
    // the tags were made in parallel, so their order is the store's.
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["Loaded image: strata-demo/hello:1.0", "[]", "[]"]
    );
    lines[3..].sort();
    assert_eq!(
        lines[3..],
        ["copies/hello:one", "copies/hello:three", "copies/hello:two"]
    );
    assert!(run.stderr.contains("strata: missing: attempt 1 of 2 failed: No such object: no/such:image; trying again in 10ms"), "{}", run.stderr);
    let r = report(&report_file);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "succeeded");
    let items = steps[1]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[2]["item"], "three");
    assert_eq!(
        items[2]["outputs"]["reference"],
        "docker.io/copies/hello:three"
    );
    assert_eq!(steps[2]["status"], "skipped");
    assert_eq!(steps[3]["status"], "failed");
    assert_eq!(steps[3]["continued"], true);
    assert_eq!(steps[3]["error"], "No such object: no/such:image");
    assert_eq!(steps[4]["status"], "succeeded");
    assert_eq!(r["status"], "succeeded");
}

#[test]
fn a_failed_step_stops_the_run_and_exits_1() {
    let s = Strata::new();
    let file = pipeline(
        &s,
        "p.yaml",
        "version: 1\nsteps:\n  - id: first\n    inspect: {image: nope}\n  - images:\n",
    );
    let report_file = s.path("r.json");
    let run = s.run(&[
        "run",
        "--report",
        report_file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("strata: first: No such object: nope\n"),
        "{}",
        run.stderr
    );
    let r = report(&report_file);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["steps"][0]["status"], "failed");
    assert_eq!(r["steps"][1]["status"], "skipped");
    assert_eq!(r["steps"][1]["error"], "not run: first failed");
}

#[test]
fn a_dry_run_changes_nothing() {
    let s = Strata::new();
    let file = pipeline(&s, "p.yaml", DEMO_STEPS);
    let run = s.run(&[
        "run",
        "--dry-run",
        "--var",
        &format!("archive={}", demo_archive().display()),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!(
            "would run load: load {{\"input\":\"{}\"}}\n",
            demo_archive().display()
        )),
        "{}",
        run.stdout
    );
    assert!(
        !s.root().join("index.json").exists() || s.run(&["images", "-q"]).ok().stdout.is_empty()
    );
}

#[test]
fn the_schema_describes_every_action() {
    let s = Strata::new();
    let run = s.run(&["run", "--schema"]).ok();
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let step = &schema["$defs"]["step"]["properties"];
    for action in [
        "pull", "push", "load", "save", "tag", "images", "inspect", "rmi",
    ] {
        assert!(step.get(action).is_some(), "{action}");
    }
    assert_eq!(schema["required"], serde_json::json!(["version", "steps"]));
}

#[test]
fn every_example_pipeline_is_valid() {
    // The registry examples need real registries to run (tests/mirror.rs
    // runs them); here each one must at least pass the checks.
    for entry in std::fs::read_dir(repo_root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let s = Strata::new();
        let run = s.run(&[
            "run",
            "--dry-run",
            "--var",
            "source=127.0.0.1:1",
            "--var",
            "target=127.0.0.1:2",
            path.to_str().unwrap(),
        ]);
        assert_ne!(run.code, 125, "{}: {}", path.display(), run.stderr);
    }
}

/// Serialises the tests that arm the fault proxy (see tests/registry.rs).
fn proxy_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/strata-test-fault-proxy.lock")
        .unwrap();
    f.lock().unwrap();
    f
}

#[test]
fn a_step_that_outlives_its_timeout_is_stopped_and_leaves_the_store_as_it_was() {
    let _guard = proxy_lock();
    let image = format!(
        "{}/{}/app:v1",
        need("STRATA_TEST_REGISTRY_PLAIN"),
        unique("timeout")
    );
    let src = format!("oci:{}:v1", fixture("multiarch-oci").display());
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{image}"),
        ],
    );
    let proxied = image.replacen(
        &need("STRATA_TEST_REGISTRY_PLAIN"),
        &need("STRATA_TEST_FAULT_PROXY"),
        1,
    );
    fault_control("POST", "/reset", "");
    fault_control(
        "POST",
        "/faults",
        r#"{"fault": "slow", "method": "GET", "path": "/blobs/", "count": 100, "rate": 200}"#,
    );
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let before = s.snapshot();
    let file = pipeline(
        &s,
        "p.yaml",
        &format!(
            "version: 1\nsteps:\n  - id: slow\n    timeout: 1s\n    pull: {{image: '{proxied}'}}\n"
        ),
    );
    let started = std::time::Instant::now();
    let run = s.run(&["run", file.to_str().unwrap()]);
    fault_control("POST", "/reset", "");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("strata: slow: timed out after 1s\n"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The pull's staged blobs are gone with it; the store is as it was
    // (strata's own ingest area aside, which the next writer sweeps).
    let after: Vec<_> = s
        .snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".strata/ingest"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".strata/ingest"))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn copy_steps_between_the_store_and_a_layout() {
    let s = Strata::new();
    let layout = s.path("layout");
    let text = format!(
        r#"version: 1
steps:
  - load: {{input: "{}", quiet: true}}
  - id: out
    copy: {{source: strata-demo/hello:1.0, target: "oci:{}:v1", quiet: true}}
  - id: back
    copy: {{source: "oci:{}:v1", target: copies/hello:1, quiet: true}}
  - if: ${{{{ steps.out.outputs.digest == steps.back.outputs.digest }}}}
    images: {{format: "{{{{.Repository}}}}:{{{{.Tag}}}}", reference: copies/hello}}
"#,
        demo_archive().display(),
        layout.display(),
        layout.display()
    );
    let file = pipeline(&s, "p.yaml", &text);
    let run = s.run(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // load -q still names what it loaded, as docker's does; each copy
    // prints its digest alone (quiet); both are the same image.
    assert_eq!(lines[0], "Loaded image: strata-demo/hello:1.0");
    assert_eq!(lines[1], lines[2]);
    assert!(lines[1].starts_with("sha256:"), "{}", run.stdout);
    assert_eq!(lines[3], "copies/hello:1");
    // A bad address is refused before anything runs, at its place.
    let e = refused("version: 1\nsteps:\n  - copy: {source: 'dir:/x', target: a}\n");
    assert!(
        e[0].starts_with("3:20: copy: \"dir:/x\": strata does not support"),
        "{e:?}"
    );
}
