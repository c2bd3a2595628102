//! OCI image layouts and OCI archives with skopeo and umoci as peers: what
//! strata writes they read and unpack; what they write strata reads; every
//! manifest digest survives each hop.

mod common;

use std::path::Path;

use common::{Strata, fixture, peer, sha256_hex};
use strata::copy::{self, CopyOptions, Copyable};
use strata::image::Platform;
use strata::progress::Silent;
use strata::reference::Reference;
use strata::transport::archive::{
    ArchiveLayout, ArchiveSink, ArchiveSource, Input, OutputCompression,
};
use strata::transport::layout::{LayoutSink, LayoutSource};
use strata::transport::registry::PlatformChoice;
use strata::transport::store::Store;
use strata::transport::{Sink, Source};

fn host() -> PlatformChoice {
    PlatformChoice::One(Platform::host())
}

/// The digest of what skopeo reads as the raw manifest at `address`.
fn skopeo_digest(address: &str) -> String {
    format!(
        "sha256:{}",
        sha256_hex(peer("skopeo", &["inspect", "--raw", address]).as_bytes())
    )
}

fn copy_into(source: &dyn Source, sink: &dyn Sink, what: &Copyable, names: &[Reference]) {
    copy::copy(source, sink, what, names, &CopyOptions::default(), &Silent).unwrap();
    sink.commit().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn skopeo_and_umoci_read_and_unpack_a_layout_strata_writes() {
    let t = tempfile::tempdir().unwrap();
    let src = LayoutSource::open(fixture("debian-oci")).unwrap();
    let what = src.resolve(Some("bookworm"), &host()).unwrap();
    let original = what.digest().to_string();

    let dir = t.path().join("out");
    let sink = LayoutSink::create(&dir)
        .unwrap()
        .with_reference("v1")
        .unwrap();
    copy_into(&src, &sink, &what, &[]);
    drop(sink);

    let address = format!("oci:{}:v1", dir.display());
    assert_eq!(skopeo_digest(&address), original);
    let inspected: serde_json::Value =
        serde_json::from_str(&peer("skopeo", &["inspect", &address])).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 4);
    // skopeo copies out of it, keeping the manifest.
    let again = t.path().join("again");
    peer(
        "skopeo",
        &["copy", &address, &format!("oci:{}:copied", again.display())],
    );
    assert_eq!(
        skopeo_digest(&format!("oci:{}:copied", again.display())),
        original
    );

    let listed = peer("umoci", &["ls", "--layout", s(&dir)]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["v1"]);
    let bundle = t.path().join("bundle");
    peer(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:v1", dir.display()),
            s(&bundle),
        ],
    );
    assert!(bundle.join("rootfs/etc/debian_version").is_file());
    assert!(bundle.join("config.json").is_file());
}

#[test]
fn strata_reads_layouts_skopeo_and_umoci_write_with_the_same_digest() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("skopeo");
    peer(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:bookworm", fixture("debian-oci").display()),
            &format!("oci:{}:sk", dir.display()),
        ],
    );
    let theirs = skopeo_digest(&format!("oci:{}:sk", dir.display()));
    let src = LayoutSource::open(&dir).unwrap();
    let what = src.resolve(Some("sk"), &host()).unwrap();
    assert_eq!(what.digest().to_string(), theirs);
    // ...and on into a new layout and back, unchanged.
    let mine = t.path().join("mine");
    let sink = LayoutSink::create(&mine)
        .unwrap()
        .with_reference("copy")
        .unwrap();
    copy_into(&src, &sink, &what, &[]);
    drop(sink);
    assert_eq!(
        skopeo_digest(&format!("oci:{}:copy", mine.display())),
        theirs
    );

    // umoci writes manifests without a mediaType field.
    let u = t.path().join("umoci");
    peer("umoci", &["init", "--layout", s(&u)]);
    peer(
        "umoci",
        &["new", "--image", &format!("{}:empty", u.display())],
    );
    let src = LayoutSource::open(&u).unwrap();
    let what = src.resolve(Some("empty"), &host()).unwrap();
    let theirs = skopeo_digest(&format!("oci:{}:empty", u.display()));
    assert_eq!(what.digest().to_string(), theirs);
    let sink = LayoutSink::create(&mine)
        .unwrap()
        .with_reference("empty")
        .unwrap();
    copy_into(&src, &sink, &what, &[]);
    drop(sink);
    assert_eq!(
        skopeo_digest(&format!("oci:{}:empty", mine.display())),
        theirs
    );
    let listed = peer("umoci", &["ls", "--layout", s(&mine)]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["copy", "empty"]);
}

#[test]
fn a_multi_platform_index_travels_whole_or_as_one_platform() {
    let t = tempfile::tempdir().unwrap();
    let src = LayoutSource::open(fixture("multiarch-oci")).unwrap();
    let theirs = skopeo_digest(&format!("oci:{}:v1", fixture("multiarch-oci").display()));
    let all = src.resolve(Some("v1"), &PlatformChoice::All).unwrap();
    assert_eq!(all.digest().to_string(), theirs);

    let dir = t.path().join("multi");
    let sink = LayoutSink::create(&dir)
        .unwrap()
        .with_reference("v1")
        .unwrap();
    copy_into(&src, &sink, &all, &[]);
    drop(sink);
    let address = format!("oci:{}:v1", dir.display());
    assert_eq!(skopeo_digest(&address), theirs);
    let other = t.path().join("other");
    peer(
        "skopeo",
        &[
            "copy",
            "--all",
            &address,
            &format!("oci:{}:v1", other.display()),
        ],
    );
    assert_eq!(
        skopeo_digest(&format!("oci:{}:v1", other.display())),
        theirs
    );

    // One platform: the child skopeo picks for that platform (same config).
    let arm = src
        .resolve(
            Some("v1"),
            &PlatformChoice::One(Platform::parse("linux/arm64").unwrap()),
        )
        .unwrap();
    let config = peer(
        "skopeo",
        &[
            "--override-arch",
            "arm64",
            "inspect",
            "--config",
            "--raw",
            &format!("oci:{}:v1", fixture("multiarch-oci").display()),
        ],
    );
    assert_eq!(
        format!("sha256:{}", sha256_hex(config.as_bytes())),
        arm.images()[0].id().to_string()
    );
    assert_eq!(arm.images()[0].platform().architecture, "arm64");
    let single = t.path().join("single");
    let sink = LayoutSink::create(&single)
        .unwrap()
        .with_reference("arm")
        .unwrap();
    copy_into(&src, &sink, &arm, &[]);
    drop(sink);
    assert_eq!(
        skopeo_digest(&format!("oci:{}:arm", single.display())),
        arm.digest().to_string()
    );
}

#[test]
fn the_store_exports_to_a_layout_named_by_tag() {
    let st = Strata::new();
    st.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let store = Store::open(st.root()).unwrap();
    let image = store.lookup("peers/debian:bookworm").unwrap();
    let name = Reference::parse("peers/debian:bookworm").unwrap();
    let dir = st.path("exported");
    let sink = LayoutSink::create(&dir).unwrap();
    copy_into(
        &store,
        &sink,
        &Copyable::Image(Box::new(image.image.clone())),
        &[name],
    );
    drop(sink);
    let address = format!("oci:{}:bookworm", dir.display());
    assert_eq!(
        skopeo_digest(&address),
        image.descriptor.digest().to_string()
    );
    // The store's own layout names it in full; skopeo finds it there too.
    assert_eq!(
        skopeo_digest(&format!(
            "oci:{}:docker.io/peers/debian:bookworm",
            st.root().display()
        )),
        image.descriptor.digest().to_string()
    );
}

#[test]
fn oci_archives_go_both_ways_with_skopeo() {
    let t = tempfile::tempdir().unwrap();
    let src = LayoutSource::open(fixture("debian-oci")).unwrap();
    let what = src.resolve(None, &host()).unwrap();
    let original = what.digest().to_string();

    let out = t.path().join("strata.tar");
    let sink = ArchiveSink::new(
        "strata.tar",
        std::fs::File::create(&out).unwrap(),
        OutputCompression::None,
    )
    .unwrap()
    .with_layout(ArchiveLayout::Oci)
    .with_reference("v1")
    .unwrap();
    copy_into(&src, &sink, &what, &[]);
    drop(sink);
    assert_eq!(
        skopeo_digest(&format!("oci-archive:{}", out.display())),
        original
    );
    assert_eq!(
        skopeo_digest(&format!("oci-archive:{}:v1", out.display())),
        original
    );

    // skopeo's archive, one image named by a bare tag, chosen by it.
    let theirs = t.path().join("skopeo.tar");
    peer(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:bookworm", fixture("debian-oci").display()),
            &format!("oci-archive:{}:sk", theirs.display()),
        ],
    );
    let read = ArchiveSource::open(&Input::Path(theirs), t.path()).unwrap();
    let chosen = read.resolve(Some("sk"), &host()).unwrap();
    assert_eq!(chosen.digest().to_string(), original);
    // The fixture's own archive, and the store loading from it.
    let fixture_archive =
        ArchiveSource::open(&Input::Path(fixture("debian-oci.tar")), t.path()).unwrap();
    assert_eq!(
        fixture_archive
            .resolve(Some("bookworm"), &host())
            .unwrap()
            .digest()
            .to_string(),
        original
    );
}
