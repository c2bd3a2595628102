//! Plugins as OCI artifacts end to end, against the plain registry the
//! harness runs: `strata plugin push` writes the CNCF Wasm artifact layout,
//! `plugin inspect` and `plugin run` take a reference pinned by digest, a
//! pipeline names a plugin image and a second run needs no registry (the
//! artifact is kept in the store), unpinned references are refused at
//! check time with their place, and a wrong digest, a non-Wasm image and
//! a core module are each refused in one line. An artifact in wasm-to-oci's
//! older layout, uploaded here blob by blob, pulls and runs.
//!
//! The components are built by `scripts/build-plugins` (scripts/test runs
//! it); a missing one fails the test with that command.

mod common;

use std::path::PathBuf;

use common::plain_registry::http;
use common::{Run, Strata, need, unique};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built example plugin `name`.
fn component(name: &str) -> String {
    let p = repo_root()
        .join("plugins")
        .join(name)
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does)",
        p.display()
    );
    p.display().to_string()
}

fn registry() -> String {
    need("STRATA_TEST_REGISTRY_PLAIN")
}

/// Pushes `plugin` to a fresh repository; the repository and the pinned
/// reference.
fn push(s: &Strata, plugin: &str) -> (String, String) {
    let repo = format!("{}/{}/{plugin}", registry(), unique("plugins"));
    let run = s
        .run(&["plugin", "push", &component(plugin), &format!("{repo}:v1")])
        .ok();
    let last = run.stdout.lines().last().unwrap_or_default().to_string();
    let digest = last
        .strip_prefix("v1: digest: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected push output: {}", run.stdout))
        .to_string();
    (repo.clone(), format!("{repo}@{digest}"))
}

/// The manifest a registry holds for `reference` (a tag or digest).
fn manifest(repo: &str, reference: &str) -> (u16, Vec<u8>) {
    let (host, path) = repo.split_once('/').unwrap();
    let resp = http()
        .get(format!("http://{host}/v2/{path}/manifests/{reference}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
}

fn blob(repo: &str, digest: &str) -> Vec<u8> {
    let (host, path) = repo.split_once('/').unwrap();
    let resp = http()
        .get(format!("http://{host}/v2/{path}/blobs/{digest}"))
        .send()
        .unwrap();
    assert!(
        resp.status().is_success(),
        "blob {digest}: {}",
        resp.status()
    );
    resp.bytes().unwrap().to_vec()
}

/// Uploads a blob in one request.
fn upload(repo: &str, bytes: &[u8]) -> String {
    let (host, path) = repo.split_once('/').unwrap();
    let digest = format!("sha256:{}", common::sha256_hex(bytes));
    let start = http()
        .post(format!("http://{host}/v2/{path}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(start.status().as_u16(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{host}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let done = http()
        .put(format!("{url}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(done.status().as_u16(), 201, "upload {digest}");
    digest
}

/// Puts a manifest under `tag`; its digest.
fn put_manifest(repo: &str, tag: &str, doc: &Value) -> String {
    let (host, path) = repo.split_once('/').unwrap();
    let bytes = serde_json::to_vec(doc).unwrap();
    let resp = http()
        .put(format!("http://{host}/v2/{path}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap());
    format!("sha256:{}", common::sha256_hex(&bytes))
}

/// Writes `yaml` beside the store and runs it.
fn pipeline(s: &Strata, yaml: &str) -> (PathBuf, Run) {
    let file = s.path(&format!("{}.yaml", unique("p")));
    std::fs::write(&file, yaml).unwrap();
    let run = s.run(&["run", file.to_str().unwrap()]);
    (file, run)
}

fn inspect(s: &Strata, image: &str) -> Value {
    let out = s.run(&["inspect", image]).ok().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// A pipeline loading the demo archive through `reproducible`, declared as
/// `source` (`image: REF` or `path: FILE`), with its mtimes set to `epoch`.
fn reproducible_pipeline(source: &str, epoch: u64) -> String {
    format!(
        "version: 1\nplugins:\n  reproducible:\n    {source}\n    settings: {{source-date-epoch: '{epoch}'}}\nsteps:\n  - load: {{input: {hello}, transform: [reproducible]}}\n",
        hello = common::demo_archive().display()
    )
}

/// The image ID the demo archive gets through the component file itself.
fn from_file(epoch: u64) -> String {
    let s = Strata::new();
    let yaml = reproducible_pipeline(&format!("path: {}", component("reproducible")), epoch);
    pipeline(&s, &yaml).1.ok();
    inspect(&s, "strata-demo/hello:1.0")["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_pushed_plugin_is_the_cncf_wasm_artifact_and_inspects_by_digest() {
    let s = Strata::new();
    let file = component("reproducible");
    let bytes = std::fs::read(&file).unwrap();
    let (repo, pinned) = push(&s, "reproducible");
    let digest = pinned.rsplit('@').next().unwrap();
    let (status, raw) = manifest(&repo, "v1");
    assert_eq!(status, 200);
    assert_eq!(format!("sha256:{}", common::sha256_hex(&raw)), digest);
    let m: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["size"], bytes.len());
    let layer_digest = format!("sha256:{}", common::sha256_hex(&bytes));
    assert_eq!(layers[0]["digest"], layer_digest);
    assert_eq!(blob(&repo, &layer_digest), bytes);
    let config: Value =
        serde_json::from_slice(&blob(&repo, m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"], serde_json::json!([layer_digest]));
    assert_eq!(
        config["component"]["target"],
        "strata:plugin/layer-transform@0.1.0"
    );
    assert_eq!(
        config["component"]["exports"],
        serde_json::json!(["strata:plugin/layer-transformer@0.1.0"])
    );
    assert!(
        config["created"].as_str().unwrap().ends_with('Z'),
        "{config}"
    );

    // Inspected by its pinned reference, in a store that never saw the file.
    let other = Strata::new();
    let out = other.run(&["plugin", "inspect", &pinned]).ok().stdout;
    assert!(out.starts_with("Name:     reproducible\n"), "{out}");
    assert!(
        out.contains(&format!("Digest:   {layer_digest}\n")),
        "{out}"
    );
    assert!(out.contains("Worlds:   layer-transform\n"), "{out}");

    // SOURCE_DATE_EPOCH makes a push reproducible.
    let again = |tag: &str| {
        let run = s
            .command()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["plugin", "push", &file, &format!("{repo}:{tag}")])
            .output()
            .unwrap();
        assert!(run.status.success());
        String::from_utf8(run.stdout).unwrap()
    };
    let (a, b) = (again("r1"), again("r2"));
    assert_eq!(
        a.split(" digest: ").nth(1),
        b.split(" digest: ").nth(1),
        "{a}{b}"
    );
    let (_, raw) = manifest(&repo, "r1");
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(&repo, m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn a_pipeline_runs_a_pinned_plugin_image_and_then_runs_offline() {
    let s = Strata::new();
    let (repo, pinned) = push(&s, "reproducible");
    let id = |s: &Strata| {
        inspect(s, "strata-demo/hello:1.0")["Id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, run) = pipeline(
        &s,
        &reproducible_pipeline(&format!("image: {pinned}"), 1_700_000_000),
    );
    run.ok();
    let first = id(&s);
    assert_eq!(first, from_file(1_700_000_000));
    let hex = pinned.rsplit(':').next().unwrap();
    let kept = s.root().join(".strata/plugins/artifacts/sha256").join(hex);
    assert!(kept.is_file(), "{} is not kept", kept.display());

    // The registry forgets the artifact; removing the image collects the
    // store's garbage, which keeps the plugin.
    let (host, path) = repo.split_once('/').unwrap();
    let digest = pinned.rsplit('@').next().unwrap();
    let deleted = http()
        .delete(format!("http://{host}/v2/{path}/manifests/{digest}"))
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202);
    assert_eq!(manifest(&repo, digest).0, 404);
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();

    let (_, run) = pipeline(
        &s,
        &reproducible_pipeline(&format!("image: {pinned}"), 1_600_000_000),
    );
    run.ok();
    let second = id(&s);
    assert_ne!(second, first);
    assert_eq!(second, from_file(1_600_000_000));
    // A store that never kept it must ask the registry, which says no.
    let fresh = Strata::new();
    let (_, run) = pipeline(
        &fresh,
        &reproducible_pipeline(&format!("image: {pinned}"), 1),
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains(&format!("plugin reproducible: {pinned}: "))
            && run.stderr.contains("manifest unknown"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unpinned_plugin_image_is_refused_before_anything_runs() {
    let s = Strata::new();
    let unpinned = format!("{}/plugins/reproducible:v1", registry());
    let (file, run) = pipeline(&s, &reproducible_pipeline(&format!("image: {unpinned}"), 0));
    assert_eq!(run.code, 125, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "{}:4:12: plugin reproducible: {unpinned}: not pinned by digest: name a plugin image as REPOSITORY@sha256:… (or REPOSITORY:TAG@sha256:…)",
            file.display()
        )
    );
    assert!(!s.root().exists(), "the store was touched");
    // On the command line, a tag alone is refused the same way.
    let run = s
        .run(&[
            "load",
            "-i",
            common::demo_archive().to_str().unwrap(),
            "--transform",
            &unpinned,
        ])
        .fails();
    assert!(
        run.stderr.contains("not pinned by digest"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_digest_is_refused() {
    let s = Strata::new();
    let (repo, _) = push(&s, "reproducible");
    // A digest the repository has no manifest for. (Not one of its blobs:
    // docker-registry answers a blob's digest asked as a manifest with a
    // 500, which a client rightly retries.)
    let wrong = format!("{repo}@sha256:{}", common::sha256_hex(b"no such manifest"));
    let run = s
        .run(&[
            "load",
            "-i",
            common::demo_archive().to_str().unwrap(),
            "--transform",
            &wrong,
        ])
        .fails();
    assert!(
        run.stderr
            .starts_with(&format!("Error: plugin reproducible: {wrong}: "))
            && run.stderr.contains("manifest unknown"),
        "{}",
        run.stderr
    );
    assert!(s.run(&["images", "-q"]).ok().stdout.is_empty());
}

/// A repository's last component (a plugin's name from its reference).
fn short(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap()
}

#[test]
fn an_artifact_in_wasm_to_ocis_layout_pulls_and_runs() {
    let s = Strata::new();
    let repo = format!("{}/{}/reproducible", registry(), unique("plugins"));
    let file = component("reproducible");
    let bytes = std::fs::read(&file).unwrap();
    // As wasm-to-oci (and Kubewarden's kwctl) write it: an empty JSON
    // config of their own media type, one layer of theirs.
    let config = upload(&repo, b"{}");
    let layer = upload(&repo, &bytes);
    let digest = put_manifest(
        &repo,
        "v1",
        &serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.wasm.config.v1+json", "digest": config, "size": 2},
            "layers": [{
                "mediaType": "application/vnd.wasm.content.layer.v1+wasm",
                "digest": layer,
                "size": bytes.len(),
                "annotations": {"org.opencontainers.image.title": "reproducible.wasm"},
            }],
        }),
    );
    let pinned = format!("{repo}@{digest}");
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let run = |plugin: &str, tag: &str| {
        s.run(&[
            "plugin",
            "run",
            "--set",
            "source-date-epoch=1700000000",
            "--tag",
            tag,
            plugin,
            "strata-demo/hello:1.0",
        ])
        .ok();
        inspect(&s, tag)["Id"].as_str().unwrap().to_string()
    };
    let from_artifact = run(&pinned, "hello:artifact");
    assert_eq!(from_artifact, run(&file, "hello:file"));
    assert_ne!(
        from_artifact,
        inspect(&s, "strata-demo/hello:1.0")["Id"].as_str().unwrap()
    );
    let out = s.run(&["plugin", "inspect", &pinned]).ok().stdout;
    assert!(out.starts_with("Name:     reproducible\n"), "{out}");
}

#[test]
fn an_image_named_as_a_plugin_is_refused_in_one_line() {
    let s = Strata::new();
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let repo = format!("{}/{}", registry(), unique("plugins/notwasm"));
    s.run(&["tag", "strata-demo/hello:1.0", &format!("{repo}:1")])
        .ok();
    let pushed = s.run(&["push", &format!("{repo}:1")]).ok().stdout;
    let digest = pushed
        .lines()
        .last()
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_string();
    let reference = format!("{repo}@{digest}");
    let (_, raw) = manifest(&repo, &digest);
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let config_type = m["config"]["mediaType"].as_str().unwrap().to_string();
    let run = s
        .run(&[
            "load",
            "-i",
            common::demo_archive().to_str().unwrap(),
            "--transform",
            &reference,
        ])
        .fails();
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "Error: plugin {}: {reference}: not a WebAssembly artifact (config media type {config_type})",
            short(&repo)
        )
    );
}

#[test]
fn only_components_are_pushed() {
    let s = Strata::new();
    let module = s.path("core.wasm");
    std::fs::write(&module, b"\0asm\x01\x00\x00\x00").unwrap();
    let repo = format!("{}/{}", registry(), unique("plugins/core"));
    let run = s
        .run(&["plugin", "push", module.to_str().unwrap(), &repo])
        .fails();
    assert!(
        run.stderr.starts_with(&format!(
            "Error: {}: a core WebAssembly module, not a component",
            module.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(manifest(&repo, "latest").0, 404);
}
