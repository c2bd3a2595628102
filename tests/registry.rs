//! Registries end to end, against real CNCF distribution registries started
//! by the harness (plain HTTP; htpasswd Basic auth over TLS with a private
//! CA; token auth with a harness token server), with skopeo and docker as
//! peers on both sides, and a fault-injecting proxy.

mod common;

use common::{Strata, docker_run, fault_control, fixture, need, peer, skopeo_digest, unique};

/// Puts the Debian fixture into `image` on a plain registry with skopeo
/// (gzip layers, OCI manifest), returning its manifest digest.
fn seed_with_skopeo(image: &str) -> String {
    let src = format!("oci:{}:bookworm", fixture("debian-oci").display());
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
    skopeo_digest(image)
}

#[test]
fn pull_then_push_keeps_the_manifest_byte_for_byte() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = unique("rt");
    let src = format!("{reg}/{repo}/debian:bookworm");
    let digest = seed_with_skopeo(&src);
    let s = Strata::isolated();

    let out = s.reg(&["pull", &src]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("bookworm: Pulling from {repo}/debian"));
    assert!(
        lines
            .iter()
            .filter(|l| l.ends_with(": Pulling fs layer"))
            .count()
            == 4,
        "{out}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.ends_with(": Pull complete"))
            .count()
            == 4,
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\nDigest: {digest}\nStatus: Downloaded newer image for {src}\n{src}\n"
        )),
        "{out}"
    );
    let again = s.reg(&["pull", &src]).ok().stdout;
    assert!(
        again.contains("Already exists")
            && again.contains(&format!("Status: Image is up to date for {src}")),
        "{again}"
    );
    let digests = s
        .reg(&["images", "--digests", "--format", "{{.Digest}}"])
        .ok()
        .stdout;
    assert_eq!(digests.trim(), digest);

    // Push under another name of the same registry: layers are mounted,
    // the manifest goes up unchanged, so the digest is the same.
    let dst = format!("{reg}/{repo}/copy:v1");
    s.reg(&["tag", &src, &dst]).ok();
    let pushed = s.reg(&["push", &dst]).ok().stdout;
    let lines: Vec<&str> = pushed.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{reg}/{repo}/copy]")
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(": Preparing")).count(),
        4,
        "{pushed}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(&format!(": Mounted from {repo}/debian")))
            .count(),
        4,
        "{pushed}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with(&format!("v1: digest: {digest} size: ")),
        "{pushed}"
    );
    assert_eq!(skopeo_digest(&dst), digest);
    // Pushing again finds everything there.
    let again = s.reg(&["push", &dst]).ok().stdout;
    assert_eq!(
        again
            .lines()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count(),
        4,
        "{again}"
    );
    // -q prints the name alone.
    assert_eq!(s.reg(&["pull", "-q", &dst]).ok().stdout, format!("{dst}\n"));
}

#[test]
fn skopeo_and_docker_read_what_strata_pushes() {
    let _docker = common::docker_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::isolated();
    s.reg(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let name = format!("{reg}/{}/debian:v1", unique("interop"));
    s.reg(&["tag", "peers/debian:bookworm", &name]).ok();
    let out = s.reg(&["push", &name]).ok().stdout;
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": Pushed")).count(),
        4,
        "{out}"
    );
    let manifest: serde_json::Value = serde_json::from_str(&peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    ))
    .unwrap();
    let ours: serde_json::Value = serde_json::from_str(&peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:docker.io/peers/debian:bookworm", s.root().display()),
        ],
    ))
    .unwrap();
    assert_eq!(
        manifest, ours,
        "the registry holds strata's manifest unchanged"
    );
    let layout = s.path("copied");
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:x", layout.display()),
        ],
    );

    // docker (it treats 127.0.0.0/8 as insecure) pulls it, same image ID, and runs it.
    let id = s.reg(&["images", "--no-trunc", "-q", &name]).ok().stdout;
    docker_run(&["rmi", "-f", &name]);
    let pulled = docker_run(&["pull", &name]);
    assert_eq!(pulled.code, 0, "docker pull: {}", pulled.stderr);
    assert_eq!(
        docker_run(&["images", "--no-trunc", "-q", &name]).stdout,
        id
    );
    let run = docker_run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "cat",
        "/etc/strata-opaque/c",
    ]);
    assert_eq!(run.code, 0, "docker run: {}", run.stderr);
    docker_run(&["rmi", "-f", &name]);
}

#[test]
fn strata_pulls_what_skopeo_and_docker_push_single_and_multi_platform() {
    let _docker = common::docker_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    // A two-platform index pushed by skopeo.
    let multi = format!("{reg}/{}/app:v1", unique("multi"));
    let src = format!("oci:{}:v1", fixture("multiarch-oci").display());
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{multi}"),
        ],
    );
    let index_digest = skopeo_digest(&multi);

    let all = Strata::isolated();
    let out = all.reg(&["pull", "--all-platforms", &multi]).ok().stdout;
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let stored: serde_json::Value = serde_json::from_str(&peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{multi}", all.root().display()),
        ],
    ))
    .unwrap();
    assert_eq!(
        stored["manifests"].as_array().unwrap().len(),
        2,
        "the index is kept: {stored}"
    );
    // And pushed on whole: same index digest elsewhere.
    let copy = format!("{reg}/{}/app:v1", unique("multi-copy"));
    all.reg(&["tag", &multi, &copy]).ok();
    let pushed = all.reg(&["push", &copy]).ok().stdout;
    assert!(
        pushed.contains(&format!("v1: digest: {index_digest} size: ")),
        "{pushed}"
    );
    assert_eq!(skopeo_digest(&copy), index_digest);

    let arm = Strata::isolated();
    arm.reg(&["pull", "--platform", "linux/arm64", &multi]).ok();
    assert_eq!(
        arm.reg(&["inspect", "--format", "{{.Architecture}}", &multi])
            .ok()
            .stdout,
        "arm64\n"
    );
    let repo_digest = arm
        .reg(&["inspect", "--format", "{{json .RepoDigests}}", &multi])
        .ok()
        .stdout;
    assert!(
        repo_digest.contains(&index_digest),
        "RepoDigests names the index: {repo_digest}"
    );
    let missing = arm.reg(&["pull", "--platform", "linux/s390x", &multi]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no image for platform linux/s390x"),
        "{}",
        missing.stderr
    );

    // An image docker pushes (docker compresses the layers itself).
    let hello = format!("{reg}/{}/hello:1", unique("docker-pushed"));
    let loaded = docker_run(&["load", "-i", common::demo_archive().to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    assert_eq!(
        docker_run(&["tag", "strata-demo/hello:1.0", &hello]).code,
        0
    );
    let push = docker_run(&["push", &hello]);
    assert_eq!(push.code, 0, "docker push: {}", push.stderr);
    let s = Strata::isolated();
    s.reg(&["pull", &hello]).ok();
    assert_eq!(
        s.reg(&["images", "--no-trunc", "-q", &hello]).ok().stdout,
        docker_run(&["images", "--no-trunc", "-q", &hello]).stdout
    );
    docker_run(&["rmi", "-f", &hello]);
}

#[test]
fn tls_registry_with_basic_auth() {
    let port = need("STRATA_TEST_REGISTRY_TLS")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let host = need("STRATA_TEST_REGISTRY_TLS_NAME");
    let user = need("STRATA_TEST_REGISTRY_USER");
    let password = need("STRATA_TEST_REGISTRY_PASSWORD");
    let s = Strata::isolated();
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let name = format!("{host}/{}/hello:1", unique("tls"));
    s.reg(&["tag", "strata-demo/hello:1.0", &name]).ok();

    // A name that is not loopback: TLS is verified, and the private CA is unknown.
    let refused = s.reg(&["push", &name]).fails();
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "{}",
        refused.stderr
    );
    s.trust(&host, &need("STRATA_TEST_REGISTRY_TLS_CA"));
    let unauth = s.reg(&["push", &name]).fails();
    assert!(
        unauth.stderr.contains("authentication required"),
        "{}",
        unauth.stderr
    );

    // A wrong password is refused, and never printed.
    let wrong = s.reg(&["login", "-u", &user, "-p", "not-the-password-xyz", &host]);
    assert_ne!(wrong.code, 0);
    assert!(
        !wrong.stderr.contains("not-the-password-xyz")
            && !wrong.stdout.contains("not-the-password-xyz")
    );
    let mut login = s.registry_command();
    login.args(["login", "-u", &user, "--password-stdin", &host]);
    login
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let config = std::fs::read_to_string(s.path("docker-config/config.json")).unwrap();
    assert!(
        config.contains(&host) && config.contains("\"auth\""),
        "{config}"
    );

    let pushed = s.reg(&["push", &name]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert!(!pushed.stdout.contains(&password) && !pushed.stderr.contains(&password));
    let other = Strata::isolated();
    std::fs::copy(
        s.path("docker-config/config.json"),
        other.path("docker-config/config.json"),
    )
    .unwrap();
    other.trust(&host, &need("STRATA_TEST_REGISTRY_TLS_CA"));
    other.reg(&["pull", &name]).ok();
    // The same registry by its loopback address is insecure by default:
    // HTTPS without verification, no CA needed.
    let loopback = format!("127.0.0.1:{port}/{}", name.split_once('/').unwrap().1);
    let plain_config = Strata::isolated();
    let cfg = config.replace(&host, &format!("127.0.0.1:{port}"));
    std::fs::write(plain_config.path("docker-config/config.json"), cfg).unwrap();
    plain_config.reg(&["pull", &loopback]).ok();

    let out = s.reg(&["logout", &host]).ok().stdout;
    assert_eq!(out, format!("Removing login credentials for {host}\n"));
    assert!(
        !std::fs::read_to_string(s.path("docker-config/config.json"))
            .unwrap()
            .contains(&host)
    );
    assert_eq!(
        s.reg(&["logout", &host]).ok().stdout,
        format!("Not logged in to {host}\n")
    );
}

#[test]
fn token_registry_anonymous_pull_credentialed_push_and_cached_tokens() {
    let reg = need("STRATA_TEST_REGISTRY_TOKEN");
    let stats_url = format!("{}/stats", need("STRATA_TEST_TOKEN_SERVER"));
    let s = Strata::isolated();
    s.reg(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let repo = unique("tok");
    let name = format!("{reg}/{repo}/debian:v1");
    s.reg(&["tag", "peers/debian:bookworm", &name]).ok();

    let denied = s.reg(&["push", &name]).fails();
    assert!(
        denied.stderr.contains(&reg),
        "names the registry: {}",
        denied.stderr
    );

    s.reg(&[
        "login",
        "-u",
        &need("STRATA_TEST_REGISTRY_USER"),
        "-p",
        &need("STRATA_TEST_REGISTRY_PASSWORD"),
        &reg,
    ])
    .ok();
    let before: serde_json::Value =
        serde_json::from_str(&peer("curl", &["-sS", &stats_url])).unwrap();
    s.reg(&["push", &name]).ok();
    let after: serde_json::Value =
        serde_json::from_str(&peer("curl", &["-sS", &stats_url])).unwrap();
    let scope = format!("repository:{repo}/debian:pull,push");
    let count = |v: &serde_json::Value| v["scopes"][&scope].as_u64().unwrap_or(0);
    // Four layers, a config and a manifest: one token for the push scope.
    assert_eq!(
        count(&after) - count(&before),
        1,
        "tokens are cached per scope: {after}"
    );

    // Anyone may pull.
    let anon = Strata::isolated();
    anon.reg(&["pull", &name]).ok();
    assert_eq!(anon.reg(&["images", "-q"]).ok().stdout.lines().count(), 1);
    // A bad password is a clear error, without the password.
    let bad = Strata::isolated();
    let out = bad.reg(&["login", "-u", "strata", "-p", "wrong-secret-123", &reg]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("login to") && !out.stderr.contains("wrong-secret-123"),
        "{}",
        out.stderr
    );
}

#[test]
fn credentials_come_from_a_credential_helper() {
    let reg = need("STRATA_TEST_REGISTRY_TOKEN");
    // The helper for every registry (credsStore), and for this one (credHelpers).
    for config in [
        r#"{"credsStore": "strata-test"}"#.to_string(),
        format!(r#"{{"credHelpers": {{"{reg}": "strata-test"}}}}"#),
    ] {
        helper_round_trip(&reg, &config);
    }
}

fn helper_round_trip(reg: &str, config: &str) {
    let reg = reg.to_string();
    let s = Strata::isolated();
    // A docker-credential-* helper speaking the helper protocol, keeping
    // secrets in a file of its own.
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = s.path("helper-store.json");
    let helper = bin.join("docker-credential-strata-test");
    std::fs::write(
        &helper,
        format!(
            r#"#!/usr/bin/env python3
import json, sys
path = {store:?}
try:
    db = json.load(open(path))
except Exception:
    db = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "store":
    c = json.loads(data); db[c["ServerURL"]] = [c["Username"], c["Secret"]]
    json.dump(db, open(path, "w"))
elif action == "get":
    key = data.strip()
    if key not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": key, "Username": db[key][0], "Secret": db[key][1]}}))
elif action == "erase":
    db.pop(data.strip(), None); json.dump(db, open(path, "w"))
"#
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(s.path("docker-config/config.json"), config).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str]| {
        let out = s
            .registry_command()
            .env("PATH", &path)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "login",
        "-u",
        &need("STRATA_TEST_REGISTRY_USER"),
        "-p",
        &need("STRATA_TEST_REGISTRY_PASSWORD"),
        &reg,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Login Succeeded\n");
    assert!(!err.contains("stored unencrypted"), "{err}");
    let config = std::fs::read_to_string(s.path("docker-config/config.json")).unwrap();
    assert!(
        !config.contains(&need("STRATA_TEST_REGISTRY_PASSWORD")),
        "no secret in config.json: {config}"
    );
    assert!(std::fs::read_to_string(&store).unwrap().contains(&reg));
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let name = format!("{reg}/{}/hello:1", unique("helper"));
    s.reg(&["tag", "strata-demo/hello:1.0", &name]).ok();
    let (code, _, err) = run(&["push", &name]);
    assert_eq!(code, 0, "push with the helper's credential: {err}");
    let (code, out, _) = run(&["logout", &reg]);
    assert_eq!(
        (code, out),
        (0, format!("Removing login credentials for {reg}\n"))
    );
    assert!(!std::fs::read_to_string(&store).unwrap().contains(&reg));
}

/// Pushes the small two-platform fixture's host image to the plain
/// registry behind the fault proxy (small layers keep these tests quick;
/// the faults cut bodies in the middle whatever their size) and returns
/// (its name through the proxy, its largest layer's digest).
fn behind_proxy() -> (String, String) {
    let image = format!(
        "{}/{}/app:v1",
        need("STRATA_TEST_REGISTRY_PLAIN"),
        unique("fault")
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
    let raw = peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
    );
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let big = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let proxied = image.replacen(
        &need("STRATA_TEST_REGISTRY_PLAIN"),
        &need("STRATA_TEST_FAULT_PROXY"),
        1,
    );
    (proxied, big)
}

/// Serialises the fault tests, across test processes too (nextest runs
/// each test in its own): the proxy's faults and log are shared.
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

fn arm(fault: &str, method: &str, path: &str, count: u32) {
    arm_with(serde_json::json!({"fault": fault, "method": method, "path": path, "count": count}));
}

fn arm_with(spec: serde_json::Value) {
    fault_control("POST", "/faults", &spec.to_string());
}

/// Tries per request in the registry client's default policy.
fn attempts() -> usize {
    strata::transport::registry::RetryPolicy::default().attempts as usize
}

fn proxy_log() -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&fault_control("GET", "/log", ""))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn downloads_resume_with_range_after_a_reset_or_a_short_body() {
    let _guard = proxy_lock();
    let (name, big) = behind_proxy();
    for fault in ["reset", "short"] {
        fault_control("POST", "/reset", "");
        arm(fault, "GET", &format!("/blobs/{big}"), 1);
        let s = Strata::isolated();
        s.reg(&["pull", &name]).ok();
        let log = proxy_log();
        let ranged: Vec<_> = log
            .iter()
            .filter(|e| e["path"].as_str().unwrap().contains(&big) && !e["range"].is_null())
            .collect();
        assert_eq!(
            ranged.len(),
            1,
            "{fault}: one resumed request with Range: {log:?}"
        );
        assert_eq!(ranged[0]["status"], 206);
        // The blob in the store is whole: saving re-reads and checks sizes.
        s.reg(&["save", "-o", s.path("out.tar").to_str().unwrap(), &name])
            .ok();
    }
}

#[test]
fn server_errors_and_rate_limits_are_retried() {
    let _guard = proxy_lock();
    let (name, big) = behind_proxy();
    fault_control("POST", "/reset", "");
    arm("status:500", "GET", &format!("/blobs/{big}"), 2);
    arm("status:429", "GET", "/manifests/", 1);
    let s = Strata::isolated();
    let started = std::time::Instant::now();
    s.reg(&["pull", &name]).ok();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let log = proxy_log();
    assert_eq!(
        log.iter().filter(|e| e["status"] == 500).count(),
        2,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|e| e["status"] == 429).count(),
        1,
        "{log:?}"
    );
}

#[test]
fn a_registry_that_keeps_failing_gives_a_clear_error_and_no_corrupt_blob() {
    let _guard = proxy_lock();
    let (name, big) = behind_proxy();
    fault_control("POST", "/reset", "");
    arm("short", "GET", &format!("/blobs/{big}"), 1000);
    let s = Strata::isolated();
    s.reg(&["images"]).ok();
    let before = s.snapshot();
    let out = s.reg(&["pull", &name]).fails();
    let log = proxy_log();
    // Retried, each try resumed where the last broke, and never answered
    // whole: every request for the blob was cut short.
    let gets: Vec<_> = log
        .iter()
        .filter(|e| e["method"] == "GET" && e["path"].as_str().unwrap().contains(&big))
        .collect();
    assert!(gets.len() > 1, "retried: {log:?}");
    assert!(gets.iter().all(|e| e["fault"] == "short"), "{gets:?}");
    let starts: Vec<u64> = gets[1..]
        .iter()
        .map(|e| {
            let range = e["range"].as_str().expect("a resumption asks for a range");
            range["bytes=".len()..range.len() - 1].parse().unwrap()
        })
        .collect();
    assert!(
        starts[0] > 0 && starts.windows(2).all(|w| w[0] <= w[1]),
        "each try resumes where the last broke: {gets:?}"
    );
    assert!(out.stderr.contains(&big), "names the blob: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // A broken download is not a corrupt blob, and it was retried already.
    assert!(!out.stderr.contains("does not match"), "{}", out.stderr);
    assert!(
        out.stderr.contains("connection broke") && out.stderr.contains("gave up after"),
        "{}",
        out.stderr
    );
    fault_control("POST", "/reset", "");
    let after = s.snapshot();
    // Nothing was committed: the index is unchanged and no blob was added.
    assert_eq!(
        before.iter().find(|(p, _)| p == "index.json"),
        after.iter().find(|(p, _)| p == "index.json")
    );
    assert!(
        !after
            .iter()
            .any(|(p, _)| p.starts_with("blobs/sha256/") && p.len() > 14),
        "{after:?}"
    );
    assert_eq!(
        std::fs::read_dir(s.root().join(".strata/ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_blob_answering_503_forever_costs_the_policys_attempts_and_no_more() {
    let _guard = proxy_lock();
    let (name, big) = behind_proxy();
    fault_control("POST", "/reset", "");
    arm("status:503", "GET", &format!("/blobs/{big}"), 1000);
    let s = Strata::isolated();
    let out = s.reg(&["pull", &name]).fails();
    let log = proxy_log();
    fault_control("POST", "/reset", "");
    let gets = log
        .iter()
        .filter(|e| e["method"] == "GET" && e["path"].as_str().unwrap().contains(&big))
        .count();
    // Not attempts × blob resumptions × engine retries: one budget.
    assert_eq!(gets, attempts(), "{log:?}");
    assert!(out.stderr.contains(&big), "names the blob: {}", out.stderr);
    assert!(out.stderr.contains("HTTP 503"), "{}", out.stderr);
    assert!(!out.stderr.contains("does not match"), "{}", out.stderr);
}

#[test]
fn a_download_reset_before_any_byte_forever_costs_the_policys_attempts() {
    let _guard = proxy_lock();
    let (name, big) = behind_proxy();
    fault_control("POST", "/reset", "");
    arm_with(serde_json::json!({
        "fault": "reset", "method": "GET", "path": format!("/blobs/{big}"),
        "count": 1000, "bytes": 0,
    }));
    let s = Strata::isolated();
    let out = s.reg(&["pull", &name]).fails();
    let log = proxy_log();
    fault_control("POST", "/reset", "");
    let gets: Vec<_> = log
        .iter()
        .filter(|e| e["method"] == "GET" && e["path"].as_str().unwrap().contains(&big))
        .collect();
    assert_eq!(gets.len(), attempts(), "{log:?}");
    assert!(out.stderr.contains(&big), "names the blob: {}", out.stderr);
    assert!(
        out.stderr.contains("connection broke after 0 of"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_429_storm_is_waited_out_and_lowers_the_registrys_limit() {
    use strata::copy::{self, CopyOptions};
    use strata::image::Platform;
    use strata::progress::Silent;
    use strata::reference::Reference;
    use strata::transport::Sink;
    use strata::transport::registry::{Client, ClientOptions, Limiter, PlatformChoice, Repository};
    use strata::transport::store::Store;

    let _guard = proxy_lock();
    let (name, _) = behind_proxy();
    let reference = Reference::parse(&name).unwrap();
    fault_control("POST", "/reset", "");
    // Fewer 429s than attempts, so even a request that meets every one of
    // them gets through.
    let storm = attempts() - 1;
    arm_with(serde_json::json!({
        "fault": "status:429", "method": "GET",
        "path": format!("/v2/{}/", reference.path()),
        "count": storm, "retry_after": 1,
    }));
    let options = ClientOptions {
        // Its own limiter: no other test's requests move it.
        limiter: Some(Limiter::adaptive(16)),
        ..ClientOptions::default()
    };
    let client = std::sync::Arc::new(Client::new(reference.domain(), &options).unwrap());
    let repo = Repository::new(client.clone(), reference.path());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let started = std::time::Instant::now();
    let (what, _) = repo
        .fetch("v1", &PlatformChoice::One(Platform::host()))
        .unwrap();
    let sink = store.sink();
    copy::copy(
        &repo,
        &sink,
        &what,
        std::slice::from_ref(&reference),
        &CopyOptions::default(),
        &Silent,
    )
    .unwrap();
    sink.commit().unwrap();
    let elapsed = started.elapsed();
    let log = proxy_log();
    fault_control("POST", "/reset", "");
    let throttled: Vec<_> = log.iter().filter(|e| e["status"] == 429).collect();
    assert_eq!(throttled.len(), storm, "{log:?}");
    // Each throttled request came again, later, and got through.
    for t in &throttled {
        let seq = t["seq"].as_u64().unwrap();
        assert!(
            log.iter().any(|e| e["seq"].as_u64().unwrap() > seq
                && e["path"] == t["path"]
                && e["status"].as_u64().is_some_and(|s| s < 400)),
            "{t:?} was retried: {log:?}"
        );
    }
    // Retry-After: 1 was honoured: the retries of one request follow each
    // other, so at least one full second passed.
    assert!(elapsed >= std::time::Duration::from_secs(1), "{elapsed:?}");
    let stats = client.stats();
    assert_eq!(stats.throttled as usize, storm, "{stats:?}");
    assert!(stats.retries as usize >= storm, "{stats:?}");
    assert!(
        stats.limit < stats.max_in_flight,
        "the limit dropped: {stats:?}"
    );
    assert_eq!(client.limiter().in_flight(), 0, "every permit went back");
    assert!(store.lookup(&name).is_ok());
}

#[test]
fn uploads_survive_a_broken_connection() {
    let _guard = proxy_lock();
    fault_control("POST", "/reset", "");
    let s = Strata::isolated();
    s.reg(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let name = format!(
        "{}/{}/debian:v1",
        need("STRATA_TEST_FAULT_PROXY"),
        unique("upload")
    );
    s.reg(&["tag", "peers/debian:bookworm", &name]).ok();
    arm("reset", "PUT", "/blobs/uploads/", 1);
    arm("status:503", "POST", "/blobs/uploads/", 1);
    s.reg(&["push", &name]).ok();
    // The client sent the broken upload once; the copy engine opened the
    // blob again and made a new upload of it, which went through.
    let log = proxy_log();
    let broken: Vec<_> = log
        .iter()
        .filter(|e| e["method"] == "PUT" && e["fault"] == "reset")
        .collect();
    assert_eq!(broken.len(), 1, "{log:?}");
    let blob = digest_in(broken[0]["path"].as_str().unwrap());
    let puts = log
        .iter()
        .filter(|e| e["method"] == "PUT" && e["path"].as_str().unwrap().contains(&blob))
        .count();
    assert_eq!(puts, 2, "one broken upload, one retry: {log:?}");
    let direct = name.replacen(
        &need("STRATA_TEST_FAULT_PROXY"),
        &need("STRATA_TEST_REGISTRY_PLAIN"),
        1,
    );
    let expected = s
        .reg(&["inspect", "--format", "{{.Id}}", &name])
        .ok()
        .stdout;
    let other = Strata::isolated();
    other.reg(&["pull", &direct]).ok();
    assert_eq!(
        other
            .reg(&["inspect", "--format", "{{.Id}}", &direct])
            .ok()
            .stdout,
        expected
    );
    fault_control("POST", "/reset", "");
}

/// The `digest=` parameter of an upload URL.
fn digest_in(path: &str) -> String {
    let at = path.find("digest=").expect("an upload's last request") + "digest=".len();
    path[at..].split('&').next().unwrap().replace("%3A", ":")
}

#[test]
fn an_upload_answering_503_forever_costs_the_policys_attempts_per_blob() {
    let _guard = proxy_lock();
    fault_control("POST", "/reset", "");
    let s = Strata::isolated();
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let name = format!(
        "{}/{}/hello:1",
        need("STRATA_TEST_FAULT_PROXY"),
        unique("upload503")
    );
    s.reg(&["tag", "strata-demo/hello:1.0", &name]).ok();
    arm("status:503", "PUT", "/blobs/uploads/", 1000);
    let out = s.reg(&["push", &name]).fails();
    let log = proxy_log();
    fault_control("POST", "/reset", "");
    assert!(out.stderr.contains("HTTP 503"), "{}", out.stderr);
    let mut per_blob = std::collections::BTreeMap::<String, usize>::new();
    for e in log.iter().filter(|e| e["method"] == "PUT") {
        *per_blob
            .entry(digest_in(e["path"].as_str().unwrap()))
            .or_default() += 1;
    }
    // Uploads are tried once by the client; the engine tries each blob the
    // policy's attempts, and the first blob that runs out stops the rest.
    assert!(
        per_blob.values().all(|n| *n <= attempts()) && per_blob.values().any(|n| *n == attempts()),
        "{per_blob:?}"
    );
}

#[test]
fn search_prints_docker_hub_results_as_docker_does() {
    let hub = need("STRATA_TEST_HUB_SEARCH");
    let s = Strata::isolated();
    let search = |args: &[&str]| {
        common::output(
            s.registry_command()
                .env("STRATA_HUB_SEARCH_URL", &hub)
                .args(args),
        )
        .ok()
        .stdout
    };
    // The seed page's table, where the page wrote docker's "…" as "...".
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seed-search.txt"
    ))
    .unwrap();
    let norm = |t: &str| {
        t.replace("...", "…")
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(norm(&search(&["search", "nginx"])), norm(&seed));
    assert_eq!(
        search(&["search", "--limit", "3", "--format", "{{.Name}}", "nginx"]),
        "nginx\njwilder/nginx-proxy\nricharvey/nginx-php-fpm\n"
    );
    assert_eq!(
        search(&[
            "search",
            "--filter",
            "is-official=true",
            "--format",
            "{{.Name}} {{.StarCount}} {{.IsOfficial}}",
            "nginx"
        ]),
        "nginx 15725 [OK]\n"
    );
    let starred = search(&[
        "search",
        "--filter",
        "stars=100",
        "--format",
        "{{.Name}}",
        "nginx",
    ]);
    assert_eq!(starred.lines().count(), 8, "{starred}");
    let full = search(&["search", "--no-trunc", "--limit", "2", "nginx"]);
    assert!(
        full.contains("Automated Nginx reverse proxy for docker containers"),
        "{full}"
    );
    assert_eq!(
        search(&["search", "--format", "{{.Name}}", "nosuchthing"]),
        ""
    );

    // A registry without the search API: its catalog, filtered.
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = unique("findme");
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    s.reg(&[
        "tag",
        "strata-demo/hello:1.0",
        &format!("{reg}/{repo}/hello:1"),
    ])
    .ok();
    s.reg(&["push", &format!("{reg}/{repo}/hello:1")]).ok();
    let found = s.reg(&["search", &format!("{reg}/{repo}")]).ok().stdout;
    let header = found.lines().next().unwrap();
    assert!(
        header.starts_with("NAME ")
            && header.ends_with("DESCRIPTION   STARS     OFFICIAL   AUTOMATED"),
        "{found}"
    );
    assert!(found.contains(&format!("{reg}/{repo}/hello ")), "{found}");
}

#[test]
fn large_blobs_go_up_in_chunks_and_a_broken_chunk_is_retried() {
    let _guard = proxy_lock();
    fault_control("POST", "/reset", "");
    let s = Strata::isolated();
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let name = format!(
        "{}/{}/hello:1",
        need("STRATA_TEST_FAULT_PROXY"),
        unique("chunked")
    );
    s.reg(&["tag", "strata-demo/hello:1.0", &name]).ok();
    arm("reset", "PATCH", "/blobs/uploads/", 1);
    // 10 KiB layers in 4 KiB chunks: three PATCHes each.
    s.reg(&["push", "--chunk-size", "4KiB", &name]).ok();
    let log = proxy_log();
    let patches = log.iter().filter(|e| e["method"] == "PATCH").count();
    assert!(patches >= 6, "chunked uploads: {log:?}");
    let direct = name.replacen(
        &need("STRATA_TEST_FAULT_PROXY"),
        &need("STRATA_TEST_REGISTRY_PLAIN"),
        1,
    );
    let other = Strata::isolated();
    other.reg(&["pull", &direct]).ok();
    assert_eq!(other.reg(&["images", "-q"]).ok().stdout, "b1dcaf3cc163\n");
    fault_control("POST", "/reset", "");
    assert_ne!(s.reg(&["push", "--chunk-size", "0", &name]).code, 0);
}

#[test]
fn only_registries_marked_insecure_are_reached_without_tls_verification_or_over_http() {
    let plain_port = need("STRATA_TEST_REGISTRY_PLAIN")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let tls_name = need("STRATA_TEST_REGISTRY_TLS_NAME");
    let host = tls_name.split(':').next().unwrap().to_string();
    let plain_by_name = format!("{host}:{plain_port}");
    // An image on the plain-HTTP registry, reached by a name that is not loopback.
    let repo = unique("insecure");
    let s = Strata::isolated();
    s.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let loopback = format!("{}/{repo}/hello:1", need("STRATA_TEST_REGISTRY_PLAIN"));
    s.reg(&["tag", "strata-demo/hello:1.0", &loopback]).ok();
    s.reg(&["push", &loopback]).ok();
    let by_name = format!("{plain_by_name}/{repo}/hello:1");

    // Not marked insecure: HTTPS only, and that fails; never plain HTTP.
    let refused = s.reg(&["pull", &by_name]).fails();
    assert!(
        refused.stderr.contains(&format!("https://{plain_by_name}")),
        "{}",
        refused.stderr
    );
    // Marked insecure by flag: plain HTTP is allowed.
    s.reg(&["--insecure-registry", &plain_by_name, "pull", &by_name])
        .ok();
    // Marked insecure in strata's config file (docker's daemon.json key).
    let other = Strata::isolated();
    std::fs::write(
        other.path("strata-config/config.json"),
        format!(r#"{{"insecure-registries": ["{plain_by_name}"]}}"#),
    )
    .unwrap();
    other.reg(&["pull", &by_name]).ok();
    // An insecure TLS registry: HTTPS without verifying its certificate.
    let tls = Strata::isolated();
    let cfg = format!(
        r#"{{"auths": {{"{tls_name}": {{"auth": "{}"}}}}}}"#,
        base64(&format!(
            "{}:{}",
            need("STRATA_TEST_REGISTRY_USER"),
            need("STRATA_TEST_REGISTRY_PASSWORD")
        ))
    );
    std::fs::write(tls.path("docker-config/config.json"), cfg).unwrap();
    let tls_image = format!("{tls_name}/{repo}/hello:1");
    tls.reg(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    tls.reg(&["tag", "strata-demo/hello:1.0", &tls_image]).ok();
    assert_ne!(
        tls.reg(&["push", &tls_image]).code,
        0,
        "unknown CA, not insecure: refused"
    );
    tls.reg(&["--insecure-registry", &tls_name, "push", &tls_image])
        .ok();
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn a_docker_manifest_list_pushed_by_docker_is_pulled_whole() {
    let _docker = common::docker_lock();
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = format!("{reg}/{}/app", unique("dockerlist"));
    // The two platforms of the fixture index, as docker images.
    let s = Strata::isolated();
    let multi = format!("{reg}/{}/src:v1", unique("dockerlist-src"));
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", fixture("multiarch-oci").display()),
            &format!("docker://{multi}"),
        ],
    );
    let dockercfg = s.path("docker-manifests");
    std::fs::create_dir_all(&dockercfg).unwrap();
    let docker = |args: &[&str]| {
        common::output(common::docker().env("DOCKER_CONFIG", &dockercfg).args(args))
            .ok()
            .stdout
    };
    let mut parts = Vec::new();
    for arch in ["amd64", "arm64"] {
        let one = Strata::isolated();
        one.reg(&["pull", "--platform", &format!("linux/{arch}"), &multi])
            .ok();
        let tar = one.path("one.tar");
        one.reg(&["save", "-o", tar.to_str().unwrap(), &multi]).ok();
        docker(&["load", "-i", tar.to_str().unwrap()]);
        let tag = format!("{repo}:{arch}");
        docker(&["tag", &multi, &tag]);
        docker(&["push", &tag]);
        docker(&["rmi", &tag]);
        parts.push(tag);
    }
    docker(&["rmi", &multi]);
    let list = format!("{repo}:multi");
    docker(&[
        "manifest",
        "create",
        "--insecure",
        &list,
        &parts[0],
        &parts[1],
    ]);
    docker(&["manifest", "annotate", "--arch", "arm64", &list, &parts[1]]);
    docker(&["manifest", "push", "--insecure", &list]);
    let digest = skopeo_digest(&list);
    let raw = peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{list}"),
        ],
    );
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.list.v2+json"),
        "{raw}"
    );

    let out = s.reg(&["pull", "--all-platforms", &list]).ok().stdout;
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(
        s.reg(&["inspect", "--format", "{{.Architecture}}", &list])
            .ok()
            .stdout,
        "amd64\n"
    );
    // Pushed on, the list keeps its digest.
    let copy = format!("{reg}/{}/app:multi", unique("dockerlist-copy"));
    s.reg(&["tag", &list, &copy]).ok();
    s.reg(&["push", &copy]).ok();
    assert_eq!(skopeo_digest(&copy), digest);
}

#[test]
fn pull_draws_docker_progress_on_a_terminal() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let name = format!("{reg}/{}/debian:bookworm", unique("tty"));
    seed_with_skopeo(&name);
    let s = Strata::isolated();
    let bin = env!("CARGO_BIN_EXE_strata");
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 150; {bin} pull {name}"),
            "/dev/null",
        ])
        .env("STRATA_ROOT", s.root())
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .env("STRATA_CONFIG", s.path("strata-config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Lines are redrawn in place, each layer ending "Pull complete".
    assert!(text.contains("\u{1b}[2K"), "{text:?}");
    assert!(text.contains(": Pull complete"), "{text:?}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}")),
        "{text:?}"
    );
}
