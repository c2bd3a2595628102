//! Archives written and read back: OCI archives, choosing one image.

use std::path::Path;

use crate::copy::{self, CopyOptions};
use crate::image::Platform;
use crate::progress::Silent;
use crate::reference::Reference;
use crate::transport::Sink;
use crate::transport::layout::LayoutSource;
use crate::transport::layout::testing::{entry, image_blobs, index_blob, layout};
use crate::transport::registry::PlatformChoice;

use super::{ArchiveLayout, ArchiveSink, ArchiveSource, Input, OutputCompression};

fn members(path: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn host() -> PlatformChoice {
    PlatformChoice::One(Platform::host())
}

#[test]
fn an_oci_archive_is_a_tar_of_a_layout_named_by_its_reference() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    let amd = image_blobs(&dir, "amd64", &["amd"]);
    let arm = image_blobs(&dir, "arm64", &["arm"]);
    let idx = index_blob(&dir, &[(&amd, "amd64"), (&arm, "arm64")]);
    layout(&dir, vec![entry(&idx, Some("whatever"))]);
    let src = LayoutSource::open(&dir).unwrap();
    let all = src.resolve(None, &PlatformChoice::All).unwrap();

    let out = t.path().join("a.tar");
    let sink = ArchiveSink::new(
        "a.tar",
        std::fs::File::create(&out).unwrap(),
        OutputCompression::None,
    )
    .unwrap()
    .with_layout(ArchiveLayout::Oci)
    .with_reference("v1")
    .unwrap();
    let name = Reference::parse("example.com/multi:2").unwrap();
    copy::copy(&src, &sink, &all, &[name], &CopyOptions::default(), &Silent).unwrap();
    sink.commit().unwrap();

    let names = members(&out);
    assert!(names.contains(&"oci-layout".to_string()), "{names:?}");
    assert!(names.contains(&"index.json".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "manifest.json" || n == "repositories"),
        "{names:?}"
    );

    let back = ArchiveSource::open(&Input::Path(out), t.path()).unwrap();
    assert_eq!(back.images().len(), 1);
    assert_eq!(back.images()[0].ref_names, ["v1"]);
    let arm64 = PlatformChoice::One(Platform::parse("linux/arm64").unwrap());
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
    assert_eq!(back.resolve(None, &arm64).unwrap().digest(), &arm.digest);
    let e = back
        .resolve(
            None,
            &PlatformChoice::One(Platform::parse("linux/s390x").unwrap()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("no image for platform linux/s390x"), "{e}");
    assert!(
        back.resolve(Some("v2"), &host())
            .unwrap_err()
            .to_string()
            .ends_with("no image named \"v2\" (the archive has v1)")
    );
}

#[test]
fn images_are_chosen_by_tag_full_name_or_alone() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    let a = image_blobs(&dir, "amd64", &["a"]);
    let b = image_blobs(&dir, "amd64", &["b"]);
    layout(&dir, vec![entry(&a, Some("a")), entry(&b, Some("b"))]);
    let src = LayoutSource::open(&dir).unwrap();

    // docker's layout, two images with full names.
    let out = t.path().join("d.tar");
    let sink = ArchiveSink::new(
        "d.tar",
        std::fs::File::create(&out).unwrap(),
        OutputCompression::None,
    )
    .unwrap();
    for (r, name) in [("a", "example.com/a:1"), ("b", "example.com/b:2")] {
        let what = src.resolve(Some(r), &host()).unwrap();
        let name = Reference::parse(name).unwrap();
        copy::copy(
            &src,
            &sink,
            &what,
            &[name],
            &CopyOptions::default(),
            &Silent,
        )
        .unwrap();
    }
    sink.commit().unwrap();
    assert!(members(&out).contains(&"manifest.json".to_string()));
    let back = ArchiveSource::open(&Input::Path(out), t.path()).unwrap();
    let pick = |r: Option<&str>| back.resolve(r, &host()).map(|c| c.digest().clone());
    assert_eq!(pick(Some("example.com/b:2")).unwrap(), b.digest);
    assert_eq!(
        pick(Some("1")).unwrap(),
        a.digest,
        "the tag alone, as ref.name"
    );
    let e = pick(None).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "holds 2 images (1 (example.com/a:1), 2 (example.com/b:2)); name the one to use"
        ),
        "{e}"
    );
    let e = pick(Some("example.com/c:3")).unwrap_err().to_string();
    assert!(e.contains("no image named \"example.com/c:3\""), "{e}");

    // One reference for several images: the last one keeps it.
    let out = t.path().join("o.tar");
    let sink = ArchiveSink::new(
        "o.tar",
        std::fs::File::create(&out).unwrap(),
        OutputCompression::None,
    )
    .unwrap()
    .with_layout(ArchiveLayout::Oci)
    .with_reference("latest")
    .unwrap();
    for r in ["a", "b"] {
        let what = src.resolve(Some(r), &host()).unwrap();
        copy::copy(&src, &sink, &what, &[], &CopyOptions::default(), &Silent).unwrap();
    }
    sink.commit().unwrap();
    let back = ArchiveSource::open(&Input::Path(out), t.path()).unwrap();
    assert_eq!(back.images().len(), 1);
    assert_eq!(
        back.resolve(Some("latest"), &host()).unwrap().digest(),
        &b.digest
    );

    let bad = ArchiveSink::new(
        "x.tar",
        std::fs::File::create(t.path().join("x.tar")).unwrap(),
        OutputCompression::None,
    )
    .unwrap()
    .with_reference("no spaces");
    assert!(bad.is_err());
}

/// A member announcing more bytes than any file holds (GNU base-256 sizes
/// reach 2^64) is refused as a truncated archive, not added up past the
/// end of u64.
#[test]
fn a_member_announcing_an_absurd_size_is_refused() {
    let t = tempfile::tempdir().unwrap();
    for size in [u64::MAX, u64::MAX - 511, 1 << 62] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(2);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size);
        h.set_path("index.json").unwrap();
        h.set_cksum();
        // The header alone: its data is nowhere.
        b.append(&h, std::io::empty()).unwrap();
        let path = t.path().join("absurd.tar");
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        let err = ArchiveSource::open(&Input::Path(path.clone()), t.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("truncated") || err.contains("corrupt"),
            "{size}: {err}"
        );
    }
}

#[test]
fn a_compressed_archive_is_made_and_read_back() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    let a = image_blobs(&dir, "amd64", &["a"]);
    layout(&dir, vec![entry(&a, Some("a"))]);
    let src = LayoutSource::open(&dir).unwrap();
    for (compression, magic) in [
        (OutputCompression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd][..]),
        (OutputCompression::Gzip, &[0x1f, 0x8b][..]),
    ] {
        let out = t.path().join("c.tar");
        let sink =
            ArchiveSink::new("c.tar", std::fs::File::create(&out).unwrap(), compression).unwrap();
        let what = src.resolve(Some("a"), &host()).unwrap();
        let name = Reference::parse("example.com/a:1").unwrap();
        copy::copy(
            &src,
            &sink,
            &what,
            &[name],
            &CopyOptions::default(),
            &Silent,
        )
        .unwrap();
        sink.commit().unwrap();
        assert!(std::fs::read(&out).unwrap().starts_with(magic));
        let back = ArchiveSource::open(&Input::Path(out), t.path()).unwrap();
        let found = back.resolve(Some("example.com/a:1"), &host()).unwrap();
        assert_eq!(found.digest(), &a.digest);
    }
}
