//! deploy/kubernetes: the manifests are valid Kubernetes objects (checked
//! by kubernetes-validate against the API's schema), the Job's shard count
//! matches its strata arguments, and the ConfigMap's pipeline, run as the
//! Job's pods would run it (one process per JOB_COMPLETION_INDEX, side by
//! side), mirrors every repository exactly once.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{Strata, need, unique};
use strata::pipeline::yaml::{self, Node};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn load(name: &str) -> Node {
    yaml::parse(&std::fs::read_to_string(deploy().join(name)).unwrap()).unwrap()
}

fn path<'a>(node: &'a Node, keys: &[&str]) -> &'a Node {
    keys.iter()
        .fold(node, |n, k| n.get(k).unwrap_or_else(|| panic!("no {k}")))
}

#[test]
fn the_manifests_are_valid_kubernetes_objects() {
    let files = ["configmap.yaml", "secret.yaml", "job.yaml", "cronjob.yaml"];
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.31.0"])
        .args(files.iter().map(|f| deploy().join(f)))
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate; scripts/test does)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), 4, "{text}");
}

/// The shard count a pod spec asks strata for.
fn shards_arg(containers: &Node) -> String {
    let strata::pipeline::yaml::NodeKind::Seq(list) = &containers.kind else {
        panic!("containers is a list")
    };
    let args = path(&list[0], &["args"]);
    let strata::pipeline::yaml::NodeKind::Seq(args) = &args.kind else {
        panic!("args is a list")
    };
    args.iter()
        .filter_map(|a| a.as_str()?.strip_prefix("--shards=").map(str::to_string))
        .next()
        .expect("--shards=N")
}

#[test]
fn completions_equal_the_shard_count() {
    let job = load("job.yaml");
    let spec = path(&job, &["spec"]);
    assert_eq!(path(spec, &["completionMode"]).as_str(), Some("Indexed"));
    let n = path(spec, &["completions"]).as_str().unwrap().to_string();
    assert_eq!(
        shards_arg(path(spec, &["template", "spec", "containers"])),
        n
    );
    let cron = load("cronjob.yaml");
    let spec = path(&cron, &["spec", "jobTemplate", "spec"]);
    let n = path(spec, &["completions"]).as_str().unwrap().to_string();
    assert_eq!(
        shards_arg(path(spec, &["template", "spec", "containers"])),
        n
    );
}

#[test]
fn the_configmap_pipeline_run_as_indexed_pods_mirrors_everything_once() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let prefix = unique("kube");
    let out = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mirror_corpus.py"))
        .args(["fixture", "--registry", &reg, "--prefix", &prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = load("configmap.yaml");
    let pipeline = path(&cm, &["data", "mirror.yaml"])
        .as_str()
        .unwrap()
        .to_string();
    let s = Strata::isolated();
    let file = s.path("mirror.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let job = load("job.yaml");
    let n: usize = path(&job, &["spec", "completions"])
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let pods: Vec<_> = (0..n)
        .map(|i| {
            let report = s.path(&format!("report-{i}.json"));
            let child = s
                .registry_command()
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .args(["run", &format!("--shards={n}"), "--report"])
                .arg(&report)
                .args(["--var", &format!("source={reg}")])
                .args(["--var", &format!("target={reg}")])
                .args(["--var", &format!("repositories=^{prefix}/")])
                .arg(&file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, report)
        })
        .collect();
    let mut seen = Vec::new();
    for (child, report) in pods {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        for repo in r["steps"][0]["outputs"]["repositories"].as_array().unwrap() {
            seen.push(repo["source"].as_str().unwrap().to_string());
        }
    }
    let unique_seen: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 3, "each repository in one shard: {seen:?}");
    assert_eq!(unique_seen.len(), 3);
}
