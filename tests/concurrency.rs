//! Several strata processes loading, tagging and removing in one store at
//! once lose nothing: every name any of them set is there afterwards.

mod common;

use std::process::Child;

use common::{Strata, demo_archive};

fn spawn(s: &Strata, args: &[&str]) -> Child {
    s.command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a strata that must succeed; its stdout and stderr.
fn wait_ok(child: Child) -> (String, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "a concurrent strata failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn parallel_loads_and_tags_lose_no_name() {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let archive = demo_archive();
    let archive = archive.to_str().unwrap();
    let mut children = Vec::new();
    for round in 0..6 {
        children.push(spawn(&s, &["load", "-i", archive]));
        for t in 0..5 {
            let name = format!("par/tag{round}:{t}");
            children.push(spawn(&s, &["tag", "strata-demo/hello:1.0", &name]));
        }
    }
    for c in children {
        wait_ok(c);
    }
    let names = s
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .stdout;
    let mut expected: Vec<String> = (0..6)
        .flat_map(|r| (0..5).map(move |t| format!("par/tag{r}:{t}")))
        .collect();
    expected.push("strata-demo/hello:1.0".into());
    expected.sort();
    let mut got: Vec<String> = names.lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, expected);
    // index.json lists each name once.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), expected.len());
    // The ingest area is empty: no half-written blob was left behind.
    assert_eq!(
        std::fs::read_dir(s.root().join(".strata/ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn removals_beside_loads_never_leave_a_name_without_its_blobs() {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let archive = demo_archive();
    let archive = archive.to_str().unwrap();
    for _ in 0..8 {
        let a = spawn(&s, &["load", "-i", archive]);
        let b = spawn(&s, &["rmi", "-f", "strata-demo/hello:1.0"]);
        // Either may win, and neither may corrupt the store. The load
        // always succeeds: a blob it found already stored is pinned by the
        // load, so a collection beside it cannot take it away.
        let load = a.wait_with_output().unwrap();
        let load_err = String::from_utf8_lossy(&load.stderr).into_owned();
        assert!(load.status.success(), "load beside rmi failed: {load_err}");
        assert_eq!(
            String::from_utf8_lossy(&load.stdout),
            "Loaded image: strata-demo/hello:1.0\n"
        );
        let (untagged, warned) = wait_ok(b);
        // rmi -f found the image (and untagged it), or found none (a
        // warning, as docker gives); then the load came after it.
        let removed = untagged.starts_with("Untagged: strata-demo/hello:1.0\n");
        assert!(
            removed || warned.contains("No such image: strata-demo/hello:1.0"),
            "rmi -f: {untagged}{warned}"
        );
        let listed = s.run(&["images", "-q"]).ok().stdout;
        if !removed {
            assert_eq!(listed.trim(), "b1dcaf3cc163", "rmi removed nothing");
        }
        if listed.trim() == "b1dcaf3cc163" {
            // A listed image can be read whole: history needs every layer's size.
            s.run(&["history", "strata-demo/hello:1.0"]).ok();
            let out = s.path("check.tar");
            s.run(&["save", "-o", out.to_str().unwrap(), "strata-demo/hello:1.0"])
                .ok();
        } else {
            assert_eq!(listed, "");
        }
    }
}

#[test]
fn garbage_collection_clears_what_crashed_processes_left_in_the_ingest_area() {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let ingest = s.root().join(".strata/ingest");
    // A process that ran and is gone: its pid is free once it was reaped.
    let gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    let mut gone = gone;
    gone.wait().unwrap();
    let dead = ingest.join(format!("blob-{dead_pid}-0-0000abcd"));
    let alive = ingest.join(format!("blob-{}-0-0000abcd", std::process::id()));
    std::fs::write(&dead, b"half a layer").unwrap();
    std::fs::write(&alive, b"a layer being written").unwrap();
    s.run(&["tag", "strata-demo/hello:1.0", "x:1"]).ok();
    s.run(&["rmi", "x:1"]).ok();
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    assert!(!dead.exists(), "a dead process's temporary file is swept");
    assert!(
        alive.exists(),
        "a live process's temporary file is left alone"
    );
}

#[test]
fn a_killed_load_leaves_nothing_once_any_writing_command_runs() {
    use std::io::Write;
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let ingest = s.root().join(".strata/ingest");
    // Half an archive on a pipe: load spools it into the ingest area and
    // waits for the rest, where it is killed.
    let archive = std::fs::read(demo_archive()).unwrap();
    let mut child = s
        .command()
        .args(["load"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&archive[..archive.len() / 2]).unwrap();
    stdin.flush().unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&ingest).unwrap().count() == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "load never wrote to the ingest area"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let left: Vec<_> = std::fs::read_dir(&ingest).unwrap().flatten().collect();
    assert!(!left.is_empty(), "the killed load left its spool file");
    // A reading command leaves it (it writes nothing); a writing one that
    // deletes nothing sweeps it.
    s.run(&["images"]).ok();
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), left.len());
    s.run(&["tag", "strata-demo/hello:1.0", "swept:1"]).ok();
    assert_eq!(
        std::fs::read_dir(&ingest).unwrap().count(),
        0,
        "tag swept the killed load's files"
    );
}
