//! Refusals and their words, against Docker 20.10 as the oracle: the same
//! command given to docker and to strata fails (or not) alike, with the same
//! message. docker's daemon says `Error response from daemon: `, strata
//! `Error: `; docker's client prints its own errors bare.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::{Run, Strata, demo_archive, docker_lock, docker_run, sha256_hex};

const DEMO: &str = "strata-demo/hello:1.0";

/// An error message without the prefix each program puts before it.
fn message(stderr: &str) -> String {
    let text = stderr.trim_end();
    text.strip_prefix("Error response from daemon: ")
        .or_else(|| text.strip_prefix("Error: "))
        .unwrap_or(text)
        .to_string()
}

/// Runs `args` in docker and in strata: same exit code, same message.
#[track_caller]
fn same_error(s: &Strata, args: &[&str]) -> (Run, Run) {
    let theirs = docker_run(args);
    let ours = s.run(args);
    assert_eq!(
        (ours.code, message(&ours.stderr)),
        (theirs.code, message(&theirs.stderr)),
        "strata {args:?} (left) differs from docker (right)"
    );
    (ours, theirs)
}

/// A store and the docker daemon both holding the demo image.
fn both_with_demo() -> Strata {
    let s = Strata::new();
    let archive = demo_archive();
    s.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    docker_run(&["load", "-i", archive.to_str().unwrap()]).ok();
    s
}

/// The demo archive with its config edited (so a new image ID), named
/// `name`.
fn demo_with_config(s: &Strata, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut input = tar::Archive::new(std::fs::File::open(demo_archive()).unwrap());
    let mut members = Vec::new();
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push((path, header, data));
    }
    let find = |p: &str| {
        members
            .iter()
            .find(|(path, ..)| path == p)
            .unwrap()
            .2
            .clone()
    };
    let mut manifest: serde_json::Value = serde_json::from_slice(&find("manifest.json")).unwrap();
    let old_config = manifest[0]["Config"].as_str().unwrap().to_string();
    let mut config: serde_json::Value = serde_json::from_slice(&find(&old_config)).unwrap();
    edit(&mut config);
    let config = serde_json::to_vec(&config).unwrap();
    let new_config = format!("{}.json", sha256_hex(&config));
    manifest[0]["Config"] = new_config.clone().into();
    manifest[0]["RepoTags"] = serde_json::json!([name]);

    let path = s.path(&format!("{}.tar", sha256_hex(name.as_bytes())));
    let mut out = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut put = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, data).unwrap();
    };
    put(&new_config, &config);
    put("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    for (p, header, data) in &members {
        if p != "manifest.json" && p != &old_config && p != "repositories" {
            out.append(header, &data[..]).unwrap();
        }
    }
    out.finish().unwrap();
    drop(out);
    path
}

#[test]
fn a_tag_named_for_the_digest_algorithm_is_refused() {
    let _docker = docker_lock();
    let s = both_with_demo();
    for target in ["sha256:b1dc", "sha256", "docker.io/library/sha256:x"] {
        let (ours, _) = same_error(&s, &["tag", DEMO, target]);
        assert_eq!(
            ours.stderr,
            "Error: refusing to create an ambiguous tag using digest algorithm as name\n"
        );
    }
    // `sha256:b1dc` still finds the image by its ID prefix, not a tag.
    let id = s
        .run(&["inspect", "--format", "{{.Id}}", "sha256:b1dc"])
        .ok();
    assert!(
        id.stdout.starts_with("sha256:b1dcaf3cc163"),
        "{}",
        id.stdout
    );
    // Elsewhere than Docker Hub's library the name is no algorithm.
    s.run(&["tag", DEMO, "localhost:5000/sha256:x"]).ok();
}

#[test]
fn a_missing_image_is_named_as_docker_names_it() {
    let _docker = docker_lock();
    let s = Strata::new();
    for args in [
        &["rmi", "i9-nope"][..],
        &["rmi", "i9-nope:1"],
        &["rmi", "-f", "i9-nope"],
        &["rmi", "abcdef"],
        &["history", "i9-nope"],
        &["save", "i9-nope"],
    ] {
        same_error(&s, args);
    }
}

#[test]
fn save_checks_its_output_path_as_docker_does() {
    let _docker = docker_lock();
    let s = both_with_demo();
    let file = s.path("plain");
    std::fs::write(&file, b"").unwrap();
    let under_file = file.join("x.tar");
    for path in [
        "/i9-nodir/x.tar",
        "i9-nodir/x.tar",
        "/dev/null",
        under_file.to_str().unwrap(),
    ] {
        let args = ["save", "-o", path, DEMO];
        let theirs = docker_run(&args);
        let ours = s.run(&args).fails();
        assert_eq!(ours.code, theirs.code, "{args:?}");
        // Go's system error texts are in lower case.
        assert_eq!(
            message(&ours.stderr).to_lowercase(),
            message(&theirs.stderr).to_lowercase(),
            "{args:?}"
        );
    }
    assert_eq!(
        s.run(&["save", "-o", "/i9-nodir/x.tar", DEMO]).stderr,
        "Error: failed to save image: invalid output path: directory \"/i9-nodir\" does not exist\n"
    );
    // A directory where no file can be made: the output is named, not the
    // temporary file strata writes first (docker names its own).
    let out = s.run(&["save", "-o", "/proc/i9.tar", DEMO]).fails();
    assert_eq!(
        out.stderr,
        "Error: cannot create /proc/i9.tar: No such file or directory\n"
    );
}

#[test]
fn a_history_with_more_layers_than_the_image_is_refused() {
    let _docker = docker_lock();
    let s = Strata::new();
    let archive = demo_with_config(&s, "i9/history:1", |c| {
        c["history"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"created_by": "a layer that is not there"}));
    });
    let (ours, _) = same_error(&s, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        ours.stderr,
        "Error: too many non-empty layers in History section\n"
    );
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "");
}

#[test]
fn a_command_given_as_one_string_is_a_list_of_one() {
    let _docker = docker_lock();
    let s = Strata::new();
    let archive = demo_with_config(&s, "i9/string-cmd:1", |c| {
        c["config"]["Cmd"] = "cat /etc/motd".into();
        c["config"]["Entrypoint"] = "/bin/sh -c".into();
    });
    let path = archive.to_str().unwrap();
    let theirs = docker_run(&["load", "-i", path]).ok();
    let ours = s.run(&["load", "-i", path]).ok();
    assert_eq!(ours.stdout, theirs.stdout);
    let format = "{{json .Config.Cmd}} {{json .Config.Entrypoint}} {{.Id}}";
    let args = ["image", "inspect", "--format", format, "i9/string-cmd:1"];
    let theirs = docker_run(&args).ok();
    assert_eq!(s.run(&args).ok().stdout, theirs.stdout);
    assert!(
        theirs
            .stdout
            .starts_with(r#"["cat /etc/motd"] ["/bin/sh -c"]"#)
    );
    docker_run(&["rmi", "i9/string-cmd:1"]).ok();
    // Saved and loaded again, the config is byte for byte the same.
    let again = s.path("again.tar");
    s.run(&["save", "-o", again.to_str().unwrap(), "i9/string-cmd:1"])
        .ok();
    let other = Strata::new();
    other.run(&["load", "-i", again.to_str().unwrap()]).ok();
    assert_eq!(
        other.run(&["images", "-q"]).ok().stdout,
        s.run(&["images", "-q"]).ok().stdout
    );
}

#[test]
fn format_errors_on_a_row_read_as_docker_s() {
    let _docker = docker_lock();
    let s = both_with_demo();
    for (command, format) in [
        ("images", r#"{{index . "x"}}"#),
        ("images", "{{len .}}"),
        ("images", "{{. | len}}"),
        ("images", "{{.Nope}}"),
        ("images", "{{.ID}}\n  {{.Nope.X}}"),
        ("images", "{{if .ID}}{{.Nope}}{{end}}"),
        ("images", "{{.ID.x}}"),
        ("history", "{{.Nope}}"),
        ("history", "{{len .}}"),
    ] {
        same_error(&s, &[command, "--format", format, DEMO]);
    }
    // Go prints the row's value where strata names its type.
    for command in ["images", "history"] {
        let args = [command, "--format", "{{range .}}x{{end}}", DEMO];
        let theirs = docker_run(&args);
        let ours = s.run(&args);
        assert_eq!(ours.code, theirs.code);
        let cut = |t: &str| message(t).split(" over ").next().unwrap().to_string();
        assert_eq!(cut(&ours.stderr), cut(&theirs.stderr), "{args:?}");
        assert_eq!(ours.stdout, "");
    }
    // What Go allows on a struct still renders.
    let ok = s
        .run(&[
            "images",
            "--format",
            "{{.ID | len}} {{with .ID}}{{len .}}{{end}}",
            DEMO,
        ])
        .ok();
    assert_eq!(ok.stdout, "12 12\n");
}

/// `inspect --format`: docker runs the template on its typed struct and,
/// where that fails, on the raw JSON with missing keys as errors; a key of
/// a string-keyed map (labels) is `<no value>` either way, and what the
/// typed run prints are Go's typed values.
#[test]
fn inspect_format_errors_read_as_docker_s() {
    let _docker = docker_lock();
    let s = both_with_demo();
    for format in [
        "{{.Nope}}",
        "{{.Config.Nope}}",
        "{{json .Nope}}",
        "{{.Nope.X}}",
        "{{.Id.x}}",
        "{{.Config.ExposedPorts.x}}",
        "{{.Config.Healthcheck.Test}}",
        "{{.Config.Labels.nope}} {{.Nope}}",
        "{{with .Config}}{{.Nope}}{{end}}",
        "{{range .RepoTags}}{{.}}{{end}} {{.Nope}}",
        "{{$.Nope}}",
    ] {
        let (ours, _) = same_error(&s, &["inspect", "--format", format, DEMO]);
        assert_ne!(ours.code, 0, "{format}");
        assert_eq!(ours.stdout, "", "{format}");
    }
    for format in [
        "{{.Config.Labels.nope}}",
        "{{.GraphDriver.Data.nope}}",
        "{{.Config.Volumes.x}}",
        "{{len .RootFS.Layers}} {{with .Config}}{{.Env}}{{end}}",
        // Go's typed values: a null list, an omitted map, bool and string.
        "{{.Config.Entrypoint}} {{.Config.ExposedPorts}} {{.Config.Shell}}",
        "{{.Config.ArgsEscaped}}|{{.Variant}}|{{.ContainerConfig.Volumes}}",
        // ... but `json` and `len .` see the JSON.
        "{{json .Config.Entrypoint}} {{len .}}",
    ] {
        let args = ["inspect", "--format", format, DEMO];
        let theirs = docker_run(&args).ok();
        let ours = s.run(&args).ok();
        assert_eq!(ours.stdout, theirs.stdout, "{format}");
    }
}

#[test]
fn a_malformed_reference_pattern_is_an_error_as_in_docker() {
    let _docker = docker_lock();
    let s = both_with_demo();
    for filter in ["reference=[", "reference=x[]", "reference=a\\"] {
        let (ours, _) = same_error(&s, &["images", "--filter", filter]);
        assert_eq!(ours.stderr, "Error: syntax error in pattern\n");
    }
    // A well-formed pattern that matches nothing is an empty table, an
    // empty range (`z-a`) included.
    for filter in ["reference=[a-c]*", "reference=x[z-a]"] {
        let args = ["images", "-q", "--filter", filter];
        let theirs = docker_run(&args).ok();
        assert_eq!(s.run(&args).ok().stdout, theirs.stdout);
    }
}
