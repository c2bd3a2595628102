//! Interoperability with skopeo and umoci, on the harness's real images:
//! what they write, strata loads; what strata writes, they read, with the
//! same digests.

mod common;

use common::{Strata, fixture, peer};

fn manifest_of(s: &Strata, name: &str) -> serde_json::Value {
    let root = s.root();
    let raw = peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}", root.display()),
        ],
    );
    serde_json::from_str(&raw).unwrap()
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn archives_written_by_skopeo_load_and_other_oci_tools_read_the_store() {
    let s = Strata::new();
    let docker_archive = fixture("debian-docker.tar");
    let out = s
        .run(&["load", "-i", docker_archive.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, "Loaded image: peers/debian:bookworm\n");

    // The full name is the OCI ref name: skopeo and umoci find it.
    let config = peer(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:docker.io/peers/debian:bookworm", s.root().display()),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "/bin/bash");
    let listed = peer("umoci", &["ls", "--layout", s.root().to_str().unwrap()]);
    assert!(
        listed
            .lines()
            .any(|l| l == "docker.io/peers/debian:bookworm"),
        "{listed}"
    );
    let stat = peer(
        "umoci",
        &[
            "stat",
            "--image",
            &format!("{}:docker.io/peers/debian:bookworm", s.root().display()),
        ],
    );
    assert!(stat.contains("LAYER"), "{stat}");

    // An oci-archive of the same image (named only by a bare tag) is the same image.
    let id = s.run(&["images", "--no-trunc", "-q"]).ok().stdout;
    let other = Strata::new();
    let out = other
        .run(&["load", "-i", fixture("debian-oci.tar").to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, format!("Loaded image ID: {id}"));
}

#[test]
fn skopeo_reads_what_strata_saves_with_identical_layer_digests() {
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let saved = s.path("saved.tar");
    s.run(&[
        "save",
        "-o",
        saved.to_str().unwrap(),
        "peers/debian:bookworm",
    ])
    .ok();
    let stored = manifest_of(&s, "docker.io/peers/debian:bookworm");

    let inspect = peer(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", saved.display())],
    );
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        stored["layers"].as_array().unwrap().len()
    );

    let layout = s.path("copied-oci");
    peer(
        "skopeo",
        &[
            "copy",
            "-q",
            "--preserve-digests",
            &format!("docker-archive:{}", saved.display()),
            &format!("oci:{}:copied", layout.display()),
        ],
    );
    // skopeo 1.9 keeps docker media types with --preserve-digests and then
    // cannot look such a manifest up by name: read the layout directly.
    let copied = layout_manifest(&layout);
    assert_eq!(layer_digests(&copied), layer_digests(&stored));
    assert_eq!(copied["config"]["digest"], stored["config"]["digest"]);

    // skopeo reads the OCI half of the archive too, and the manifest is the stored one, byte for byte.
    let extracted = s.path("extracted");
    std::fs::create_dir(&extracted).unwrap();
    peer(
        "tar",
        &[
            "xf",
            saved.to_str().unwrap(),
            "-C",
            extracted.to_str().unwrap(),
        ],
    );
    let raw = peer(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:bookworm", extracted.display()),
        ],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&raw).unwrap(),
        stored
    );
}

#[test]
fn a_multi_platform_index_loads_saves_and_reloads_whole() {
    let s = Strata::new();
    let out = s
        .run(&["load", "-i", fixture("multiarch-oci.tar").to_str().unwrap()])
        .ok()
        .stdout;
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    s.run(&["tag", &id, "multi:v1"]).ok();
    let index = manifest_of(&s, "docker.io/library/multi:v1");
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        2,
        "the store keeps the index: {index}"
    );
    assert_eq!(
        s.run(&[
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            "multi:v1"
        ])
        .ok()
        .stdout,
        "linux/amd64\n"
    );

    let saved = s.path("multi.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), "multi:v1"])
        .ok();
    let other = Strata::new();
    assert_eq!(
        other
            .run(&["load", "-i", saved.to_str().unwrap()])
            .ok()
            .stdout,
        "Loaded image: multi:v1\n"
    );
    assert_eq!(manifest_of(&other, "docker.io/library/multi:v1"), index);
}

#[test]
fn layer_sizes_are_what_docker_counts_for_the_debian_image() {
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-oci.tar").to_str().unwrap()])
        .ok();
    // Per-layer sizes recomputed independently by unpacking each layer with
    // GNU tar and summing non-directory entries (symlinks by target length,
    // hardlinks once), as docker's overlay2 driver measures them.
    let layout = s.path("layout");
    std::fs::create_dir(&layout).unwrap();
    peer(
        "tar",
        &[
            "xf",
            fixture("debian-oci.tar").to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
        ],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(mdigest)).unwrap())
            .unwrap();
    let mut sizes = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let blob = layout
            .join("blobs/sha256")
            .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let listing = peer("tar", &["--numeric-owner", "-tvzf", blob.to_str().unwrap()]);
        sizes.push(docker_size_of_listing(&listing));
    }
    let history = s
        .run(&[
            "history",
            "-H=false",
            "--format",
            "{{.Size}}",
            &index_id(&s),
        ])
        .ok()
        .stdout;
    let mut ours: Vec<u64> = history
        .lines()
        .map(|l| l.parse().unwrap())
        .filter(|&n| n > 0)
        .collect();
    ours.reverse();
    sizes.retain(|&n| n > 0);
    assert_eq!(ours, sizes);
}

/// The manifest of the only image in an OCI layout directory.
fn layout_manifest(layout: &std::path::Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(digest)).unwrap())
        .unwrap()
}

fn index_id(s: &Strata) -> String {
    s.run(&["images", "-q"]).ok().stdout.trim().to_string()
}

/// Sums a `tar -tv` listing the way docker sizes a layer.
fn docker_size_of_listing(listing: &str) -> u64 {
    let mut total = 0;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let kind = line.chars().next().unwrap();
        match kind {
            '-' => total += fields[2].parse::<u64>().unwrap(),
            'l' => {
                let arrow = line.find(" -> ").unwrap();
                total += line[arrow + 4..].len() as u64;
            }
            _ => {}
        }
    }
    total
}
