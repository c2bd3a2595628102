//! `strata copy` end to end: between the real registries the harness runs
//! (plain HTTP; TLS with Basic auth; a fault-injecting proxy in front of the
//! plain one), OCI layouts and archives, docker archives and the store, with
//! skopeo as the judge of what was written.

mod common;

use common::{
    Run, Strata, fault_control, fixture, need, output, peer, sha256_hex, skopeo_digest, unique,
};

/// Puts the Debian fixture (four gzip layers, OCI manifest) into `image` on
/// a plain registry with skopeo; returns its manifest digest.
fn seed_debian(image: &str) -> String {
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

/// Puts the two-platform fixture's index into `image` with skopeo; returns
/// the index as skopeo reads it back.
fn seed_multiarch(image: &str) -> serde_json::Value {
    let src = format!("oci:{}:v1", fixture("multiarch-oci").display());
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{image}"),
        ],
    );
    serde_json::from_str(&raw(&format!("docker://{image}"))).unwrap()
}

/// A document as skopeo fetches it, byte for byte.
fn raw(address: &str) -> String {
    peer(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", address],
    )
}

fn digest_of(text: &str) -> String {
    format!("sha256:{}", sha256_hex(text.as_bytes()))
}

/// The lines of a copy's output that report blobs, counted by how they ended.
fn count(out: &str, ending: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("Copying ") && l.ends_with(ending))
        .count()
}

/// The HTTP status a plain registry gives for a HEAD of `path` under /v2/.
fn head(registry: &str, path: &str) -> String {
    peer(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-I",
            "-w",
            "%{http_code}",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            &format!("http://{registry}/v2/{path}"),
        ],
    )
}

/// Serialises the tests that use the fault proxy, whose faults and log are
/// shared (the same lock as tests/registry.rs).
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

fn proxy_log() -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&fault_control("GET", "/log", ""))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn arm(fault: &str, method: &str, path: &str, count: u32) {
    fault_control(
        "POST",
        "/faults",
        &serde_json::json!({"fault": fault, "method": method, "path": path, "count": count})
            .to_string(),
    );
}

/// No blob of the store: a registry-to-registry copy lands nothing on disk.
fn assert_no_blobs(s: &Strata) {
    let blobs = s.root().join("blobs/sha256");
    let n = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "blobs landed in the store");
    let ingest = s.root().join(".strata/ingest");
    let n = std::fs::read_dir(&ingest).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "files left in the ingest area");
}

#[test]
fn within_one_registry_every_blob_is_mounted_and_the_manifest_kept() {
    let _guard = proxy_lock();
    // Through the proxy, whose log shows every request the copy makes.
    let proxy = need("STRATA_TEST_FAULT_PROXY");
    let plain = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = unique("copy-mount");
    let digest = seed_debian(&format!("{plain}/{repo}/debian:bookworm"));
    fault_control("POST", "/reset", "");
    let s = Strata::isolated();
    let src = format!("docker://{proxy}/{repo}/debian:bookworm");
    let dst = format!("{proxy}/{repo}/mirror:v1");
    let out = s
        .reg(&["copy", &src, &format!("docker://{dst}")])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Copying blob ")
                && l.ends_with(&format!(" mounted from {repo}/debian")))
            .count(),
        4,
        "{out}"
    );
    assert!(
        lines[4].starts_with("Copying config ")
            && lines[4].ends_with(&format!(" mounted from {repo}/debian")),
        "{out}"
    );
    assert_eq!(
        lines[5..],
        ["Writing manifest to image destination", digest.as_str()]
    );
    // Nothing was uploaded: no upload body, and no blob read from the
    // source but the config (which strata reads to know the image).
    let manifest: serde_json::Value =
        serde_json::from_str(&raw(&format!("docker://{plain}/{repo}/debian:bookworm"))).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let log = proxy_log();
    let uploads: Vec<_> = log
        .iter()
        .filter(|e| {
            let path = e["path"].as_str().unwrap();
            (e["method"] == "GET" && path.contains("/blobs/") && !path.ends_with(&config))
                || e["method"] == "PATCH"
                || (e["method"] == "PUT" && path.contains("/blobs/uploads/"))
                || (e["method"] == "POST" && !path.contains("mount="))
        })
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    assert_eq!(
        log.iter()
            .filter(|e| e["method"] == "POST" && e["status"] == 201)
            .count(),
        5,
        "{log:?}"
    );
    assert_eq!(skopeo_digest(&dst), digest);
    assert_no_blobs(&s);

    // Again: everything is there; -q prints the digest alone.
    let again = s
        .reg(&["copy", &src, &format!("docker://{dst}")])
        .ok()
        .stdout;
    assert_eq!(count(&again, " skipped: already exists"), 5, "{again}");
    let quiet = s
        .reg(&["copy", "-q", &src, &format!("docker://{dst}")])
        .ok()
        .stdout;
    assert_eq!(quiet, format!("{digest}\n"));
    fault_control("POST", "/reset", "");
}

#[test]
fn between_two_registries_with_tls_and_a_login() {
    let plain = need("STRATA_TEST_REGISTRY_PLAIN");
    let tls = need("STRATA_TEST_REGISTRY_TLS_NAME");
    let user = need("STRATA_TEST_REGISTRY_USER");
    let password = need("STRATA_TEST_REGISTRY_PASSWORD");
    let repo = unique("copy-x");
    let src = format!("{plain}/{repo}/debian:bookworm");
    let digest = seed_debian(&src);
    let s = Strata::isolated();
    s.trust(&tls, &need("STRATA_TEST_REGISTRY_TLS_CA"));
    let dst = format!("{tls}/{repo}/debian:v1");
    // Not logged in yet: refused.
    let refused = s
        .reg(&[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{dst}"),
        ])
        .fails();
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("authentication required"),
        "{}",
        refused.stderr
    );
    s.reg(&["login", "-u", &user, "-p", &password, &tls]).ok();
    let out = s
        .reg(&[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{dst}"),
        ])
        .ok()
        .stdout;
    assert_eq!(count(&out, " done"), 5, "{out}");
    assert_eq!(out.lines().last(), Some(digest.as_str()));
    assert_no_blobs(&s);
    // skopeo reads it back by the loopback address (insecure there).
    let port = need("STRATA_TEST_REGISTRY_TLS")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let theirs = peer(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{password}"),
            "--format",
            "{{.Digest}}",
            &format!("docker://127.0.0.1:{port}/{repo}/debian:v1"),
        ],
    );
    assert_eq!(theirs.trim(), digest);
    // The store remembers where the layers are, for later mounts: a copy
    // into another repository of the TLS registry mounts them all.
    let again = s
        .reg(&[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{tls}/{repo}/other:v1"),
        ])
        .ok()
        .stdout;
    assert_eq!(
        count(&again, &format!(" mounted from {repo}/debian")),
        4,
        "{again}"
    );
}

#[test]
fn a_multi_platform_index_travels_whole_or_one_platform_alone() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = unique("copy-multi");
    let src = format!("{reg}/{repo}/app:v1");
    let index = seed_multiarch(&src);
    let index_digest = skopeo_digest(&src);
    let s = Strata::isolated();

    // Whole, by default: the same index, byte for byte, and every child.
    let whole_repo = format!("{}/app", unique("copy-multi-all"));
    let whole = format!("{reg}/{whole_repo}:v1");
    let out = s
        .reg(&[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{whole}"),
        ])
        .ok()
        .stdout;
    assert_eq!(out.lines().last(), Some(index_digest.as_str()), "{out}");
    assert_eq!(digest_of(&raw(&format!("docker://{whole}"))), index_digest);
    let children = index["manifests"].as_array().unwrap();
    for child in children {
        let d = child["digest"].as_str().unwrap();
        assert_eq!(head(&reg, &format!("{whole_repo}/manifests/{d}")), "200");
    }

    // One platform: its manifest alone, under the tag.
    let arm = children
        .iter()
        .find(|c| c["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let one = format!("{reg}/{}/app:arm", unique("copy-multi-one"));
    let out = s
        .reg(&[
            "copy",
            "--platform",
            "linux/arm64",
            &format!("docker://{src}"),
            &format!("docker://{one}"),
        ])
        .ok()
        .stdout;
    assert_eq!(out.lines().last(), Some(arm.as_str()), "{out}");
    assert_eq!(skopeo_digest(&one), arm);

    // A platform the index lacks: one line naming the source.
    let missing = s
        .reg(&[
            "copy",
            "--platform",
            "linux/s390x",
            &format!("docker://{src}"),
            &format!("docker://{one}"),
        ])
        .fails();
    assert!(
        missing.stderr.contains(&format!("docker://{src}: "))
            && missing.stderr.contains("linux/s390x"),
        "{}",
        missing.stderr
    );

    // A destination digest must be the digest copied; then it is pushed
    // by digest alone.
    let by_digest = format!("{reg}/{}/app@{index_digest}", unique("copy-multi-digest"));
    s.reg(&[
        "copy",
        &format!("docker://{src}"),
        &format!("docker://{by_digest}"),
    ])
    .ok();
    assert_eq!(
        digest_of(&raw(&format!("docker://{by_digest}"))),
        index_digest
    );
    let wrong = format!("{reg}/{}/app@{arm}", unique("copy-multi-wrong"));
    let refused = s
        .reg(&[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{wrong}"),
        ])
        .fails();
    assert!(refused.stderr.contains(&index_digest), "{}", refused.stderr);
}

#[test]
fn registry_to_layout_and_back() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = unique("copy-layout");
    let src = format!("{reg}/{repo}/debian:bookworm");
    let digest = seed_debian(&src);
    let s = Strata::isolated();
    let dir = s.path("layout");
    let layout = format!("oci:{}:deb", dir.display());
    let out = s
        .reg(&["copy", &format!("docker://{src}"), &layout])
        .ok()
        .stdout;
    assert_eq!(out.lines().last(), Some(digest.as_str()));
    assert_eq!(
        digest_of(&peer("skopeo", &["inspect", "--raw", &layout])),
        digest
    );

    // From a fresh store, which knows of no repository to mount from.
    let back = format!("{reg}/{}/debian:back", unique("copy-layout-back"));
    let out = Strata::isolated()
        .reg(&["copy", &layout, &format!("docker://{back}")])
        .ok()
        .stdout;
    assert_eq!(count(&out, " done"), 5, "{out}");
    assert_eq!(skopeo_digest(&back), digest);
}

#[test]
fn store_to_an_oci_archive_that_skopeo_reads() {
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let archive = s.path("out.tar");
    let address = format!("oci-archive:{}:deb", archive.display());
    let out = s
        .run(&["copy", "peers/debian:bookworm", &address])
        .ok()
        .stdout;
    let digest = out.lines().last().unwrap().to_string();
    assert_eq!(
        digest_of(&peer("skopeo", &["inspect", "--raw", &address])),
        digest
    );
    let id = s
        .run(&["inspect", "--format", "{{.Id}}", "peers/debian:bookworm"])
        .ok()
        .stdout;
    let config = peer("skopeo", &["inspect", "--config", "--raw", &address]);
    assert_eq!(digest_of(&config), id.trim());
    // skopeo unpacks it into a layout of its own.
    let theirs = s.path("theirs");
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            &address,
            &format!("oci:{}:x", theirs.display()),
        ],
    );
}

#[test]
fn docker_archive_to_registry() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::isolated();
    let dst = format!("{reg}/{}/debian:da", unique("copy-da"));
    let src = format!(
        "docker-archive:{}:peers/debian:bookworm",
        fixture("debian-docker.tar").display()
    );
    let out = s
        .reg(&["copy", &src, &format!("docker://{dst}")])
        .ok()
        .stdout;
    let digest = out.lines().last().unwrap().to_string();
    assert_eq!(skopeo_digest(&dst), digest);
    // The same image as a load of the archive: the same image ID.
    s.reg(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    s.reg(&["pull", "-q", &dst]).ok();
    let ids: Vec<String> = ["peers/debian:bookworm", dst.as_str()]
        .iter()
        .map(|n| s.reg(&["inspect", "--format", "{{.Id}}", n]).ok().stdout)
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn bad_addresses_are_usage_errors_and_failures_name_the_address() {
    let s = Strata::isolated();
    for (src, dst, names) in [
        ("foo:/x", "y:1", "foo:/x"),
        ("docker:nginx", "y:1", "docker:nginx"),
        ("oci:/tmp/x", "dir:/tmp/y", "dir:/tmp/y"),
        ("x:1", "docker://upper/Case", "docker://upper/Case"),
    ] {
        let out = s.reg(&["copy", src, dst]).fails();
        assert_eq!(out.code, 125, "{src} {dst}: {}", out.stderr);
        assert!(out.stderr.contains(names), "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let missing = s.path("no-such-layout");
    let src = format!("oci:{}", missing.display());
    let out = s.reg(&["copy", &src, "y:1"]).fails();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!("Error: {src}: ")),
        "{}",
        out.stderr
    );
    let out = s.reg(&["copy", "no-such-image:1", "y:1"]).fails();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no-such-image:1"), "{}", out.stderr);
}

/// Pushes the two-platform fixture's index to the plain registry; returns
/// its name through the fault proxy and its largest layer's digest.
fn behind_proxy() -> (String, String) {
    let repo = unique("copy-fault");
    let image = format!("{}/{repo}/app:v1", need("STRATA_TEST_REGISTRY_PLAIN"));
    let index = seed_multiarch(&image);
    let child = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m: serde_json::Value = serde_json::from_str(&raw(&format!(
        "docker://{}/{repo}/app@{child}",
        need("STRATA_TEST_REGISTRY_PLAIN")
    )))
    .unwrap();
    let big = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (
        format!("{}/{repo}/app:v1", need("STRATA_TEST_FAULT_PROXY")),
        big,
    )
}

fn copy(s: &Strata, src: &str, dst: &str) -> Run {
    output(s.registry_command().args(["copy", src, dst]))
}

#[test]
fn a_source_body_cut_short_is_resumed_or_fails_cleanly() {
    let _guard = proxy_lock();
    let (src, big) = behind_proxy();
    let plain = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::isolated();

    // Cut once: the download resumes with a Range request.
    fault_control("POST", "/reset", "");
    arm("short", "GET", &format!("/blobs/{big}"), 1);
    let dst_repo = format!("{}/app", unique("copy-cut"));
    let dst = format!("{plain}/{dst_repo}:v1");
    let out = copy(&s, &format!("docker://{src}"), &format!("docker://{dst}"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let resumed = proxy_log()
        .into_iter()
        .filter(|e| e["path"].as_str().unwrap().contains(&big) && !e["range"].is_null())
        .count();
    assert_eq!(resumed, 1);
    assert_eq!(out.stdout.lines().last().unwrap(), skopeo_digest(&dst));

    // Cut every time: a clear error naming the blob; the destination has
    // neither the tag nor the blob. (A fresh store: this one would mount
    // the blob from the first copy's repository.)
    let s = Strata::isolated();
    fault_control("POST", "/reset", "");
    arm("short", "GET", &format!("/blobs/{big}"), 1000);
    let dst_repo = format!("{}/app", unique("copy-cut-fail"));
    let out = copy(
        &s,
        &format!("docker://{src}"),
        &format!("docker://{plain}/{dst_repo}:v1"),
    )
    .fails();
    fault_control("POST", "/reset", "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(&big), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stdout.contains("Writing manifest"), "{}", out.stdout);
    assert_eq!(head(&plain, &format!("{dst_repo}/manifests/v1")), "404");
    assert_eq!(head(&plain, &format!("{dst_repo}/blobs/{big}")), "404");
}
