//! What a running command reads stays in the store until it ends: an
//! `rmi` of an image being saved removes its names at once, its blobs only
//! when the save is done.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Strata, fixture};

const IMAGE: &str = "peers/debian:bookworm";
const ID: &str = "a7941c22ff31";

#[test]
fn an_image_removed_while_it_is_saved_is_saved_whole() {
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let mut save = s
        .command()
        .args(["save", IMAGE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = save.stdout.take().unwrap();
    // The archive's first megabyte: the save has begun, and waits on the
    // pipe with most of its four layers not yet opened.
    let mut archive = vec![0; 1 << 20];
    stdout.read_exact(&mut archive).unwrap();

    let removed = s.run(&["rmi", IMAGE]).ok();
    assert!(removed.stdout.contains("Untagged: peers/debian:bookworm"));
    assert!(removed.stdout.contains("Deleted: sha256:"));
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "");

    stdout.read_to_end(&mut archive).unwrap();
    let out = save.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the save failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The lease ended with the save, and the blobs went with it.
    let leases = s.root().join(".strata/leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    // The next collection (any removal) takes them.
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    let blobs = std::fs::read_dir(s.root().join("blobs/sha256")).unwrap();
    assert_eq!(blobs.count(), 0, "the removed image's blobs are collected");

    // The archive is whole: a fresh store loads it as the same image.
    let path = s.path("saved.tar");
    std::fs::write(&path, &archive).unwrap();
    let other = Strata::new();
    let loaded = other.run(&["load", "-i", path.to_str().unwrap()]).ok();
    assert_eq!(loaded.stdout, format!("Loaded image: {IMAGE}\n"));
    assert_eq!(other.run(&["images", "-q"]).ok().stdout, format!("{ID}\n"));
    other.run(&["history", IMAGE]).ok();
}
