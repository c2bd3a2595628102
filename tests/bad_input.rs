//! Bad input: each broken archive or store gives a one-line error that
//! names the problem, a non-zero exit, and leaves the store as it was.

mod common;

use std::io::Read;
use std::path::Path;

use common::{Strata, demo_archive};

/// Copies a tar archive member by member; `edit` may replace a member's
/// bytes (`Some`) or drop it (`Some(None)`).
fn rewrite(src: &Path, dst: &Path, mut edit: impl FnMut(&str, &[u8]) -> Option<Option<Vec<u8>>>) {
    let mut input = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(dst).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        match edit(&path, &data) {
            Some(None) => continue,
            Some(Some(new)) => {
                header.set_size(new.len() as u64);
                header.set_cksum();
                out.append(&header, &new[..]).unwrap();
            }
            None => out.append(&header, &data[..]).unwrap(),
        }
    }
    out.finish().unwrap();
}

/// A store holding the demo image, and an archive of it in docker's current layout.
fn setup() -> (Strata, std::path::PathBuf) {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    let saved = s.path("saved.tar");
    s.run(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        "strata-demo/hello:1.0",
    ])
    .ok();
    s.run(&["tag", "strata-demo/hello:1.0", "before:1"]).ok();
    (s, saved)
}

/// Like [`setup`], but the store is emptied again, so a later load must
/// read every blob from the archive rather than find it present.
fn setup_empty() -> (Strata, std::path::PathBuf) {
    let (s, saved) = setup();
    s.run(&["rmi", "-f", "b1dcaf3cc163"]).ok();
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "");
    (s, saved)
}

fn layer_members(archive: &Path) -> Vec<String> {
    let manifest = common::peer("tar", &["xOf", archive.to_str().unwrap(), "manifest.json"]);
    let v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    v[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Loads `archive` into a store that already has an image, expecting a
/// one-line error containing `needle` and no change to the store.
#[track_caller]
fn refused(s: &Strata, archive: &Path, needle: &str) -> String {
    let before = s.snapshot();
    let out = s.run(&["load", "-i", archive.to_str().unwrap()]).fails();
    assert!(
        out.stderr.contains(needle),
        "expected {needle:?} in: {}",
        out.stderr
    );
    assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
    assert_eq!(
        s.snapshot(),
        before,
        "the store changed after a refused load"
    );
    // The ingest area holds nothing half-written.
    assert_eq!(
        std::fs::read_dir(s.root().join(".strata/ingest"))
            .unwrap()
            .count(),
        0
    );
    out.stderr
}

#[test]
fn a_truncated_archive_is_refused() {
    let (s, saved) = setup();
    let bytes = std::fs::read(&saved).unwrap();
    let cut = s.path("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused(&s, &cut, "truncated");
    assert!(err.contains("cut.tar"), "names the archive: {err}");
}

#[test]
fn a_truncated_compressed_archive_is_refused() {
    let (s, saved) = setup();
    let gz = common::peer(
        "sh",
        &["-c", &format!("gzip -c {} | base64 -w0", saved.display())],
    );
    let bytes = base64_decode(&gz);
    let cut = s.path("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(&s, &cut, "cut.tar.gz");
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let (s, saved) = setup_empty();
    let layer = layer_members(&saved)[1].clone();
    let bad = s.path("bad-layer.tar");
    rewrite(&saved, &bad, |path, data| {
        (path == layer).then(|| {
            let mut d = data.to_vec();
            // Same size, different content: a file's byte inside the layer tar.
            d[600] ^= 0x20;
            Some(d)
        })
    });
    let err = refused(&s, &bad, "does not match its digest");
    assert!(
        err.contains(layer.trim_start_matches("blobs/sha256/")),
        "names the layer: {err}"
    );
}

#[test]
fn a_legacy_layer_that_does_not_match_its_diff_id_is_refused() {
    let (s, _) = setup_empty();
    let bad = s.path("bad-legacy.tar");
    // The demo archive is skopeo's legacy layout: <digest>.tar layer files.
    rewrite(&demo_archive(), &bad, |path, data| {
        (path.ends_with(".tar") && !path.contains('/')).then(|| {
            let mut d = data.to_vec();
            d[600] ^= 0x20;
            Some(d)
        })
    });
    let err = refused(&s, &bad, "does not match");
    // The archive's content is wrong, not the store that refused it.
    assert!(err.starts_with("Error: archive "), "{err}");
    assert!(err.contains("bad-legacy.tar"), "names the archive: {err}");
}

#[test]
fn a_manifest_naming_a_missing_blob_is_refused() {
    let (s, saved) = setup();
    let layer = layer_members(&saved)[0].clone();
    let bad = s.path("missing-blob.tar");
    rewrite(&saved, &bad, |path, _| (path == layer).then_some(None));
    let err = refused(&s, &bad, "does not contain");
    assert!(err.contains(&layer), "names the blob: {err}");
}

#[test]
fn a_file_that_is_not_an_archive_is_refused() {
    let (s, _) = setup();
    let text = s.path("notes.txt");
    std::fs::write(
        &text,
        "these are not the layers you are looking for\n".repeat(40),
    )
    .unwrap();
    refused(&s, &text, "is not an image archive");
    let empty = s.path("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    refused(&s, &empty, "is not an image archive");
    let json = s.path("manifest-only.tar");
    rewrite(&demo_archive(), &json, |path, _| {
        (path != "manifest.json").then_some(None)
    });
    let broken = s.path("broken-manifest.tar");
    rewrite(&json, &broken, |path, _| {
        (path == "manifest.json").then(|| Some(b"[{\"Config\": 42}]".to_vec()))
    });
    refused(&s, &broken, "manifest.json is invalid");
}

#[test]
fn unknown_names_are_reported_as_docker_does() {
    let (s, _) = setup();
    let before = s.snapshot();
    for (args, err) in [
        (
            &["history", "nosuch"][..],
            "Error: No such image: nosuch:latest\n",
        ),
        (
            &["tag", "nosuch", "x"][..],
            "Error: No such image: nosuch:latest\n",
        ),
        (
            &["save", "-o", "/tmp/strata-never-written.tar", "nosuch:1"][..],
            "Error: No such image: nosuch:1\n",
        ),
        (&["rmi", "nosuch"][..], "Error: No such image: nosuch\n"),
        (
            &["inspect", "nosuch"][..],
            "Error: No such object: nosuch\n",
        ),
    ] {
        let out = s.run(args).fails();
        assert_eq!(out.stderr, err, "{args:?}");
        assert_eq!(out.code, 1, "{args:?}");
    }
    let out = s.run(&["tag", "strata-demo/hello:1.0", "Bad/Name"]).fails();
    assert!(
        out.stderr.contains("repository name must be lowercase"),
        "{}",
        out.stderr
    );
    assert_eq!(s.snapshot(), before);
}

#[test]
fn a_corrupt_index_json_is_reported_and_left_alone() {
    let (s, saved) = setup();
    let index = s.root().join("index.json");
    std::fs::write(
        &index,
        b"{\"schemaVersion\": 2, \"manifests\": [ {\"mediaType\": ",
    )
    .unwrap();
    let before = s.snapshot();
    for args in [
        &["images"][..],
        &["tag", "before:1", "after:1"][..],
        &["rmi", "before:1"][..],
    ] {
        let out = s.run(args).fails();
        assert!(
            out.stderr.contains("index.json is corrupt"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = s.run(&["load", "-i", saved.to_str().unwrap()]).fails();
    assert!(
        out.stderr.contains("index.json is corrupt"),
        "{}",
        out.stderr
    );
    assert_eq!(s.snapshot(), before);
}

fn base64_decode(text: &str) -> Vec<u8> {
    let table = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (table(c) as u32) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}
