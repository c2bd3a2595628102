//! Layout round trips in temporary directories.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::testing::{entry, image_blobs, index_blob, layout};
use super::*;
use crate::copy::{self, CopyOptions, Copyable};
use crate::digest::sha256_of;
use crate::image::{self, Platform};
use crate::progress::{BlobKind, Silent};
use crate::transport::registry::PlatformChoice;
use crate::transport::store::Store;
use crate::transport::{Sink, Source, TransportError};

/// Every file under `dir` with its content's digest.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
                out.push((p, String::new()));
            } else {
                out.push((
                    p.clone(),
                    sha256_of(&std::fs::read(&p).unwrap()).to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn index_entries(dir: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    v["manifests"].as_array().unwrap().clone()
}

fn ref_names(dir: &Path) -> Vec<String> {
    index_entries(dir)
        .iter()
        .map(|e| {
            e["annotations"][ANNOTATION_REF_NAME]
                .as_str()
                .unwrap_or("-")
                .to_string()
        })
        .collect()
}

fn host() -> PlatformChoice {
    PlatformChoice::One(Platform::host())
}

fn copy_into(
    source: &dyn Source,
    sink: &dyn Sink,
    what: &Copyable,
    names: &[crate::reference::Reference],
) {
    copy::copy(source, sink, what, names, &CopyOptions::default(), &Silent).unwrap();
    sink.commit().unwrap();
}

#[test]
fn ref_names_follow_the_oci_grammar() {
    for good in [
        "v1",
        "bookworm",
        "1.0-rc.1",
        "a--b",
        "docker.io/library/debian:bookworm",
        "x@sha256:ab",
        "A+b",
    ] {
        assert!(is_ref_name(good), "{good}");
    }
    for bad in ["", "-v1", "v1.", "a/", "/a", "a__b", "a b", "a..b", "ü"] {
        assert!(!is_ref_name(bad), "{bad}");
    }
}

#[test]
fn source_picks_by_tag_full_name_digest_or_the_only_image() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    let a = image_blobs(&dir, "amd64", &["a"]);
    let b = image_blobs(&dir, "amd64", &["b"]);
    layout(
        &dir,
        vec![
            entry(&a, Some("bookworm")),
            entry(&b, Some("docker.io/peers/debian:trixie")),
        ],
    );
    let src = LayoutSource::open(&dir).unwrap();
    let digest_of = |r: Option<&str>| src.resolve(r, &host()).map(|c| c.digest().clone());
    assert_eq!(digest_of(Some("bookworm")).unwrap(), a.digest);
    assert_eq!(
        digest_of(Some("docker.io/peers/debian:trixie")).unwrap(),
        b.digest
    );
    assert_eq!(digest_of(Some("peers/debian:trixie")).unwrap(), b.digest);
    assert_eq!(digest_of(Some(b.digest.as_ref())).unwrap(), b.digest);
    let e = digest_of(Some("sid")).unwrap_err().to_string();
    assert!(
        e.contains("no image named \"sid\"")
            && e.contains("bookworm, docker.io/peers/debian:trixie"),
        "{e}"
    );
    let e = digest_of(None).unwrap_err().to_string();
    assert!(
        e.contains("holds 2 images (bookworm, docker.io/peers/debian:trixie)"),
        "{e}"
    );

    // Alone, an image needs no name; the manifest's bytes are kept.
    layout(&dir, vec![entry(&a, Some("bookworm"))]);
    let src = LayoutSource::open(&dir).unwrap();
    let Copyable::Image(img) = src.resolve(None, &host()).unwrap() else {
        panic!("an image")
    };
    assert_eq!(img.manifest(), &a);
    assert_eq!(img.layers().len(), 1);
}

#[test]
fn source_refuses_what_is_not_a_layout_and_missing_blobs() {
    let t = tempfile::tempdir().unwrap();
    let e = LayoutSource::open(t.path().join("none"))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("is not an OCI image layout: no such directory"),
        "{e}"
    );
    let e = LayoutSource::open(t.path()).unwrap_err().to_string();
    assert!(e.ends_with("has no oci-layout file"), "{e}");
    std::fs::write(
        t.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let e = LayoutSource::open(t.path()).unwrap_err().to_string();
    assert!(e.contains("image layout version \"2.0.0\""), "{e}");
    std::fs::write(t.path().join("oci-layout"), OCI_LAYOUT_FILE).unwrap();
    let e = LayoutSource::open(t.path()).unwrap_err().to_string();
    assert!(e.ends_with("has no index.json"), "{e}");
    std::fs::write(t.path().join("index.json"), b"{").unwrap();
    let e = LayoutSource::open(t.path()).unwrap_err().to_string();
    assert!(e.contains("index.json is invalid"), "{e}");

    let m = image_blobs(t.path(), "amd64", &["x"]);
    layout(t.path(), vec![entry(&m, Some("x"))]);
    let parsed: Value = serde_json::from_slice(&m.bytes).unwrap();
    let layer = crate::digest::parse(parsed["layers"][0]["digest"].as_str().unwrap()).unwrap();
    std::fs::remove_file(blob_path(t.path(), &layer)).unwrap();
    let e = LayoutSource::open(t.path())
        .unwrap()
        .resolve(Some("x"), &host())
        .unwrap_err();
    assert!(
        matches!(e, TransportError::BlobNotFound { ref digest, .. } if *digest == layer),
        "{e}"
    );
}

#[test]
fn layout_to_new_layout_keeps_digests_and_bytes() {
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let m = image_blobs(&from, "amd64", &["one", "two"]);
    layout(&from, vec![entry(&m, Some("bookworm"))]);
    let src = LayoutSource::open(&from).unwrap();
    let what = src.resolve(Some("bookworm"), &host()).unwrap();

    let to = t.path().join("new/dir");
    let sink = LayoutSink::create(&to)
        .unwrap()
        .with_reference("v1")
        .unwrap();
    copy_into(&src, &sink, &what, &[]);
    drop(sink);

    assert_eq!(
        std::fs::read(to.join("oci-layout")).unwrap(),
        OCI_LAYOUT_FILE
    );
    assert_eq!(ref_names(&to), ["v1"]);
    let back = LayoutSource::open(&to).unwrap();
    let again = back.resolve(Some("v1"), &host()).unwrap();
    assert_eq!(again.digest(), &m.digest);
    for img in what.images() {
        for l in img.layers() {
            let d = l.descriptor.digest();
            assert_eq!(
                std::fs::read(blob_path(&to, d)).unwrap(),
                std::fs::read(blob_path(&from, d)).unwrap()
            );
        }
    }
    // The entry has the manifest's media type, though the manifest has none.
    assert_eq!(index_entries(&to)[0]["mediaType"], image::OCI_MANIFEST);
    // Nothing staged is left behind.
    assert_eq!(
        std::fs::read_dir(to.join(".strata")).unwrap().count(),
        1,
        "only the lock file"
    );
}

#[test]
fn names_from_the_store_become_tags_and_same_names_are_replaced() {
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let first = image_blobs(&from, "amd64", &["first"]);
    let second = image_blobs(&from, "amd64", &["second"]);
    layout(
        &from,
        vec![entry(&first, Some("a")), entry(&second, Some("b"))],
    );
    let src = LayoutSource::open(&from).unwrap();

    // Through the store: its full names turn into tags in the layout.
    let store = Store::open(t.path().join("store")).unwrap();
    let name = crate::reference::Reference::parse("example.com/app:1.0").unwrap();
    let ss = store.sink();
    copy_into(
        &src,
        &ss,
        &src.resolve(Some("a"), &host()).unwrap(),
        std::slice::from_ref(&name),
    );
    drop(ss);
    let stored = store.lookup("example.com/app:1.0").unwrap();
    assert_eq!(stored.descriptor.digest(), &first.digest);

    let to = t.path().join("to");
    // An existing layout with an entry of its own, fields strata does not
    // know included, which must survive.
    let other = image_blobs(&to, "amd64", &["other"]);
    let mut kept = entry(&other, Some("keep"));
    kept["annotations"]["org.example.note"] = json!("hello");
    layout(&to, vec![kept.clone(), entry(&other, Some("1.0"))]);
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(to.join("index.json")).unwrap()).unwrap();
    index["annotations"] = json!({"org.example.layout": "yes"});
    std::fs::write(to.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    let sink = LayoutSink::create(&to).unwrap();
    copy_into(
        &store,
        &sink,
        &Copyable::Image(Box::new(stored.image.clone())),
        std::slice::from_ref(&name),
    );
    drop(sink);
    let entries = index_entries(&to);
    assert_eq!(ref_names(&to), ["keep", "1.0"], "{entries:?}");
    assert_eq!(entries[0], kept);
    assert_eq!(entries[1]["digest"], first.digest.to_string());
    assert_eq!(
        entries[1]["annotations"][crate::transport::store::ANNOTATION_IMAGE_NAME],
        "example.com/app:1.0"
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(to.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["annotations"]["org.example.layout"], "yes");

    // The same tag again, another image: the entry is replaced, not added.
    let sink = LayoutSink::create(&to)
        .unwrap()
        .with_reference("1.0")
        .unwrap();
    copy_into(&src, &sink, &src.resolve(Some("b"), &host()).unwrap(), &[]);
    drop(sink);
    assert_eq!(ref_names(&to), ["keep", "1.0"]);
    assert_eq!(index_entries(&to)[1]["digest"], second.digest.to_string());
    let back = LayoutSource::open(&to).unwrap();
    assert_eq!(
        back.resolve(Some("1.0"), &host()).unwrap().digest(),
        &second.digest
    );

    // Unnamed, an image already listed is not listed twice; a new one is added.
    let sink = LayoutSink::create(&to).unwrap();
    copy_into(&src, &sink, &src.resolve(Some("b"), &host()).unwrap(), &[]);
    drop(sink);
    assert_eq!(ref_names(&to), ["keep", "1.0"]);
    let sink = LayoutSink::create(&to).unwrap();
    copy_into(&src, &sink, &src.resolve(Some("a"), &host()).unwrap(), &[]);
    drop(sink);
    assert_eq!(ref_names(&to), ["keep", "1.0", "-"]);
}

#[test]
fn a_failed_or_abandoned_write_leaves_the_layout_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let m = image_blobs(&from, "amd64", &["payload"]);
    layout(&from, vec![entry(&m, Some("x"))]);
    let src = LayoutSource::open(&from).unwrap();
    let what = src.resolve(None, &host()).unwrap();
    let Copyable::Image(img) = &what else {
        panic!()
    };
    let layer_d = img.layers()[0].descriptor.clone();
    let diff_id = img.layers()[0].diff_id.clone();
    let kind = BlobKind::Layer { diff_id };

    let to = t.path().join("to");
    let existing = image_blobs(&to, "amd64", &["existing"]);
    layout(&to, vec![entry(&existing, Some("old"))]);
    let before = snapshot(&to);

    let sink = LayoutSink::create(&to).unwrap();
    // Wrong bytes, too few, too many: each refused, nothing staged.
    let e = sink
        .put_blob(
            &layer_d,
            &kind,
            &mut &b"x".repeat(layer_d.size() as usize)[..],
            &|_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("does not match its digest"), "{e}");
    let e = sink
        .put_blob(&layer_d, &kind, &mut &b"x"[..], &|_| {})
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "1 bytes where its descriptor announces {}",
            layer_d.size()
        )),
        "{e}"
    );
    let e = sink
        .put_blob(
            &layer_d,
            &kind,
            &mut &b"x".repeat(layer_d.size() as usize + 10)[..],
            &|_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
    assert_eq!(
        std::fs::read_dir(to.join(".strata/ingest"))
            .unwrap()
            .count(),
        0
    );
    // A good copy, never committed.
    copy::copy(&src, &sink, &what, &[], &CopyOptions::default(), &Silent).unwrap();
    assert!(
        std::fs::read_dir(to.join(".strata/ingest"))
            .unwrap()
            .count()
            > 0
    );
    assert_eq!(LayoutSource::open(&to).unwrap().entries().len(), 1);
    drop(sink);
    assert_eq!(snapshot(&to), before);

    // A layout that did not exist does not exist afterwards either.
    let fresh = t.path().join("fresh");
    let sink = LayoutSink::create(&fresh).unwrap();
    copy::copy(&src, &sink, &what, &[], &CopyOptions::default(), &Silent).unwrap();
    drop(sink);
    assert!(!fresh.exists());
}

#[test]
fn sink_refuses_a_directory_that_is_not_a_layout_and_bad_names() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("notes.txt"), b"mine").unwrap();
    let e = LayoutSink::create(t.path()).err().unwrap().to_string();
    assert!(e.contains("has no oci-layout file and is not empty"), "{e}");
    let e = LayoutSink::create(t.path().join("notes.txt"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.ends_with("is not a directory"), "{e}");
    let e = LayoutSink::create(t.path().join("new"))
        .unwrap()
        .with_reference("bad name")
        .err()
        .unwrap();
    assert!(matches!(e, LayoutError::InvalidRefName { .. }), "{e}");
    // An empty directory becomes a layout.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let sink = LayoutSink::create(&empty).unwrap();
    sink.commit().unwrap();
    drop(sink);
    assert!(LayoutSource::open(&empty).unwrap().entries().is_empty());
}

#[test]
fn a_multi_platform_index_gives_one_child_or_stays_whole() {
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let amd = image_blobs(&from, "amd64", &["amd"]);
    let arm = image_blobs(&from, "arm64", &["arm"]);
    let idx = index_blob(&from, &[(&amd, "amd64"), (&arm, "arm64")]);
    layout(&from, vec![entry(&idx, Some("v1"))]);
    let src = LayoutSource::open(&from).unwrap();

    let arm64 = PlatformChoice::One(Platform::parse("linux/arm64").unwrap());
    let one = src.resolve(Some("v1"), &arm64).unwrap();
    assert!(matches!(&one, Copyable::Image(i) if i.manifest().digest == arm.digest));
    let e = src
        .resolve(
            Some("v1"),
            &PlatformChoice::One(Platform::parse("linux/s390x").unwrap()),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no image for platform linux/s390x (the index has linux/amd64, linux/arm64)"),
        "{e}"
    );

    let all = src.resolve(Some("v1"), &PlatformChoice::All).unwrap();
    assert_eq!(all.images().len(), 2);
    let to = t.path().join("to");
    let sink = LayoutSink::create(&to)
        .unwrap()
        .with_reference("v1")
        .unwrap();
    copy_into(&src, &sink, &all, &[]);
    drop(sink);
    // Only the index is listed; its children are blobs.
    let entries = index_entries(&to);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], idx.digest.to_string());
    assert_eq!(entries[0]["mediaType"], image::OCI_INDEX);
    let back = LayoutSource::open(&to).unwrap();
    assert_eq!(
        back.resolve(Some("v1"), &PlatformChoice::All)
            .unwrap()
            .digest(),
        &idx.digest
    );
    assert_eq!(
        back.resolve(Some("v1"), &arm64).unwrap().digest(),
        &arm.digest
    );

    // One platform of it, copied alone, is listed as that image.
    let single = t.path().join("single");
    let sink = LayoutSink::create(&single)
        .unwrap()
        .with_reference("arm")
        .unwrap();
    copy_into(&src, &sink, &one, &[]);
    drop(sink);
    assert_eq!(index_entries(&single)[0]["digest"], arm.digest.to_string());
}

#[test]
fn commit_refuses_to_name_a_manifest_whose_blobs_vanished() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    let m = image_blobs(&dir, "amd64", &["a"]);
    layout(&dir, vec![]);
    let src = LayoutSource::open(&dir).unwrap();
    let what = Copyable::Image(Box::new(
        crate::image::Image::new(m.clone(), {
            let parsed: Value = serde_json::from_slice(&m.bytes).unwrap();
            let d = crate::digest::parse(parsed["config"]["digest"].as_str().unwrap()).unwrap();
            std::fs::read(blob_path(&dir, &d)).unwrap()
        })
        .unwrap(),
    ));
    // Into the same layout: every blob is there, so none is copied...
    let sink = LayoutSink::create(&dir)
        .unwrap()
        .with_reference("a")
        .unwrap();
    let report = copy::copy(&src, &sink, &what, &[], &CopyOptions::default(), &Silent).unwrap();
    assert!(report.copied.is_empty());
    // ...and then one disappears before commit.
    let layer = &what.images()[0].layers()[0].descriptor;
    std::fs::remove_file(blob_path(&dir, layer.digest())).unwrap();
    let e = sink.commit().unwrap_err();
    assert!(matches!(e, TransportError::BlobNotFound { .. }), "{e}");
    assert!(LayoutSource::open(&dir).unwrap().entries().is_empty());
}

#[test]
fn concurrent_commits_each_keep_their_name_and_index_json_is_replaced_whole() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let images: Vec<_> = (0..6)
        .map(|i| image_blobs(&from, "amd64", &[&format!("payload {i}")]))
        .collect();
    layout(
        &from,
        images
            .iter()
            .enumerate()
            .map(|(i, m)| entry(m, Some(&format!("n{i}"))))
            .collect(),
    );
    let src = LayoutSource::open(&from).unwrap();
    let to = t.path().join("to");
    layout(&to, vec![]);
    // Held open, the old file keeps its inode (and its number) alive.
    let mut old = std::fs::File::open(to.join("index.json")).unwrap();
    let old_bytes = std::fs::read(to.join("index.json")).unwrap();
    std::thread::scope(|s| {
        for i in 0..images.len() {
            let (src, to) = (&src, &to);
            s.spawn(move || {
                let name = format!("n{i}");
                let sink = LayoutSink::create(to)
                    .unwrap()
                    .with_reference(&name)
                    .unwrap();
                copy_into(src, &sink, &src.resolve(Some(&name), &host()).unwrap(), &[]);
            });
        }
    });
    let mut names = ref_names(&to);
    names.sort();
    assert_eq!(names, ["n0", "n1", "n2", "n3", "n4", "n5"]);
    // Written beside and renamed over, never rewritten in place.
    assert_ne!(
        std::fs::metadata(to.join("index.json")).unwrap().ino(),
        old.metadata().unwrap().ino()
    );
    let mut still = Vec::new();
    std::io::Read::read_to_end(&mut old, &mut still).unwrap();
    assert_eq!(still, old_bytes);
    let back = LayoutSource::open(&to).unwrap();
    for (i, m) in images.iter().enumerate() {
        assert_eq!(
            back.resolve(Some(&format!("n{i}")), &host())
                .unwrap()
                .digest(),
            &m.digest
        );
    }
}
