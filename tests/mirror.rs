//! The mirror step end to end against real registries (docker-registry,
//! started by the harness), on images the harness pushes itself
//! (scripts/mirror_corpus.py): every filter, whole-catalog mirroring,
//! several targets, referrers, a platform subset, prune, unchanged tags at
//! one HEAD each, faults, a killed run resumed, and shards side by side.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::plain_registry::{blobs_needed, has_blob, manifest, manifest_digest, tag_list};
use common::{Run, Strata, fault_control, need, output, unique};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Pushes the small mirror fixture under a fresh prefix; its summary.
fn fixture(registry: &str) -> (String, Value) {
    let prefix = unique("msrc");
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/mirror_corpus.py"))
        .args(["fixture", "--registry", registry, "--prefix", &prefix])
        .output()
        .expect("run mirror_corpus.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (prefix, serde_json::from_slice(&out.stdout).unwrap())
}

/// The digest each tag of the fixture's `repo` names.
fn source_tags(summary: &Value, repo: &str) -> BTreeMap<String, String> {
    summary["repositories"][repo]["tags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, v)| (t.clone(), v["digest"].as_str().unwrap().to_string()))
        .collect()
}

/// Tag → digest of a repository on a plain registry (empty when it does
/// not exist).
fn target_tags(registry: &str, repo: &str) -> BTreeMap<String, String> {
    tag_list(registry, repo)
        .into_iter()
        .map(|t| {
            let d = manifest_digest(registry, repo, &t).expect("listed tag has a manifest");
            (t, d)
        })
        .collect()
}

fn pipeline(s: &Strata, text: &str) -> PathBuf {
    let p = s.path(&format!("{}.yaml", unique("p")));
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs a pipeline with a report; the run and the report.
fn run(s: &Strata, file: &Path, extra: &[&str]) -> (Run, Value) {
    let report = s.path(&format!("{}.json", unique("report")));
    let mut c = s.registry_command();
    c.args(["run", "--report", report.to_str().unwrap()])
        .args(extra)
        .arg(file);
    let r = output(&mut c);
    let v = std::fs::read_to_string(&report)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (r, v)
}

/// The blobs of a fixture repository's tagged images (its referrers'
/// aside).
fn image_blobs(summary: &Value, repo: &str) -> BTreeSet<String> {
    summary["repositories"][repo]["tags"]
        .as_object()
        .unwrap()
        .values()
        .filter(|t| t["kind"] != "referrers")
        .flat_map(|t| t["blobs"].as_array().unwrap().iter())
        .map(|b| b.as_str().unwrap().to_string())
        .collect()
}

fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_filter_selects_exactly_the_expected_tags() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let (p, summary) = fixture(&reg);
    let src = source_tags(&summary, &format!("{p}/team/app"));
    let t = unique("mdst");
    let s = Strata::isolated();
    let step = |id: &str, tags: &str| {
        format!(
            "  - id: {id}\n    mirror:\n      from: {reg}\n      to: [{{registry: {reg}, prefix: {t}/{id}/}}]\n      repositories: [{p}/team/app]\n      referrers: false\n      tags: {tags}\n"
        )
    };
    let text = format!(
        "version: 1\nsteps:\n{}{}{}{}{}{}",
        step("regex", "{include: ['^v'], exclude: ['-rc']}"),
        step("semver", "{semver: '>=1.2 <3'}"),
        step("latestver", "{include: ['^v'], latest: 2}"),
        step("latesttime", "{include: ['^nightly'], latest: 1}"),
        step("recent", "{include: ['^nightly'], newer_than: 90d}"),
        step(
            "bydigest",
            &format!("{{include: ['^none$'], digests: ['{}']}}", src["v1.0.0"])
        ),
    );
    let file = pipeline(&s, &text);

    // The dry run reports each stage and changes nothing.
    let (dry, _) = run(&s, &file, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("  dropped by include (5): latest multi nightly-a nightly-b nightly-c\n"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("  dropped by exclude (1): v2.0.0-rc1"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("  to copy (5): "), "{}", dry.stdout);
    assert!(target_tags(&reg, &format!("{t}/regex/{p}/team/app")).is_empty());

    let (r, report) = run(&s, &file, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = |id: &str| -> BTreeMap<String, String> {
        target_tags(&reg, &format!("{t}/{id}/{p}/team/app"))
    };
    let expect = |list: &[&str]| -> BTreeMap<String, String> {
        list.iter()
            .map(|t| (t.to_string(), src[*t].clone()))
            .collect()
    };
    assert_eq!(
        got("regex"),
        expect(&["v1.0.0", "v1.2.0", "v2.0.0", "v2.1.0", "v3.0.0"])
    );
    assert_eq!(got("semver"), expect(&["v1.2.0", "v2.0.0", "v2.1.0"]));
    assert_eq!(got("latestver"), expect(&["v2.1.0", "v3.0.0"]));
    assert_eq!(got("latesttime"), expect(&["nightly-c"]));
    assert_eq!(got("recent"), expect(&["nightly-b", "nightly-c"]));
    assert!(got("bydigest").is_empty(), "no tag for a digest");
    assert_eq!(
        manifest_digest(&reg, &format!("{t}/bydigest/{p}/team/app"), &src["v1.0.0"]).as_deref(),
        Some(src["v1.0.0"].as_str())
    );
    // The report names what each stage dropped.
    let dropped = &report["steps"][1]["outputs"]["repositories"][0]["dropped"];
    assert_eq!(dropped[0]["filter"], "semver");
    let copied = report["steps"][0]["outputs"]["copied"].as_array().unwrap();
    assert_eq!(copied.len(), 5);
}

#[test]
fn a_whole_catalog_to_two_registries_with_referrers() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let tls = need("STRATA_TEST_REGISTRY_TLS_NAME");
    let (p, summary) = fixture(&reg);
    let t = unique("mcat");
    let s = Strata::isolated();
    s.trust(&tls, &need("STRATA_TEST_REGISTRY_TLS_CA"));
    let text = format!(
        r#"version: 1
registries:
  {tls}:
    credentials:
      username: ${{{{ env.MIRROR_USER }}}}
      password: ${{{{ env.MIRROR_PASSWORD }}}}
steps:
  - id: everything
    mirror:
      from: {reg}
      to:
        - registry: {reg}
          prefix: {t}/
        - registry: {tls}
          rewrite: {{from: '^{p}/(.*)$', to: '{t}/$1'}}
      repositories: {{catalog: '^{p}/'}}
  - if: ${{{{ length(steps.everything.outputs.copied) > 0 }}}}
    images: {{quiet: true}}
"#
    );
    let file = pipeline(&s, &text);
    let report = s.path("r.json");
    let r = output(
        s.registry_command()
            .env("MIRROR_USER", need("STRATA_TEST_REGISTRY_USER"))
            .env("MIRROR_PASSWORD", need("STRATA_TEST_REGISTRY_PASSWORD"))
            .args(["run", "--report", report.to_str().unwrap()])
            .arg(&file),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let outputs = &report["steps"][0]["outputs"];
    assert_eq!(report["steps"][1]["status"], "succeeded");

    let repos = ["team/app", "team/web", "other/db"];
    let mut all_blobs = BTreeSet::new();
    for repo in repos {
        let src_repo = format!("{p}/{repo}");
        let mut want = source_tags(&summary, &src_repo);
        for b in summary["repositories"][&src_repo]["blobs"]
            .as_array()
            .unwrap()
        {
            all_blobs.insert(b.as_str().unwrap().to_string());
        }
        // The plain target: every tag, same digests, referrers' fallback
        // index included (it is a tag of the source too).
        assert_eq!(
            target_tags(&reg, &format!("{t}/{src_repo}")),
            want,
            "{repo}"
        );
        // The TLS target, through skopeo with the test CA and credentials.
        want.retain(|tag, _| !tag.starts_with("sha256-"));
        for (tag, digest) in &want {
            let raw = common::peer(
                "skopeo",
                &[
                    "inspect",
                    "--raw",
                    "--cert-dir",
                    &need("STRATA_TEST_REGISTRY_TLS_CERT_DIR"),
                    "--creds",
                    &format!(
                        "{}:{}",
                        need("STRATA_TEST_REGISTRY_USER"),
                        need("STRATA_TEST_REGISTRY_PASSWORD")
                    ),
                    &format!("docker://{tls}/{t}/{repo}:{tag}"),
                ],
            );
            assert_eq!(
                &format!("sha256:{}", common::sha256_hex(raw.as_bytes())),
                digest
            );
        }
    }
    // The referrer of team/app:v2.1.0 is there by digest, listed in the
    // fallback index of its subject.
    let app = &summary["repositories"][format!("{p}/team/app")];
    let (subject, refs) = app["referrers"].as_object().unwrap().iter().next().unwrap();
    let referrer = refs[0]["digest"].as_str().unwrap();
    for b in refs[0]["blobs"].as_array().unwrap() {
        all_blobs.insert(b.as_str().unwrap().to_string());
    }
    let target_repo = format!("{t}/{p}/team/app");
    assert_eq!(
        manifest_digest(&reg, &target_repo, referrer).as_deref(),
        Some(referrer)
    );
    let fallback = manifest(
        &reg,
        &target_repo,
        &format!("sha256-{}", subject.trim_start_matches("sha256:")),
    );
    assert_eq!(fallback["manifests"][0]["digest"], referrer);
    let copied = outputs["copied"].as_array().unwrap();
    assert!(
        copied.iter().any(|c| c["referrers"]
            .as_array()
            .is_some_and(|r| r.contains(&Value::from(referrer)))),
        "{outputs:#}"
    );
    // Each blob crossed to the TLS registry once, though tags and the
    // three repositories share some (the base layer went up once, then was
    // mounted); in the source's own registry every blob was mounted from
    // its source repository, none uploaded.
    assert_eq!(
        outputs["blobs_uploaded"].as_u64().unwrap(),
        all_blobs.len() as u64,
        "{} distinct blobs",
        all_blobs.len()
    );
    assert!(outputs["blobs_mounted"].as_u64().unwrap() >= all_blobs.len() as u64 + 2);
}

#[test]
fn a_platform_subset_rewrites_the_index() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let (p, summary) = fixture(&reg);
    let src = source_tags(&summary, &format!("{p}/team/app"));
    let t = unique("mplat");
    let s = Strata::isolated();
    let text = format!(
        "version: 1\nsteps:\n  - id: arm\n    mirror:\n      from: {reg}\n      to: [{{registry: {reg}, prefix: {t}/}}]\n      repositories: [{p}/team/app]\n      tags: {{include: ['^multi$', '^v1.0.0$']}}\n      platforms: [linux/arm64]\n"
    );
    let (r, report) = run(&s, &pipeline(&s, &text), &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = target_tags(&reg, &format!("{t}/{p}/team/app"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["multi"],
        "v1.0.0 is amd64 only"
    );
    assert_ne!(got["multi"], src["multi"], "a new index");
    let index = manifest(&reg, &format!("{t}/{p}/team/app"), "multi");
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["platform"]["architecture"], "arm64");
    let out = &report["steps"][0]["outputs"];
    let copied = &out["copied"][0];
    assert!(
        copied["note"].as_str().unwrap().contains(&format!(
            "index {} cut to linux/arm64 as {}",
            src["multi"], got["multi"]
        )),
        "{copied}"
    );
    assert_eq!(out["skipped"][0]["status"], "skipped");
    // Run again: the rewritten index is recognised as up to date.
    let (again, report) = run(&s, &pipeline(&s, &text), &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        report["steps"][0]["outputs"]["copied"],
        serde_json::json!([])
    );
}

#[test]
fn prune_makes_the_target_an_exact_mirror() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let (p, summary) = fixture(&reg);
    let src = source_tags(&summary, &format!("{p}/team/web"));
    let t = unique("mprune");
    let s = Strata::isolated();
    let step = |tags: &str, prune: bool| {
        format!(
            "version: 1\nsteps:\n  - mirror:\n      from: {reg}\n      to: [{{registry: {reg}, prefix: {t}/}}]\n      repositories: [{p}/team/web]\n      prune: {prune}\n      tags: {tags}\n"
        )
    };
    let (r, _) = run(&s, &pipeline(&s, &step("{}", false)), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = format!("{t}/{p}/team/web");
    assert_eq!(target_tags(&reg, &target).len(), src.len());

    // Now only versions: the nightlies go. `latest` names the same
    // manifest as v3.0.0, which stays: deleting it by digest would take
    // v3.0.0 too, so it is kept and said so.
    let narrow = pipeline(&s, &step("{include: ['^v']}", true));
    let (dry, _) = run(&s, &narrow, &["--dry-run"]);
    assert!(
        dry.stdout.contains("to prune in ") && dry.stdout.contains("nightly-a nightly-b nightly-c"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        target_tags(&reg, &target).len(),
        src.len(),
        "a dry run deletes nothing"
    );
    let (r, report) = run(&s, &narrow, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left: BTreeSet<String> = target_tags(&reg, &target).into_keys().collect();
    assert_eq!(
        left,
        tags(&[
            "latest",
            "v1.0.0",
            "v1.2.0",
            "v2.0.0",
            "v2.0.0-rc1",
            "v2.1.0",
            "v3.0.0"
        ])
    );
    let pruned = &report["steps"][0]["outputs"]["pruned"][0];
    assert_eq!(
        pruned["deleted"],
        serde_json::json!(["nightly-a", "nightly-b", "nightly-c"])
    );
    assert!(
        pruned["kept"][0]
            .as_str()
            .unwrap()
            .starts_with("latest (names the same manifest as the selected tag v3.0.0"),
        "{pruned}"
    );
}

/// Serialises the tests that use the fault proxy (its faults and log are
/// shared, see tests/registry.rs).
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

fn proxy_log() -> Vec<Value> {
    serde_json::from_str::<Value>(&fault_control("GET", "/log", ""))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_unchanged_tag_costs_one_head_on_the_target() {
    let _guard = proxy_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let proxy = need("STRATA_TEST_FAULT_PROXY");
    let (p, summary) = fixture(&reg);
    let t = unique("mwarm");
    let s = Strata::isolated();
    let text = format!(
        "version: 1\nsteps:\n  - mirror:\n      from: {proxy}\n      to: [{{registry: {proxy}, prefix: {t}/}}]\n      repositories: [{p}/team/app, {p}/team/web]\n"
    );
    let file = pipeline(&s, &text);
    let (cold, _) = run(&s, &file, &[]);
    assert_eq!(cold.code, 0, "{}\n{}", cold.stdout, cold.stderr);
    fault_control("POST", "/reset", "");
    let (warm, report) = run(&s, &file, &[]);
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    let tag_count: usize = ["team/app", "team/web"]
        .iter()
        .map(|r| {
            source_tags(&summary, &format!("{p}/{r}"))
                .keys()
                .filter(|t| !t.starts_with("sha256-"))
                .count()
        })
        .sum();
    let log = proxy_log();
    let on_target: Vec<&Value> = log
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .starts_with(&format!("/v2/{t}/"))
        })
        .collect();
    assert!(
        on_target
            .iter()
            .all(|e| e["method"] == "HEAD" && e["path"].as_str().unwrap().contains("/manifests/")),
        "{on_target:#?}"
    );
    assert_eq!(
        on_target.len(),
        tag_count,
        "one HEAD per tag: {on_target:#?}"
    );
    assert!(
        !log.iter()
            .any(|e| e["path"].as_str().unwrap().contains("/blobs/")),
        "no blob touched: {log:#?}"
    );
    let out = &report["steps"][0]["outputs"];
    assert_eq!(out["copied"], serde_json::json!([]));
    assert_eq!(out["skipped"].as_array().unwrap().len(), tag_count);
}

#[test]
fn resets_server_errors_and_a_429_storm_are_weathered() {
    let _guard = proxy_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let proxy = need("STRATA_TEST_FAULT_PROXY");
    let (p, summary) = fixture(&reg);
    let t = unique("mfault");
    let s = Strata::isolated();
    fault_control("POST", "/reset", "");
    let arm = |body: Value| {
        fault_control("POST", "/faults", &body.to_string());
    };
    arm(
        serde_json::json!({"fault": "reset", "method": "GET", "path": "/blobs/sha256:", "count": 3}),
    );
    arm(
        serde_json::json!({"fault": "status:500", "method": "PUT", "path": "/manifests/", "count": 2}),
    );
    arm(serde_json::json!({"fault": "status:429", "path": "/", "count": 8, "retry_after": 1}));
    arm(
        serde_json::json!({"fault": "short", "method": "GET", "path": "/blobs/sha256:", "count": 2, "skip": 5}),
    );
    let text = format!(
        "version: 1\nsteps:\n  - mirror:\n      from: {proxy}\n      to: [{{registry: {proxy}, prefix: {t}/}}]\n      repositories: [{p}/team/app]\n"
    );
    let (r, _) = run(&s, &pipeline(&s, &text), &[]);
    let left: Value = serde_json::from_str(&fault_control("GET", "/faults", "")).unwrap();
    let log = proxy_log();
    fault_control("POST", "/reset", "");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(left, serde_json::json!([]), "every fault was met");
    // The log shows each fault met by this mirror's requests, and each
    // faulted request asked again until the registry answered it.
    let met = |fault: &str| log.iter().filter(|e| e["fault"] == fault).count();
    assert_eq!(
        [
            met("reset"),
            met("status:500"),
            met("status:429"),
            met("short")
        ],
        [3, 2, 8, 2],
        "{log:#?}"
    );
    let answered = |e: &Value| {
        e["fault"].is_null() && e["status"].as_u64().is_some_and(|s| s < 500 && s != 429)
    };
    for e in log.iter().filter(|e| !e["fault"].is_null()) {
        let again = log.iter().find(|later| {
            later["seq"].as_u64() > e["seq"].as_u64()
                && later["method"] == e["method"]
                && later["path"] == e["path"]
                && answered(later)
        });
        assert!(again.is_some(), "{e} was not asked again: {log:#?}");
        // A body cut short is resumed where it broke, not read again whole.
        if e["fault"] == "short" {
            let again = again.unwrap();
            assert!(
                again["range"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-")),
                "{e} resumed by {again}"
            );
            assert_eq!(again["status"], 206, "{again}");
        }
    }
    let want = source_tags(&summary, &format!("{p}/team/app"));
    assert_eq!(target_tags(&reg, &format!("{t}/{p}/team/app")), want);
}

#[test]
fn a_killed_mirror_leaves_no_tag_without_its_blobs_and_resumes() {
    let _guard = proxy_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let proxy = need("STRATA_TEST_FAULT_PROXY");
    let (p, summary) = fixture(&reg);
    let t = unique("mkill");
    let s = Strata::isolated();
    let repos = ["team/app", "team/web", "other/db"];
    let text = format!(
        "version: 1\nsteps:\n  - mirror:\n      from: {proxy}\n      to: [{{registry: {reg}, prefix: {t}/}}]\n      repositories: {{catalog: '^{p}/'}}\n      concurrency: 2\n"
    );
    let file = pipeline(&s, &text);
    // Blob downloads crawl, so the kill lands mid-copy.
    fault_control("POST", "/reset", "");
    fault_control(
        "POST",
        "/faults",
        r#"{"fault": "slow", "method": "GET", "path": "/blobs/", "count": 1000, "rate": 150000}"#,
    );
    let mut child = s
        .registry_command()
        .args(["run"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some tags are there and others are not.
    let started = std::time::Instant::now();
    loop {
        let done: usize = repos
            .iter()
            .map(|r| target_tags(&reg, &format!("{t}/{p}/{r}")).len())
            .sum();
        if done >= 3 || started.elapsed() > std::time::Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    fault_control("POST", "/reset", "");
    let mut partial = 0;
    for repo in repos {
        let target = format!("{t}/{p}/{repo}");
        for (tag, _) in target_tags(&reg, &target) {
            partial += 1;
            for b in blobs_needed(&reg, &target, &tag) {
                assert!(has_blob(&reg, &target, &b), "{target}:{tag} lacks {b}");
            }
        }
    }
    let total: usize = repos
        .iter()
        .map(|r| source_tags(&summary, &format!("{p}/{r}")).len())
        .sum();
    assert!(
        partial > 0 && partial < total,
        "killed mid-run: {partial} of {total}"
    );
    // Running again finishes the job.
    let (r, report) = run(&s, &file, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for repo in repos {
        let src_repo = format!("{p}/{repo}");
        assert_eq!(
            target_tags(&reg, &format!("{t}/{src_repo}")),
            source_tags(&summary, &src_repo),
            "{repo}"
        );
    }
    let out = &report["steps"][0]["outputs"];
    assert!(
        !out["skipped"].as_array().unwrap().is_empty(),
        "what the killed run finished is not copied again"
    );
}

#[test]
fn shards_side_by_side_equal_one_process() {
    // The target is the source registry seen through the proxy: another
    // name, so strata cannot mount from the source and uploads what the
    // target lacks (which the counts below measure).
    let _guard = proxy_lock();
    fault_control("POST", "/reset", "");
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let proxy = need("STRATA_TEST_FAULT_PROXY");
    let (p, summary) = fixture(&reg);
    let t = unique("mshard");
    let s = Strata::isolated();
    let text = |prefix: &str| {
        format!(
            "version: 1\nsteps:\n  - id: m\n    mirror:\n      from: {reg}\n      to: [{{registry: {proxy}, prefix: {prefix}/}}]\n      repositories: {{catalog: '^{p}/'}}\n      referrers: false\n"
        )
    };
    let sharded = pipeline(&s, &text(&format!("{t}/sharded")));
    let reports: Vec<PathBuf> = (0..3).map(|i| s.path(&format!("shard{i}.json"))).collect();
    let children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            s.registry_command()
                .args(["run", "--shards", "3", "--report"])
                .arg(&reports[i])
                .arg(&sharded)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (one, single) = run(&s, &pipeline(&s, &text(&format!("{t}/single"))), &[]);
    assert_eq!(one.code, 0, "{}", one.stderr);

    // Disjoint and together complete.
    let mut seen: Vec<String> = Vec::new();
    let mut uploads = 0;
    let mut expected_uploads = 0;
    for r in &reports {
        let report: Value = serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap();
        let out = &report["steps"][0]["outputs"];
        let mut blobs = BTreeSet::new();
        for repo in out["repositories"].as_array().unwrap() {
            let name = repo["source"].as_str().unwrap().to_string();
            blobs.extend(image_blobs(&summary, &name));
            seen.push(name);
        }
        uploads += out["blobs_uploaded"].as_u64().unwrap();
        expected_uploads += blobs.len() as u64;
    }
    seen.sort();
    let all: Vec<String> = ["other/db", "team/app", "team/web"]
        .iter()
        .map(|r| format!("{p}/{r}"))
        .collect();
    assert_eq!(seen, all);
    // The same final state as one process.
    for repo in &all {
        assert_eq!(
            target_tags(&reg, &format!("{t}/sharded/{repo}")),
            target_tags(&reg, &format!("{t}/single/{repo}")),
        );
    }
    // Inside a shard each blob went up once; the one process uploaded each
    // distinct blob once.
    assert_eq!(uploads, expected_uploads);
    let mut distinct = BTreeSet::new();
    for repo in &all {
        distinct.extend(image_blobs(&summary, repo));
    }
    let single_uploads = single["steps"][0]["outputs"]["blobs_uploaded"]
        .as_u64()
        .unwrap();
    assert_eq!(single_uploads, distinct.len() as u64);
}

#[test]
fn the_mirroring_example_pipelines_run() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let (p, summary) = fixture(&reg);
    let examples = repo_root().join("pipelines");
    let s = Strata::isolated();
    let var = |k: &str, v: &str| format!("{k}={v}");

    // Releases of two repositories, then each copied image pulled back.
    let (r, report) = run(
        &s,
        &examples.join("mirror-releases.yaml"),
        &[
            "--var",
            &var("source", &reg),
            "--var",
            &var("target", &reg),
            "--var",
            &var("team", &format!("{p}/team")),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for repo in ["team/app", "team/web"] {
        let got: BTreeSet<String> = target_tags(&reg, &format!("mirror/{p}/{repo}"))
            .into_keys()
            .filter(|t| !t.starts_with("sha256-"))
            .collect();
        assert_eq!(got, tags(&["v2.0.0", "v2.1.0", "v3.0.0"]), "{repo}");
    }
    assert_eq!(report["steps"][1]["items"].as_array().unwrap().len(), 6);
    let pulled = s
        .reg(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert_eq!(pulled.stdout.lines().count(), 6, "{}", pulled.stdout);

    // The whole catalog (the fixture's part of it) into two targets.
    let (r, _) = run(
        &s,
        &examples.join("mirror-catalog.yaml"),
        &[
            "--var",
            &var("source", &reg),
            "--var",
            &var("target", &reg),
            "--var",
            &var("backup", &reg),
            "--var",
            &var("repositories", &format!("^{p}/")),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for repo in ["team/app", "team/web", "other/db"] {
        let src_repo = format!("{p}/{repo}");
        let want = source_tags(&summary, &src_repo);
        assert_eq!(target_tags(&reg, &format!("mirror/{src_repo}")), want);
        assert_eq!(target_tags(&reg, &format!("backup/{src_repo}")), want);
    }

    // Search the catalog, mirror what was found.
    let (r, report) = run(
        &s,
        &examples.join("search-then-mirror.yaml"),
        &[
            "--var",
            &var("source", &reg),
            "--var",
            &var("target", &reg),
            "--var",
            &var("term", &p),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The catalog holds the copies made above too: 3 sources, 6 copies.
    let found: Vec<&str> = report["steps"][0]["outputs"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 9, "{found:?}");
    assert!(
        found.contains(&format!("{reg}/{p}/team/app").as_str()),
        "{found:?}"
    );
    let got: BTreeSet<String> = target_tags(&reg, &format!("found/{p}/team/app"))
        .into_keys()
        .collect();
    assert_eq!(got.len(), 2, "latest: 2 of team/app: {got:?}");
}

#[test]
fn progress_is_a_status_line_on_a_terminal_and_plain_lines_otherwise() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let (p, _) = fixture(&reg);
    let s = Strata::isolated();
    let step = |prefix: &str| {
        format!(
            "version: 1\nsteps:\n  - mirror:\n      from: {reg}\n      to: [{{registry: {reg}, prefix: {prefix}/}}]\n      repositories: [{p}/team/web]\n      tags: {{include: ['^v']}}\n"
        )
    };
    // Not a terminal: one plain line per tag, then the summary.
    let (r, _) = run(&s, &pipeline(&s, &step(&unique("plain"))), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("copied ")).count(),
        6,
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("mirror: 6 copied, 0 up to date, 0 failed; ")
    );
    // On a terminal: the status line redrawn, tags done of all.
    let file = pipeline(&s, &step(&unique("tty")));
    let bin = env!("CARGO_BIN_EXE_strata");
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 150; {bin} run {}", file.display()),
            "/dev/null",
        ])
        .env("STRATA_ROOT", s.root())
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .env("STRATA_CONFIG", s.path("strata-config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\r\u{1b}[2Kmirror: 6/6 tags, "), "{text:?}");
    assert!(
        !text.contains("copied "),
        "no per-tag lines on a terminal: {text:?}"
    );
}
