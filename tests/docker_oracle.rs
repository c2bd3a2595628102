//! Docker itself as the oracle: the same archives loaded into a real
//! Docker daemon (20.10, the seed's version, started by scripts/test) and
//! into strata give the same `images`, `history`, `inspect` and `rmi`
//! output (relative times aside); docker loads and runs what strata saves,
//! and strata loads what docker saves with the same image ID.
//!
//! The daemon is shared: each test holds its lock and starts from a daemon
//! cleared of the test images.

mod common;

use common::{Strata, demo_archive, docker_run, fixture, mask_relative_times};

const NAMES: [&str; 3] = [
    "peers/debian:bookworm",
    "nginx:latest",
    "strata-demo/hello:1.0",
];

/// Compares one command's output from docker and from strata.
#[track_caller]
fn same(s: &Strata, args: &[&str]) {
    let theirs = docker_run(args);
    let ours = s.run(args);
    assert_eq!(theirs.code, 0, "docker {args:?}: {}", theirs.stderr);
    assert_eq!(
        mask_relative_times(&ours.stdout),
        mask_relative_times(&theirs.stdout),
        "strata {args:?} differs from docker (left strata, right docker)"
    );
    assert_eq!(ours.code, 0, "strata {args:?}: {}", ours.stderr);
}

/// Compares a table whose rows docker prints in no fixed order: the docker
/// CLI groups one image's names in a Go map, so two repositories of the
/// same image come out in either order. The header and the set of rows
/// must be the same.
#[track_caller]
fn same_rows(s: &Strata, args: &[&str]) {
    let theirs = docker_run(args);
    let ours = s.run(args).ok();
    assert_eq!(theirs.code, 0, "docker {args:?}: {}", theirs.stderr);
    let rows = |text: &str| {
        let masked = mask_relative_times(text);
        let mut lines: Vec<String> = masked.lines().map(str::to_string).collect();
        let header = lines.remove(0);
        lines.sort();
        (header, lines)
    };
    assert_eq!(
        rows(&ours.stdout),
        rows(&theirs.stdout),
        "strata {args:?} differs from docker (left strata, right docker)"
    );
}

/// docker's inspect JSON without what only a daemon has (its storage paths).
fn inspect_json(text: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    for item in v.as_array_mut().unwrap() {
        item.as_object_mut().unwrap().remove("GraphDriver");
    }
    v
}

/// Removes every tag of our test repositories from the daemon (other runs
/// may have left some), so RepoTags and tag times start clean.
fn clean_docker() {
    docker_run(&["container", "prune", "-f"]);
    // Every name of our images goes, whatever repository other runs gave
    // them: removing by ID drops all tags and the tag times.
    let ids = Strata::new();
    for a in [
        fixture("debian-docker.tar"),
        fixture("seed-nginx-docker.tar"),
        demo_archive(),
    ] {
        ids.run(&["load", "-i", a.to_str().unwrap()]).ok();
    }
    for id in ids.run(&["images", "--no-trunc", "-q"]).ok().stdout.lines() {
        docker_run(&["rmi", "-f", id]);
    }
    for repo in [
        "peers/debian",
        "nginx",
        "strata-demo/hello",
        "test_nginx",
        "strata-saved/debian",
    ] {
        let tags = docker_run(&["images", "--format", "{{.Repository}}:{{.Tag}}", repo]).stdout;
        for tag in tags.lines() {
            docker_run(&["rmi", "-f", tag]);
        }
    }
}

#[test]
fn strata_prints_what_docker_prints() {
    let _docker = common::docker_lock();
    clean_docker();
    let s = Strata::new();
    let archives = [
        fixture("debian-docker.tar"),
        fixture("seed-nginx-docker.tar"),
        demo_archive(),
    ];
    for a in &archives {
        let path = a.to_str().unwrap();
        let theirs = docker_run(&["load", "-i", path]);
        let ours = s.run(&["load", "-i", path]).ok();
        assert_eq!(ours.stdout, theirs.stdout, "load output for {path}");
    }

    // images: the three repositories, the whole table filtered to them.
    for repo in ["peers/debian", "nginx", "strata-demo/hello"] {
        same(&s, &["images", repo]);
        same(&s, &["images", "--digests", repo]);
        same(&s, &["images", "--no-trunc", repo]);
        same(&s, &["images", "-q", repo]);
        same(&s, &["images", "--format", "{{json .}}", repo]);
        same(
            &s,
            &[
                "images",
                "--format",
                "table {{.Repository}}\t{{.ID}}\t{{.Size}}",
                repo,
            ],
        );
    }

    // history in every mode, and inspect.
    for name in NAMES {
        same(&s, &["history", name]);
        same(&s, &["history", "--no-trunc", name]);
        same(&s, &["history", "-H=false", name]);
        same(&s, &["history", "-q", name]);
        same(&s, &["history", "--format", "{{json .}}", name]);
        let theirs = inspect_json(&docker_run(&["inspect", name]).stdout);
        let ours = inspect_json(&s.run(&["inspect", name]).ok().stdout);
        assert_eq!(ours, theirs, "inspect {name} (left strata, right docker)");
        same(
            &s,
            &[
                "inspect",
                "--format",
                "{{.Id}} {{.Os}} {{.Size}} {{json .Config.Env}} {{.RootFS.Layers}}",
                name,
            ],
        );
    }

    // tag, then rmi by name: the same Untagged and Deleted lines (chain IDs).
    let args = ["tag", "nginx", "test_nginx:v1.0"];
    let theirs = docker_run(&args);
    let ours = s.run(&args).ok();
    assert_eq!((ours.stdout, ours.code), (theirs.stdout, theirs.code));
    same_rows(&s, &["images", "--filter", "reference=*nginx*"]);
    let theirs = inspect_json(&docker_run(&["inspect", "nginx"]).stdout);
    let ours = inspect_json(&s.run(&["inspect", "nginx"]).ok().stdout);
    assert_eq!(ours[0]["RepoTags"], theirs[0]["RepoTags"]);
    same(&s, &["rmi", "test_nginx:v1.0"]);
    same(&s, &["rmi", "nginx"]);
    for args in [
        &["history", "nosuch"][..],
        &["rmi", "nosuch"][..],
        &["tag", "nosuch", "x"][..],
        &["inspect", "nosuch"][..],
    ] {
        let theirs = docker_run(args);
        let ours = s.run(args);
        assert_eq!(ours.code, theirs.code, "{args:?}");
        // strata has no daemon: docker's "Error response from daemon: " is "Error: " here.
        assert_eq!(
            ours.stderr,
            theirs
                .stderr
                .replace("Error response from daemon: ", "Error: "),
            "{args:?}"
        );
    }
}

#[test]
fn docker_loads_and_runs_what_strata_saves_and_strata_loads_what_docker_saves() {
    let _docker = common::docker_lock();
    clean_docker();
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    s.run(&["tag", "peers/debian:bookworm", "strata-saved/debian:v1"])
        .ok();
    let saved = s.path("for-docker.tar");
    s.run(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        "strata-saved/debian:v1",
    ])
    .ok();
    let id = s
        .run(&["images", "--no-trunc", "-q", "strata-saved/debian:v1"])
        .ok()
        .stdout;

    docker_run(&["rmi", "-f", "strata-saved/debian:v1"]);
    let loaded = docker_run(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "docker load: {}", loaded.stderr);
    assert_eq!(loaded.stdout, "Loaded image: strata-saved/debian:v1\n");
    let their_id = docker_run(&["images", "--no-trunc", "-q", "strata-saved/debian:v1"]).stdout;
    assert_eq!(their_id, id);
    let run = docker_run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "strata-saved/debian:v1",
        "cat",
        "/etc/debian_version",
    ]);
    assert_eq!(run.code, 0, "docker run: {}", run.stderr);
    assert!(run.stdout.starts_with("12."), "{}", run.stdout);
    // The opaque directory of the top layer hides what lay below it.
    let opaque = docker_run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "strata-saved/debian:v1",
        "ls",
        "/etc/strata-opaque",
    ]);
    assert_eq!(opaque.stdout, "c\n");

    // And back: docker saves (its legacy layout), strata loads, same ID.
    let from_docker = s.path("from-docker.tar");
    let out = docker_run(&[
        "save",
        "-o",
        from_docker.to_str().unwrap(),
        "strata-saved/debian:v1",
    ]);
    assert_eq!(out.code, 0, "docker save: {}", out.stderr);
    let other = Strata::new();
    assert_eq!(
        other
            .run(&["load", "-i", from_docker.to_str().unwrap()])
            .ok()
            .stdout,
        "Loaded image: strata-saved/debian:v1\n"
    );
    assert_eq!(other.run(&["images", "--no-trunc", "-q"]).ok().stdout, id);
    // A docker-saved archive through standard input, as `docker save | strata load`.
    let third = Strata::new();
    third.run_stdin(&["load"], &from_docker).ok();
    assert_eq!(third.run(&["images", "--no-trunc", "-q"]).ok().stdout, id);
    docker_run(&["rmi", "-f", "strata-saved/debian:v1"]);
}

/// Times in the local zone (`images` CreatedAt, `history --human=false`)
/// match the docker client's, which is Go's `time.Local`, for zone names,
/// paths, a `:` prefix, zones without a letter abbreviation, and a `TZ` that
/// names nothing (Go falls back to UTC).
#[test]
fn local_times_match_docker_in_any_zone() {
    let _docker = common::docker_lock();
    let s = Strata::new();
    let archive = fixture("debian-docker.tar");
    s.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    let loaded = docker_run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    let image = "peers/debian:bookworm";
    for tz in [
        "Europe/Berlin",
        "America/Los_Angeles",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        ":Europe/Paris",
        "/usr/share/zoneinfo/Asia/Tokyo",
        "Nowhere/Nope",
        "",
    ] {
        for args in [
            &["images", "--format", "{{.CreatedAt}}", image][..],
            &[
                "history",
                "--human=false",
                "--format",
                "{{.CreatedAt}}",
                image,
            ][..],
        ] {
            let theirs = common::output(common::docker().env("TZ", tz).args(args)).ok();
            let ours = common::output(s.command().env("TZ", tz).args(args)).ok();
            assert_eq!(ours.stdout, theirs.stdout, "TZ={tz:?} {args:?}");
        }
    }
    let id = s.run(&["images", "--no-trunc", "-q"]).ok().stdout;
    docker_run(&["rmi", "-f", id.trim()]);
}
