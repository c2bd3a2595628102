//! `pull -a` is docker's `--all-tags` (every tag of a repository, in the
//! registry's order), and `--platform` names the platform an image must be.

mod common;

use common::{Strata, demo_archive, docker_lock, docker_run, need, unique};

/// The lines of a pull's output that do not depend on what the puller
/// already had: which tag, its digest, the status and the name.
fn summary(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            l.contains(": Pulling from ")
                || l.starts_with("Digest: ")
                || l.starts_with("Status: ")
                || !l.contains(": ")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn pull_all_tags_pulls_every_tag_as_docker_does() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let repo = format!("{registry}/{}", unique("i9-all-tags"));
    let s = Strata::isolated();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    for tag in ["b", "a", "c"] {
        let name = format!("{repo}:{tag}");
        s.run(&["tag", "strata-demo/hello:1.0", &name]).ok();
        s.reg(&["push", "-q", &name]).ok();
    }

    let puller = Strata::isolated();
    let ours = puller.reg(&["pull", "-a", &repo]).ok();
    let tags: Vec<&str> = ours
        .stdout
        .lines()
        .filter_map(|l| l.strip_suffix(&format!(": Pulling from {}", &repo[registry.len() + 1..])))
        .collect();
    assert_eq!(tags.len(), 3, "{}", ours.stdout);
    assert!(
        ours.stdout.ends_with(&format!(
            "Status: Downloaded newer image for {repo}\n{repo}\n"
        )),
        "{}",
        ours.stdout
    );
    let listed = puller
        .run(&["images", "--format", "{{.Tag}}", &repo])
        .ok()
        .stdout;
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(listed, ["a", "b", "c"]);
    let again = puller.reg(&["pull", "-a", &repo]).ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {repo}\n")),
        "{}",
        again.stdout
    );
    let quiet = puller.reg(&["pull", "-a", "-q", &repo]).ok();
    assert_eq!(quiet.stdout, format!("{repo}\n"));

    let _docker = docker_lock();
    let theirs = docker_run(&["pull", "-a", &repo]);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    // Same tags in the same order, same digests; the layer lines differ
    // with what each already had.
    assert_eq!(summary(&ours.stdout), summary(&theirs.stdout));
    for args in [
        vec!["pull", "-a", "-q"],
        vec!["pull", "-a", "--quiet"],
        vec!["pull", "--all-tags", "-q"],
    ] {
        let mut args = args;
        args.push(&repo);
        let theirs = docker_run(&args);
        let ours = puller.reg(&args);
        assert_eq!((ours.code, &ours.stdout), (theirs.code, &theirs.stdout));
    }
    let missing = format!("{registry}/{}", unique("i9-no-such-repo"));
    let tagged = format!("{repo}:a");
    for args in [["pull", "-a", &tagged], ["pull", "-a", &missing]] {
        let theirs = docker_run(&args);
        let ours = puller.reg(&args);
        assert_eq!(ours.code, theirs.code, "{args:?}");
        assert_eq!(
            ours.stderr.trim_start_matches("Error: "),
            theirs
                .stderr
                .trim_start_matches("Error response from daemon: "),
            "{args:?}"
        );
    }
    for tag in ["a", "b", "c"] {
        docker_run(&["rmi", &format!("{repo}:{tag}")]);
    }
}

#[test]
fn all_platforms_is_long_only() {
    let s = Strata::new();
    let help = s.run(&["pull", "--help"]).ok().stdout;
    assert!(help.contains("-a, --all-tags"), "{help}");
    assert!(help.contains("    --all-platforms"), "{help}");
}

#[test]
fn a_single_platform_image_of_another_platform_is_refused() {
    let registry = need("STRATA_TEST_REGISTRY_PLAIN");
    let name = format!("{registry}/{}:1", unique("i9-platform"));
    let s = Strata::isolated();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    s.run(&["tag", "strata-demo/hello:1.0", &name]).ok();
    s.reg(&["push", "-q", &name]).ok();

    let puller = Strata::isolated();
    let out = puller
        .reg(&["pull", "--platform", "linux/arm64", &name])
        .fails();
    assert_eq!(
        out.stderr,
        format!(
            "Error: image with reference {name} was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64\n"
        )
    );
    assert_eq!(puller.run(&["images", "-q"]).ok().stdout, "");
    // The platform it is, or none asked for, pulls it.
    puller
        .reg(&["pull", "-q", "--platform", "linux/amd64", &name])
        .ok();
    puller.reg(&["pull", "-q", &name]).ok();
    assert_eq!(puller.run(&["images", "-q"]).ok().stdout, "b1dcaf3cc163\n");
}
