//! WebAssembly plugins end to end: each example plugin (slim in Rust,
//! reproducible in C, semver-policy in Python, stamp in JavaScript) through
//! a pipeline against the real registries, the result checked by strata's
//! own mount, by the Docker daemon and by skopeo; then the hostile plugins
//! (an endless loop, a memory bomb, one that reaches for files and sockets,
//! three that return invalid decisions, one built against another WIT
//! version), each refused with a one-line error while the store and the
//! target registry stay as they were.
//!
//! The components are built by `scripts/build-plugins` (scripts/test runs
//! it); a missing one fails the test with that command.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Run, Strata, docker_run, fixture, need, peer, unique};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A built component: `plugins/<name>/<leaf>.wasm`.
fn component(name: &str) -> String {
    let leaf = name.rsplit('/').next().unwrap();
    let p = repo_root()
        .join("plugins")
        .join(name)
        .join(format!("{leaf}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does)",
        p.display()
    );
    p.display().to_string()
}

/// Writes `yaml` beside the store and runs it.
fn pipeline(s: &Strata, yaml: &str, extra: &[&str]) -> Run {
    let file = s.path(&format!("{}.yaml", unique("p")));
    std::fs::write(&file, yaml).unwrap();
    let mut args = vec!["run", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    s.run(&args)
}

/// Tag → manifest digest of a repository on the plain registry (empty when
/// it does not exist).
fn registry_tags(registry: &str, repo: &str) -> BTreeMap<String, String> {
    let c = reqwest::blocking::Client::new();
    let resp = c
        .get(format!("http://{registry}/v2/{repo}/tags/list"))
        .send()
        .unwrap();
    if resp.status() == 404 {
        return BTreeMap::new();
    }
    let body: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    body["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let t = t.as_str().unwrap().to_string();
                    let d = common::skopeo_digest(&format!("{registry}/{repo}:{t}"));
                    (t, d)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One file of a flattened tree: its kind, mode, owner, mtime and content
/// (or link target).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    data: String,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            ('d', String::new())
        } else if ft.is_symlink() {
            ('l', std::fs::read_link(&p).unwrap().display().to_string())
        } else if ft.is_file() {
            ('f', common::sha256_hex(&std::fs::read(&p).unwrap()))
        } else {
            ('o', m.rdev().to_string())
        };
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                data,
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A flattened copy of `image`'s tree, written by `strata mount --flatten`.
fn flattened(s: &Strata, image: &str) -> BTreeMap<String, Node> {
    let dir = s.path(&unique("tree"));
    s.run(&[
        "mount",
        "--flatten",
        "--target",
        dir.to_str().unwrap(),
        image,
    ])
    .ok();
    tree(&dir)
}

/// The store's files, but for the cache of compiled plugins, which any
/// run that loads a plugin may fill.
fn store(s: &Strata) -> Vec<(String, String)> {
    let mut files = s.snapshot();
    files.retain(|(p, _)| !p.starts_with(".strata/plugins/"));
    files
}

fn inspect(s: &Strata, image: &str) -> Value {
    let out = s.run(&["inspect", image]).ok().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Whether slim, keeping the German catalogs, drops `path`: what is under
/// the documentation and manual trees, and the locale catalogs but German
/// ones and glibc's alias table.
fn slim_drops(path: &str) -> bool {
    let kept = [
        "de_DE.UTF-8",
        "de_DE.utf8",
        "de_DE",
        "de.UTF-8",
        "de.utf8",
        "de",
    ];
    if let Some(rest) = path
        .strip_prefix("usr/share/doc/")
        .or_else(|| path.strip_prefix("usr/share/man/"))
    {
        return !rest.is_empty();
    }
    if let Some(rest) = path.strip_prefix("usr/share/locale/") {
        let top = rest.split('/').next().unwrap();
        return rest != "locale.alias" && !kept.contains(&top);
    }
    false
}

#[test]
fn slim_drops_documentation_manuals_and_locales_and_docker_runs_the_result() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::new();
    let target = format!("{registry}/{}/debian:slim", unique("plugins"));
    let yaml = format!(
        r#"version: 1
plugins:
  slim:
    path: {slim}
    settings: {{keep-locales: de_DE.UTF-8}}
steps:
  - id: original
    load: {{input: {docker_archive}}}
  - id: slimmed
    copy:
      source: oci-archive:{archive}:bookworm
      target: docker://{target}
      transform: [slim]
  - pull: {{image: {target}}}
"#,
        slim = component("slim"),
        archive = fixture("debian-oci.tar").display(),
        docker_archive = fixture("debian-docker.tar").display(),
    );
    pipeline(&s, &yaml, &[]).ok();

    let before = flattened(&s, "peers/debian:bookworm");
    let after = flattened(&s, &target);
    let dropped: BTreeSet<&String> = before.keys().filter(|p| slim_drops(p)).collect();
    assert!(
        dropped.len() > 1000
            && dropped.iter().any(|p| p.starts_with("usr/share/locale/fr"))
            && dropped
                .iter()
                .all(|p| !p.starts_with("usr/share/locale/de/")),
        "the fixture does not have the documentation it should: {} paths",
        dropped.len()
    );
    assert!(
        before.contains_key("usr/share/locale/de/LC_MESSAGES/sed.mo"),
        "no German catalog in the fixture"
    );
    // Exactly those paths are gone; everything else is as it was, to the
    // mode, owner, mtime and content.
    let mut expected = before.clone();
    expected.retain(|p, _| !slim_drops(p));
    let missing: Vec<_> = expected
        .keys()
        .filter(|p| !after.contains_key(*p))
        .collect();
    let extra: Vec<_> = after
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {:?}\nextra {:?}",
        &missing[..missing.len().min(10)],
        &extra[..extra.len().min(10)]
    );
    for (p, node) in &expected {
        assert_eq!(&after[p], node, "{p} changed");
    }

    // A real image: new layers and ID, a config naming them, smaller.
    let (a, b) = (inspect(&s, "peers/debian:bookworm"), inspect(&s, &target));
    assert_ne!(a["Id"], b["Id"]);
    assert_eq!(
        a["RootFS"]["Layers"].as_array().unwrap().len(),
        b["RootFS"]["Layers"].as_array().unwrap().len()
    );
    assert!(b["Size"].as_u64().unwrap() < a["Size"].as_u64().unwrap() * 3 / 4);
    // skopeo reads it from the registry, layer for layer.
    let theirs: Value = serde_json::from_str(&peer(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ],
    ))
    .unwrap();
    assert_eq!(
        theirs["Layers"].as_array().unwrap().len(),
        b["RootFS"]["Layers"].as_array().unwrap().len()
    );

    // umoci unpacks it from an OCI layout.
    let layout = s.path("layout");
    s.run(&["copy", &target, &format!("oci:{}:slim", layout.display())])
        .ok();
    let bundle = s.path("bundle");
    peer(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:slim", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let unpacked = bundle.join("rootfs");
    assert!(unpacked.join("etc/debian_version").is_file());
    assert_eq!(
        std::fs::read_dir(unpacked.join("usr/share/doc"))
            .unwrap()
            .count(),
        0
    );

    // Docker loads what strata saves and runs it.
    let _docker = common::docker_lock();
    let tag = "strata-plugins/debian:slim";
    s.run(&["tag", &target, tag]).ok();
    let saved = s.path("slim.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), tag]).ok();
    docker_run(&["rmi", "-f", tag]);
    let loaded = docker_run(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "docker load: {}", loaded.stderr);
    let run = docker_run(&[
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "sh",
        "-c",
        "cat /etc/debian_version; ls /usr/share/doc | wc -l; ls /usr/share/locale/de/LC_MESSAGES/sed.mo",
    ]);
    assert_eq!(run.code, 0, "docker run: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("12."), "{}", run.stdout);
    assert_eq!(lines[1..], ["0", "/usr/share/locale/de/LC_MESSAGES/sed.mo"]);
    docker_run(&["rmi", "-f", tag]);
}

#[test]
fn reproducible_gives_one_digest_from_two_stores_and_zeroes_times_and_owners() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = format!("{registry}/{}/debian", unique("repro"));
    let digests: Vec<String> = ["a", "b"]
        .iter()
        .map(|name| {
            let s = Strata::new();
            let yaml = format!(
                r#"version: 1
plugins:
  repro:
    path: {c}
    settings: {{source-date-epoch: "1700000000"}}
steps:
  - load: {{input: {archive}, transform: [repro]}}
  - tag: {{source: "peers/debian:bookworm", target: "{repo}:{name}"}}
  - push: {{image: "{repo}:{name}"}}
"#,
                c = component("reproducible"),
                archive = fixture("debian-docker.tar").display(),
            );
            pipeline(&s, &yaml, &[]).ok();
            if *name == "a" {
                let files = flattened(&s, "peers/debian:bookworm");
                let odd: Vec<_> = files
                    .iter()
                    .filter(|(_, n)| {
                        n.uid != 0 || n.gid != 0 || (n.kind != 'd' && n.mtime != 1_700_000_000)
                    })
                    .map(|(p, _)| p)
                    .collect();
                assert!(files.len() > 1000 && odd.is_empty(), "{odd:?}");
            }
            common::skopeo_digest(&format!("{repo}:{name}"))
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    // And it is another image than the original.
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    s.run(&["tag", "peers/debian:bookworm", &format!("{repo}:plain")])
        .ok();
    s.run(&["push", &format!("{repo}:plain")]).ok();
    assert_ne!(common::skopeo_digest(&format!("{repo}:plain")), digests[0]);
}

/// Pushes the mirror fixture (scripts/mirror_corpus.py) under a new prefix.
fn mirror_fixture(registry: &str) -> String {
    let prefix = unique("psrc");
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
    prefix
}

#[test]
fn semver_policy_decides_which_tags_a_mirror_copies() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let prefix = mirror_fixture(&registry);
    let to = unique("pdst");
    let s = Strata::new();
    let yaml = format!(
        r#"version: 1
plugins:
  policy:
    path: {py}
    settings: {{minors: "3", patches: "1"}}
steps:
  - id: m
    mirror:
      from: {registry}
      to: [{{registry: {registry}, prefix: {to}/}}]
      repositories: [{prefix}/team/web]
      tags:
        exclude: ['^nightly']
      tag_filter: policy
"#,
        py = component("semver-policy"),
    );
    // The dry run shows the plugin's reasons and copies nothing.
    let dry = pipeline(&s, &yaml, &["--dry-run"]).ok();
    for line in [
        "dropped by tag_filter (4): latest (not a version (v1.2.3 or 1.2.3, optionally -pre)) v1.0.0 (minor 1.0 is not among the last 3) v1.2.0 (minor 1.2 is not among the last 3) v2.0.0-rc1 (pre-release)",
        "to copy (3): v2.0.0 v2.1.0 v3.0.0",
    ] {
        assert!(dry.stdout.contains(line), "{}", dry.stdout);
    }
    assert!(registry_tags(&registry, &format!("{to}/{prefix}/team/web")).is_empty());

    pipeline(&s, &yaml, &[]).ok();
    let copied = registry_tags(&registry, &format!("{to}/{prefix}/team/web"));
    // The last three minors (3.0, 2.1, 2.0), newest patch each; the
    // pre-release, the older minors, `latest` and `multi` are dropped.
    assert_eq!(
        copied.keys().map(String::as_str).collect::<Vec<_>>(),
        ["v2.0.0", "v2.1.0", "v3.0.0"]
    );
    for (tag, digest) in &copied {
        assert_eq!(
            digest,
            &common::skopeo_digest(&format!("{registry}/{prefix}/team/web:{tag}"))
        );
    }

    // The same policy published as an artifact and named by digest decides
    // the same tags for another target.
    let artifact = format!("{registry}/{}/semver-policy:v1", unique("plugins"));
    let pushed = s
        .run(&["plugin", "push", &component("semver-policy"), &artifact])
        .ok();
    let digest = pushed
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in: {}", pushed.stdout));
    let pinned = format!("{}@{digest}", artifact.trim_end_matches(":v1"));
    let to2 = unique("pdst");
    let by_image = yaml
        .replace(
            &format!("path: {}", component("semver-policy")),
            &format!("image: {pinned}"),
        )
        .replace(&format!("prefix: {to}/"), &format!("prefix: {to2}/"));
    assert!(by_image.contains(&pinned) && by_image.contains(&to2));
    pipeline(&s, &by_image, &[]).ok();
    let copied2 = registry_tags(&registry, &format!("{to2}/{prefix}/team/web"));
    assert_eq!(copied2, copied);
}

#[test]
fn stamp_labels_show_in_strata_inspect_and_docker_inspect() {
    let s = Strata::new();
    let yaml = format!(
        r#"version: 1
plugins:
  stamp:
    path: {js}
    settings:
      source: https://git.example/team/hello
      revision: 0123abc
      date: "2026-12-01T10:00:00Z"
steps:
  - load: {{input: {hello}, transform: [stamp]}}
"#,
        js = component("stamp"),
        hello = common::demo_archive().display(),
    );
    pipeline(&s, &yaml, &[]).ok();
    let want = serde_json::json!({
        "org.opencontainers.image.source": "https://git.example/team/hello",
        "org.opencontainers.image.revision": "0123abc",
        "org.opencontainers.image.created": "2026-12-01T10:00:00Z",
    });
    let ours = inspect(&s, "strata-demo/hello:1.0");
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&ours["Config"]["Labels"][k], v, "{k}");
    }

    let _docker = common::docker_lock();
    let tag = "strata-plugins/hello:stamped";
    s.run(&["tag", "strata-demo/hello:1.0", tag]).ok();
    let saved = s.path("stamped.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), tag]).ok();
    docker_run(&["rmi", "-f", tag]);
    let loaded = docker_run(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "docker load: {}", loaded.stderr);
    let theirs = docker_run(&["inspect", "--format", "{{json .Config.Labels}}", tag]);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let theirs: Value = serde_json::from_str(&theirs.stdout).unwrap();
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&theirs[k], v, "{k}");
    }
    let id = docker_run(&["images", "--no-trunc", "-q", tag]).stdout;
    assert_eq!(id.trim(), ours["Id"].as_str().unwrap());
    docker_run(&["rmi", "-f", tag]);
}

/// A store holding the demo image, and a registry repository no one has
/// pushed to, for the hostile plugins.
fn hostile_setup() -> (Strata, String) {
    let s = Strata::new();
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let target = format!(
        "{}/{}/hello:t",
        need("STRATA_TEST_REGISTRY_PLAIN"),
        unique("hostile")
    );
    (s, target)
}

/// Copies the demo image to `target` through `plugin` on the command line;
/// the one-line error.
fn hostile_copy(s: &Strata, plugin: &str, target: &str) -> String {
    let before = store(s);
    let run = s
        .run(&[
            "copy",
            "--transform",
            &component(plugin),
            "strata-demo/hello:1.0",
            &format!("docker://{target}"),
        ])
        .fails();
    assert_eq!(store(s), before, "the store changed");
    let (reg, rest) = target.split_once('/').unwrap();
    let repo = rest.split(':').next().unwrap();
    assert!(registry_tags(reg, repo).is_empty(), "{target} was written");
    run.stderr.trim_end().to_string()
}

#[test]
fn invalid_decisions_are_refused_naming_the_plugin_and_the_entry() {
    let (s, target) = hostile_setup();
    assert_eq!(
        hostile_copy(&s, "hostile/escape", &target),
        "Error: strata-demo/hello:1.0: plugin escape (layer-transform): entries, entry \"../escaped-by-plugin\": path \"../escaped-by-plugin\": its name has a `..` component"
    );
    assert_eq!(
        hostile_copy(&s, "hostile/clash", &target),
        "Error: strata-demo/hello:1.0: plugin clash (layer-transform): entries, entry \"etc/motd\": \"etc/motd\" is written twice (a rename onto an existing entry)"
    );
    assert_eq!(
        hostile_copy(&s, "hostile/liar", &target),
        "Error: strata-demo/hello:1.0: plugin liar (layer-transform): entries, entry \"etc/motd\": replacement content is 40 bytes but its header declares 24"
    );
}

#[test]
fn a_memory_bomb_stops_at_its_cap() {
    let (s, target) = hostile_setup();
    assert_eq!(
        hostile_copy(&s, "hostile/balloon", &target),
        "Error: strata-demo/hello:1.0: plugin balloon (layer-transform): entries, entry \"etc\": went past its memory cap of 256 MiB"
    );
    // A pipeline's own cap is the one kept.
    let before = store(&s);
    let run = pipeline(
        &s,
        &format!(
            "version: 1\nplugins:\n  b: {{path: {}, memory_mib: 32}}\nsteps:\n  - copy: {{source: strata-demo/hello:1.0, target: docker://{target}, transform: [b]}}\n",
            component("hostile/balloon")
        ),
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "plugin b (layer-transform): entries, entry \"etc\": went past its memory cap of 32 MiB"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(store(&s), before);
}

#[test]
fn an_endless_loop_is_stopped_by_its_deadline_and_leaves_everything_as_it_was() {
    let (s, target) = hostile_setup();
    let before = store(&s);
    let yaml = format!(
        "version: 1\nplugins:\n  spin: {{path: {}, timeout: 1s}}\nsteps:\n  - copy: {{source: strata-demo/hello:1.0, target: docker://{target}, transform: [spin]}}\n",
        component("hostile/spin")
    );
    let started = Instant::now();
    let run = pipeline(&s, &yaml, &[]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "plugin spin (layer-transform): entries, entry \"etc\": stopped after its deadline of 1 s"
        ),
        "{}",
        run.stderr
    );
    // Stopped by the 1 s deadline, not the default 10 s one.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(store(&s), before);
    let (reg, rest) = target.split_once('/').unwrap();
    assert!(registry_tags(reg, rest.split(':').next().unwrap()).is_empty());
}

#[test]
fn a_plugin_reaching_for_files_and_sockets_is_refused() {
    let (s, target) = hostile_setup();
    // Without WASI granted it does not even load.
    let err = hostile_copy(&s, "hostile/snoop", &target);
    assert!(
        err.starts_with("Error: strata-demo/hello:1.0: plugin snoop: imports wasi:")
            && err.contains("WASI (files, sockets, clocks, environment) is not granted"),
        "{err}"
    );
    // Granted WASI with one read-only directory, it still cannot climb
    // out of it, nor open a socket.
    let shared = s.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("note"), "shared\n").unwrap();
    let before = store(&s);
    let yaml = format!(
        "version: 1\nplugins:\n  snoop:\n    path: {}\n    wasi: {{dirs: [{}]}}\nsteps:\n  - copy: {{source: strata-demo/hello:1.0, target: docker://{target}, transform: [snoop]}}\n",
        component("hostile/snoop"),
        shared.display()
    );
    let run = pipeline(&s, &yaml, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "plugin snoop (layer-transform): entries, entry \"etc\": snoop: /etc/passwd: from {}: open-at refused: not-permitted; socket: create-tcp-socket refused: access-denied",
            shared.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("root:"), "{}", run.stderr);
    assert_eq!(store(&s), before);
}

#[test]
fn a_plugin_built_against_another_wit_version_is_refused_at_load() {
    let (s, target) = hostile_setup();
    assert_eq!(
        hostile_copy(&s, "hostile/future", &target),
        "Error: strata-demo/hello:1.0: plugin future: built against strata:plugin@0.2.0 (it exports strata:plugin/layer-transformer@0.2.0); this strata implements strata:plugin@0.1.0"
    );
    let out = s
        .run(&["plugin", "inspect", &component("hostile/future")])
        .ok()
        .stdout;
    assert!(
        out.contains("Status:   refused: plugin future: built against strata:plugin@0.2.0"),
        "{out}"
    );
}

#[test]
fn a_failing_plugin_marked_skip_leaves_the_image_as_it_was() {
    let (s, target) = hostile_setup();
    let yaml = format!(
        "version: 1\nplugins:\n  escape: {{path: {}, on_error: skip}}\nsteps:\n  - copy: {{source: strata-demo/hello:1.0, target: docker://{target}}}\n  - copy: {{source: strata-demo/hello:1.0, target: docker://{target}-skipped, transform: [escape]}}\n",
        component("hostile/escape")
    );
    let run = pipeline(&s, &yaml, &[]).ok();
    assert!(
        run.stderr
            .contains("plugin escape (layer-transform): entries, entry \"../escaped-by-plugin\"")
            && run
                .stderr
                .contains("the layer is kept as it was (on_error: skip)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        common::skopeo_digest(&target),
        common::skopeo_digest(&format!("{target}-skipped"))
    );
}

#[test]
fn plugin_inspect_tells_the_world_imports_exports_and_status() {
    let s = Strata::new();
    let path = component("slim");
    let bytes = std::fs::read(&path).unwrap();
    let out = s.run(&["plugin", "inspect", &path]).ok().stdout;
    let digest = format!("sha256:{}", common::sha256_hex(&bytes));
    assert!(out.starts_with("Name:     slim\n"), "{out}");
    assert!(out.contains(&format!("Digest:   {digest}\n")), "{out}");
    assert!(out.contains("Worlds:   layer-transform\n"), "{out}");
    assert!(
        out.contains("Imports:\n  strata:plugin/log@0.1.0\n  strata:plugin/types@0.1.0\n"),
        "{out}"
    );
    assert!(
        out.contains("Exports:\n  strata:plugin/layer-transformer@0.1.0\n"),
        "{out}"
    );
    assert!(
        out.ends_with("Status:   runs in strata (no WASI needed)\n"),
        "{out}"
    );
    // Not a component: one line naming the file.
    let junk = s.path("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let err = s
        .run(&["plugin", "inspect", junk.to_str().unwrap()])
        .fails()
        .stderr;
    assert!(err.contains("junk"), "{err}");
}

#[test]
fn a_second_run_loads_the_compiled_plugin_from_the_cache() {
    let s = Strata::new();
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    let run = |tag: &str| {
        s.run(&[
            "plugin",
            "run",
            "--tag",
            tag,
            &component("stamp"),
            "strata-demo/hello:1.0",
        ])
        .ok();
    };
    run("hello:one");
    let cache = s.root().join(".strata/plugins/compiled");
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 1, "one compiled component in {}", cache.display());
    run("hello:two");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let ids: Vec<String> = ["hello:one", "hello:two"]
        .iter()
        .map(|t| inspect(&s, t)["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn layers_are_compressed_with_zstd_on_request() {
    let s = Strata::new();
    let yaml = format!(
        r#"version: 1
plugins:
  gz: {{path: {c}}}
  zs: {{path: {c}, compression: zstd}}
steps:
  - load: {{input: {hello}}}
  - copy: {{source: "strata-demo/hello:1.0", target: "hello:gz", transform: [gz]}}
  - copy: {{source: "strata-demo/hello:1.0", target: "hello:zs", transform: [zs]}}
  - copy: {{source: "hello:zs", target: "oci:{layout}:zs"}}
"#,
        c = component("reproducible"),
        hello = common::demo_archive().display(),
        layout = s.path("layout").display(),
    );
    pipeline(&s, &yaml, &[]).ok();
    // The layout's manifest names zstd layers; skopeo reads them.
    let index: Value =
        serde_json::from_slice(&std::fs::read(s.path("layout/index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(s.path("layout/blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    let types: BTreeSet<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["application/vnd.oci.image.layer.v1.tar+zstd"])
    );
    let layout = format!("oci:{}:zs", s.path("layout").display());
    let theirs: Value = serde_json::from_str(&peer("skopeo", &["inspect", &layout])).unwrap();
    assert_eq!(
        theirs["Layers"],
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect::<Value>()
    );
    // The same tree either way, and the same image ID (diff IDs are of the
    // uncompressed tar).
    assert_eq!(flattened(&s, "hello:gz"), flattened(&s, "hello:zs"));
    assert_eq!(inspect(&s, "hello:gz")["Id"], inspect(&s, "hello:zs")["Id"]);
    // A codec strata does not know is refused before anything runs.
    let bad = pipeline(
        &s,
        &format!(
            "version: 1\nplugins:\n  x: {{path: {}, compression: lz4}}\nsteps:\n  - images: {{}}\n",
            component("reproducible")
        ),
        &[],
    );
    assert_eq!(bad.code, 125, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains(":3:6: plugin x: compression `lz4`: use gzip or zstd"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_tag_filter_decides_from_registry_facts_each_fetched_once() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let prefix = mirror_fixture(&registry);
    let to = unique("fdst");
    let s = Strata::new();
    let run = |settings: &str, extra: &[&str]| {
        let yaml = format!(
            r#"version: 1
plugins:
  fresh:
    path: {c}
    settings: {settings}
steps:
  - mirror:
      from: {registry}
      to: [{{registry: {registry}, prefix: {to}/}}]
      repositories: [{prefix}/team/app]
      tags: {{exclude: ['^nightly']}}
      tag_filter: fresh
"#,
            c = component("fresh"),
        );
        pipeline(&s, &yaml, extra).ok()
    };
    // Created since March 2025 and labelled as team/app's: the config's
    // `created` and labels, read through the host.
    let dry = run(
        r#"{since: "2025-03-01T00:00:00Z", label: "org.opencontainers.image.title=team/app"}"#,
        &["--dry-run"],
    );
    let v100 = common::skopeo_digest(&format!("{registry}/{prefix}/team/app:v1.0.0"));
    assert!(
        dry.stdout.contains(&format!(
            "dropped by tag_filter (2): v1.0.0 (created 2025-01-06T10:00:00Z, before 2025-03-01T00:00:00Z [{}]) v1.2.0 (created 2025-02-03T10:00:00Z, before 2025-03-01T00:00:00Z [",
            &v100[..19]
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("to copy (6): latest multi v2.0.0 v2.0.0-rc1 v2.1.0 v3.0.0"),
        "{}",
        dry.stdout
    );
    // The plugin asks three facts of each of the 8 tags (digest, created,
    // labels) and platforms of none: the host fetches each tag's manifest
    // and config once (the index's image manifest too) and answers the
    // rest from what it has: 8 + 8 + 1 requests.
    let line = dry
        .stderr
        .lines()
        .chain(dry.stdout.lines())
        .find(|l| l.contains("registry requests for tag facts"))
        .unwrap_or_else(|| panic!("no count of requests:\n{}\n{}", dry.stdout, dry.stderr))
        .to_string();
    let n: usize = line
        .split(": ")
        .nth(2)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(n, 17, "{line}");

    // The platforms: only the index has linux/arm64.
    run(r#"{platform: linux/arm64/v8}"#, &[]);
    let copied = registry_tags(&registry, &format!("{to}/{prefix}/team/app"));
    assert_eq!(copied.keys().collect::<Vec<_>>(), ["multi"]);

    // A setting it does not know fails the plan, naming it.
    let yaml = format!(
        "version: 1\nplugins:\n  fresh: {{path: {}, settings: {{colour: red}}}}\nsteps:\n  - mirror: {{from: {registry}, to: [{{registry: {registry}, prefix: {to}/}}], repositories: [{prefix}/team/app], tag_filter: fresh}}\n",
        component("fresh")
    );
    let bad = pipeline(&s, &yaml, &[]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains(
            "plugin fresh (tag-filter): filter: unknown setting `colour` (fresh takes since, label, platform)"
        ),
        "{}",
        bad.stderr
    );
}
