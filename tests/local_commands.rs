//! The local image commands end to end on the repository's demo archive:
//! load, images, tag, history, inspect, rmi, save, with docker's texts.

mod common;

use common::{Strata, demo_archive};

const ID: &str = "sha256:b1dcaf3cc163fb83e331a45beca0ccd82397d169b2c97cee7ebda146db9ee8dd";

fn loaded() -> Strata {
    let s = Strata::new();
    let out = s
        .run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, "Loaded image: strata-demo/hello:1.0\n");
    s
}

#[test]
fn load_from_stdin_prints_the_loaded_name_and_nothing_noisy() {
    let s = Strata::new();
    let out = s.run_stdin(&["load"], &demo_archive()).ok();
    assert_eq!(out.stdout, "Loaded image: strata-demo/hello:1.0\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn images_lists_docker_columns() {
    let s = loaded();
    let out = s.run(&["images"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "REPOSITORY          TAG       IMAGE ID       CREATED       SIZE"
    );
    assert!(
        lines[1].starts_with("strata-demo/hello   1.0       b1dcaf3cc163   "),
        "{out}"
    );
    assert!(lines[1].ends_with("   347B"), "{out}");
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "b1dcaf3cc163\n");
    let full = s
        .run(&["images", "--no-trunc", "--format", "{{.ID}}"])
        .ok()
        .stdout;
    assert_eq!(full, format!("{ID}\n"));
}

#[test]
fn tag_adds_a_name_and_rmi_of_the_id_then_needs_force() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "localhost:5000/demo/hello"])
        .ok();
    let names = s
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .stdout;
    assert_eq!(
        names,
        "localhost:5000/demo/hello:latest\nstrata-demo/hello:1.0\n"
    );

    let refused = s.run(&["rmi", "b1dcaf3cc163"]).fails();
    assert_eq!(
        refused.stderr,
        "Error: conflict: unable to delete b1dcaf3cc163 (must be forced) - image is referenced in multiple repositories\n"
    );
    assert_eq!(refused.code, 1);

    let untag = s.run(&["rmi", "localhost:5000/demo/hello"]).ok();
    assert_eq!(untag.stdout, "Untagged: localhost:5000/demo/hello:latest\n");
    let last = s.run(&["rmi", "strata-demo/hello:1.0"]).ok().stdout;
    let lines: Vec<&str> = last.lines().collect();
    assert_eq!(lines[0], "Untagged: strata-demo/hello:1.0");
    assert_eq!(lines[1], format!("Deleted: {ID}"));
    // Two layers, named by chain ID, top first; the base's chain ID is its diff ID.
    assert_eq!(lines.len(), 4, "{last}");
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "");
    // Nothing is left in blobs/: garbage was collected.
    let blobs = std::fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn rmi_force_by_id_untags_every_name() {
    let s = loaded();
    s.run(&["tag", "b1dcaf3cc163", "other:1"]).ok();
    let out = s.run(&["rmi", "-f", "b1dcaf3cc163"]).ok().stdout;
    assert!(
        out.contains("Untagged: other:1\n") && out.contains("Untagged: strata-demo/hello:1.0\n"),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: {ID}\n")), "{out}");
}

#[test]
fn rmi_reports_each_missing_name_and_goes_on() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "second:1"]).ok();
    let out = s.run(&["rmi", "nosuch", "second:1"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "Untagged: second:1\n");
    assert_eq!(out.stderr, "Error: No such image: nosuch\n");
    // With -f a missing image is not an error, as in docker.
    let forced = s.run(&["rmi", "-f", "nosuch"]);
    assert_eq!(forced.code, 0);
}

#[test]
fn moving_a_tag_leaves_the_old_image_dangling() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "keep:me"]).ok();
    let saved = s.path("hello-id.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), "b1dcaf3cc163"])
        .ok();
    s.run(&["rmi", "keep:me"]).ok();
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    // Loaded by ID only: docker's "Loaded image ID" line, a <none> row.
    let out = s.run(&["load", "-i", saved.to_str().unwrap()]).ok().stdout;
    assert_eq!(out, format!("Loaded image ID: {ID}\n"));
    let rows = s
        .run(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"])
        .ok()
        .stdout;
    assert_eq!(rows, "<none> <none> b1dcaf3cc163\n");
    assert_eq!(
        s.run(&["images", "--filter", "dangling=true", "-q"])
            .ok()
            .stdout,
        "b1dcaf3cc163\n"
    );
    assert_eq!(
        s.run(&["images", "--filter", "dangling=false", "-q"])
            .ok()
            .stdout,
        ""
    );
    s.run(&["tag", "b1dcaf3cc163", "back:1"]).ok();
    assert_eq!(
        s.run(&["images", "--filter", "dangling=true", "-q"])
            .ok()
            .stdout,
        ""
    );
}

#[test]
fn images_filters_by_reference_pattern_and_positional_name() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "strata-demo/other:2"])
        .ok();
    s.run(&["tag", "strata-demo/hello:1.0", "plain:3"]).ok();
    let f = |args: &[&str]| s.run(args).ok().stdout;
    assert_eq!(
        f(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=strata-demo/*"
        ]),
        "strata-demo/hello:1.0\nstrata-demo/other:2\n"
    );
    assert_eq!(
        f(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=*:3"
        ]),
        "plain:3\n"
    );
    assert_eq!(
        f(&["images", "--format", "{{.Repository}}:{{.Tag}}", "plain"]),
        "plain:3\n"
    );
    assert_eq!(
        f(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "label=org.opencontainers.image.title=strata demo"
        ])
        .lines()
        .count(),
        3
    );
    assert_eq!(f(&["images", "-q", "--filter", "label=nosuch"]), "");
}

#[test]
fn images_format_json_and_table_templates() {
    let s = loaded();
    let json = s.run(&["images", "--format", "json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Repository"], "strata-demo/hello");
    assert_eq!(v["Size"], "347B");
    let table = s
        .run(&["images", "--format", "table {{.ID}}\t{{.Repository}}"])
        .ok()
        .stdout;
    assert_eq!(
        table,
        "IMAGE ID       REPOSITORY\nb1dcaf3cc163   strata-demo/hello\n"
    );
    let digests = s.run(&["images", "--digests"]).ok().stdout;
    assert!(
        digests.starts_with("REPOSITORY          TAG       DIGEST    IMAGE ID"),
        "{digests}"
    );
    assert!(digests.contains("   <none>    b1dcaf3cc163"), "{digests}");
}

#[test]
fn history_prints_newest_first_with_missing_ids() {
    let s = loaded();
    let out = s.run(&["history", "strata-demo/hello:1.0"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT"
    );
    assert!(lines[1].starts_with("b1dcaf3cc163   "), "{out}");
    assert!(
        lines[1].contains(r#"/bin/sh -c #(nop)  CMD ["cat" "/etc/motd"]      0B        "#),
        "{out}"
    );
    assert!(
        lines[2].contains("/bin/sh -c echo 'Welcome to strata-demo 1.0'…   57B"),
        "{out}"
    );
    assert!(lines[4].starts_with("<missing>      "), "{out}");
    assert!(lines[4].ends_with("   290B      "), "{out:?}");

    let raw = s
        .run(&["history", "-H=false", "strata-demo/hello:1.0"])
        .ok()
        .stdout;
    assert!(
        raw.starts_with("IMAGE          CREATED AT             CREATED BY"),
        "{raw}"
    );
    assert!(
        raw.contains("2024-01-01T00:03:00Z   /bin/sh -c #(nop)  CMD"),
        "{raw}"
    );
    assert!(
        raw.lines().nth(4).unwrap().contains("   290       "),
        "{raw}"
    );

    let quiet = s
        .run(&["history", "-q", "strata-demo/hello:1.0"])
        .ok()
        .stdout;
    assert_eq!(quiet, "b1dcaf3cc163\n<missing>\n<missing>\n<missing>\n");
    let full = s
        .run(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}",
            "strata-demo/hello:1.0",
        ])
        .ok()
        .stdout;
    assert!(
        full.starts_with(&format!("{ID}|/bin/sh -c #(nop)  CMD")),
        "{full}"
    );
    assert!(
        full.contains("&& rm /usr/share/hello/README && echo"),
        "{full}"
    );
}

#[test]
fn inspect_prints_docker_json_and_reports_unknown_names() {
    let s = loaded();
    let out = s.run(&["inspect", "strata-demo/hello:1.0", "nosuch"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "Error: No such object: nosuch\n");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let img = &v[0];
    assert_eq!(img["Id"], ID);
    assert_eq!(img["RepoTags"][0], "strata-demo/hello:1.0");
    assert_eq!(img["Size"], 347);
    assert_eq!(img["Config"]["Cmd"][0], "cat");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(img["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");
    assert!(
        out.stdout
            .starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{}",
        out.stdout
    );
    let keys: Vec<&String> = img.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "Container",
            "ContainerConfig",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata"
        ]
    );
    let f = s
        .run(&[
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}} {{json .Config.Cmd}}",
            "b1dc",
        ])
        .ok()
        .stdout;
    assert_eq!(f, "linux/amd64 [\"cat\",\"/etc/motd\"]\n");
    s.run(&["tag", "b1dc", "x:y"]).ok();
    let tagged = s
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{.Metadata.LastTagTime}}",
            "x:y",
        ])
        .ok()
        .stdout;
    assert_ne!(tagged.trim(), "0001-01-01T00:00:00Z");
    let missing = s.run(&["image", "inspect", "nosuch"]);
    assert_eq!(missing.stderr, "Error: No such image: nosuch\n");
    assert_eq!(missing.stdout, "[]\n");
}

#[test]
fn save_then_load_keeps_the_image_id_and_layers_once() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "copy:two"]).ok();
    let archive = s.path("two.tar");
    s.run(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "strata-demo/hello:1.0",
        "copy:two",
    ])
    .ok();
    let listing = common::peer("tar", &["tf", archive.to_str().unwrap()]);
    let blobs: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("blobs/sha256/") && l.len() > 14)
        .collect();
    // two layers, one config, one manifest: shared by both names, stored once
    assert_eq!(blobs.len(), 4, "{listing}");
    for doc in ["index.json", "manifest.json", "oci-layout", "repositories"] {
        assert!(
            listing.lines().any(|l| l == doc),
            "{doc} missing from {listing}"
        );
    }
    let manifest = common::peer("tar", &["xOf", archive.to_str().unwrap(), "manifest.json"]);
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        m[0]["RepoTags"],
        serde_json::json!(["strata-demo/hello:1.0", "copy:two"])
    );

    let other = Strata::new();
    let out = other
        .run(&["load", "-i", archive.to_str().unwrap()])
        .ok()
        .stdout;
    assert_eq!(
        out,
        "Loaded image: strata-demo/hello:1.0\nLoaded image: copy:two\n"
    );
    let ids = other.run(&["images", "--no-trunc", "-q"]).ok().stdout;
    assert_eq!(ids, format!("{ID}\n{ID}\n"));
}

#[test]
fn save_by_repository_name_saves_every_tag_to_standard_output() {
    let s = loaded();
    s.run(&["tag", "strata-demo/hello:1.0", "strata-demo/hello:extra"])
        .ok();
    let out = s
        .command()
        .args(["save", "strata-demo/hello"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = s.path("stdout.tar");
    std::fs::write(&path, &out.stdout).unwrap();
    let manifest = common::peer("tar", &["xOf", path.to_str().unwrap(), "manifest.json"]);
    assert!(
        manifest.contains("strata-demo/hello:1.0") && manifest.contains("strata-demo/hello:extra"),
        "{manifest}"
    );
}

#[test]
fn save_compresses_by_flag_or_extension_and_load_detects_by_magic() {
    let s = loaded();
    for (name, flag, magic) in [
        ("a.tar.gz", None, &[0x1f, 0x8b][..]),
        ("b.tar", Some("zstd"), &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("c.tar.zst", None, &[0x28, 0xb5, 0x2f, 0xfd][..]),
    ] {
        let path = s.path(name);
        let mut args = vec!["save", "-o", path.to_str().unwrap()];
        if let Some(f) = flag {
            args.extend(["--compress", f]);
        }
        args.push("strata-demo/hello:1.0");
        s.run(&args).ok();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.starts_with(magic),
            "{name} does not start with the expected magic"
        );
        let other = Strata::new();
        assert_eq!(
            other
                .run(&["load", "-i", path.to_str().unwrap()])
                .ok()
                .stdout,
            "Loaded image: strata-demo/hello:1.0\n"
        );
    }
}

#[test]
fn load_reads_archives_compressed_by_peer_tools() {
    let s = Strata::new();
    for (tool, args) in [
        ("gzip", &["-c"][..]),
        ("bzip2", &["-c"][..]),
        ("xz", &["-c", "-T1"][..]),
        ("zstd", &["-c", "-q"][..]),
    ] {
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(demo_archive())
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} failed");
        let path = s.path(&format!("hello.{tool}"));
        std::fs::write(&path, &out.stdout).unwrap();
        // Through standard input too: a pipe is spooled, a file read in place.
        let loaded = s.run_stdin(&["load"], &path).ok().stdout;
        assert_eq!(loaded, "Loaded image: strata-demo/hello:1.0\n", "{tool}");
    }
    assert_eq!(s.run(&["images", "-q"]).ok().stdout, "b1dcaf3cc163\n");
}

#[test]
fn usage_errors_exit_125_as_docker() {
    let s = Strata::new();
    assert_eq!(s.run(&["images", "--bogus"]).code, 125);
    assert_eq!(s.run(&["history", "-H", "false", "x"]).code, 125);
}

/// Runs a shell command line under a pseudo-terminal (util-linux `script`).
fn on_terminal(s: &Strata, line: &str) -> common::Run {
    let out = std::process::Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .env("STRATA_ROOT", s.root())
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn load_draws_docker_progress_bars_on_a_terminal() {
    let s = Strata::new();
    let bin = env!("CARGO_BIN_EXE_strata");
    let out = on_terminal(
        &s,
        &format!("stty cols 150; {bin} load -i {}", demo_archive().display()),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    // One bar per layer, named by its diff ID, completed; then the result.
    assert!(out.stdout.contains("4a13a9246044: Loading layer [==================================================>]  10.24kB/10.24kB"), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("0da46754b696: Loading layer [="),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Loaded image: strata-demo/hello:1.0"),
        "{:?}",
        out.stdout
    );
    // Loaded again: nothing to move, so no bars.
    let again = on_terminal(&s, &format!("{bin} load -i {}", demo_archive().display()));
    assert!(
        !again.stdout.contains("Loading layer"),
        "{:?}",
        again.stdout
    );
}

#[test]
fn save_refuses_to_write_an_archive_to_a_terminal() {
    let s = loaded();
    let bin = env!("CARGO_BIN_EXE_strata");
    let out = on_terminal(&s, &format!("{bin} save strata-demo/hello:1.0"));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(
            "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect"
        ),
        "{:?}",
        out.stdout
    );
    let load = on_terminal(&s, &format!("{bin} load"));
    assert_eq!(load.code, 1);
    assert!(
        load.stdout
            .contains("Error: requested load from stdin, but stdin is empty"),
        "{:?}",
        load.stdout
    );
}

/// `strata login -u someone SERVER` on a pseudo-terminal of its own, up to
/// its password prompt with echo off.
struct LoginOnTerminal {
    master: std::fs::File,
    terminal: std::fs::File,
    child: std::process::Child,
    _store: Strata,
}

impl LoginOnTerminal {
    fn start(server: &str) -> LoginOnTerminal {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;

        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(name.to_str().unwrap())
            .unwrap();
        let s = Strata::new();
        // setsid -c: a session of its own with the terminal as its
        // controlling one, so the prompt's /dev/tty is this terminal and
        // Ctrl-C typed there signals it.
        let child = std::process::Command::new("setsid")
            .args(["-c", env!("CARGO_BIN_EXE_strata")])
            .args(["login", "-u", "someone", server])
            .env("STRATA_ROOT", s.root())
            .env("HOME", s.dir.path())
            .stdin(terminal.try_clone().unwrap())
            .stdout(terminal.try_clone().unwrap())
            .stderr(terminal.try_clone().unwrap())
            .spawn()
            .unwrap();
        let master = std::fs::File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let login = LoginOnTerminal {
            master,
            terminal,
            child,
            _store: s,
        };
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !String::from_utf8_lossy(&seen).contains("Password: ") {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.extend(bytes),
                Err(_) => panic!("no prompt: {:?}", String::from_utf8_lossy(&seen)),
            }
        }
        login.wait_for_echo(false);
        login
    }

    fn echo(&self) -> bool {
        rustix::termios::tcgetattr(&self.terminal)
            .unwrap()
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO)
    }

    fn wait_for_echo(&self, on: bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.echo() != on {
            assert!(std::time::Instant::now() < deadline, "echo never {on}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// How the command ended; killed (and a failure) after 30 seconds.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("login still running 30 s after Ctrl-C");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).unwrap();
    }
}

/// Ctrl-C at `login`'s password prompt ends the command by SIGINT with the
/// terminal's echo back on (it is off while the password is typed).
#[test]
fn ctrl_c_at_the_password_prompt_restores_echo() {
    use std::os::unix::process::ExitStatusExt;
    let mut login = LoginOnTerminal::start("registry.invalid");
    login.type_keys(b"\x03");
    let status = login.wait();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert!(login.echo(), "echo restored after Ctrl-C");
}

/// After the password is typed, Ctrl-C still stops a login that waits on
/// its registry (here one that never answers).
#[test]
fn ctrl_c_after_the_password_prompt_still_stops_login() {
    use std::os::unix::process::ExitStatusExt;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let mut login = LoginOnTerminal::start(&server);
    login.type_keys(b"secret\r");
    login.wait_for_echo(true);
    // Time to reach the registry, which accepts and says nothing.
    std::thread::sleep(std::time::Duration::from_millis(300));
    login.type_keys(b"\x03");
    let status = login.wait();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

/// `strata completion SHELL` prints a script made from the commands' own
/// definitions; bash loads it and completes commands and flags with it.
#[test]
fn completion_scripts_complete_the_commands() {
    let s = Strata::new();
    let bash = s.run(&["completion", "bash"]).ok().stdout;
    for command in ["images", "pull", "mount", "umount", "completion", "man"] {
        assert!(bash.contains(command), "bash script lacks {command}");
    }
    let script = s.path("strata.bash");
    std::fs::write(&script, &bash).unwrap();
    let out = common::output(std::process::Command::new("bash").arg("-c").arg(format!(
        "source {}; complete -p strata; \
         COMP_WORDS=(strata pu); COMP_CWORD=1; _strata strata pu strata; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(strata mount --); COMP_CWORD=2; _strata strata -- mount; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    )))
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].ends_with("-F _strata strata"), "{}", out.stdout);
    assert_eq!(lines[1], "pull push");
    assert!(
        lines[2].contains("--flatten") && lines[2].contains("--target"),
        "{}",
        lines[2]
    );

    let zsh = s.run(&["completion", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef strata"), "{zsh}");
    assert!(zsh.contains("'--flatten[") && zsh.contains("umount"));
    let fish = s.run(&["completion", "fish"]).ok().stdout;
    assert!(fish.contains("complete -c strata") && fish.contains("-l flatten"));

    let bad = s.run(&["completion", "tcsh"]);
    assert_eq!(bad.code, 125, "a usage error");
    assert!(
        bad.stderr.contains("possible values: bash"),
        "{}",
        bad.stderr
    );
}

/// `strata man` prints strata.1 and `--dir` writes a page per command; man
/// renders them.
#[test]
fn manual_pages_render() {
    let s = Strata::new();
    let render = |page: &std::path::Path| {
        common::output(
            std::process::Command::new("man")
                .args(["-P", "cat", "-l"])
                .arg(page)
                .env("MANWIDTH", "100"),
        )
        .ok()
        .stdout
    };
    let page = s.path("strata.1");
    std::fs::write(&page, s.run(&["man"]).ok().stdout).unwrap();
    let text = render(&page);
    assert!(text.contains("SYNOPSIS"), "{text}");
    assert!(text.contains("strata-pull(1)") && text.contains("Download an image"));

    let dir = s.path("man1");
    s.run(&["man", "--dir", dir.to_str().unwrap()]).ok();
    for name in [
        "strata.1",
        "strata-mount.1",
        "strata-image-ls.1",
        "strata-plugin-run.1",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    let mount = render(&dir.join("strata-mount.1"));
    assert!(
        mount.contains("--flatten") && mount.contains("--target"),
        "{mount}"
    );
}

/// The build writes into `$OUT_DIR/share` the very completions and pages the
/// binary prints at run time: both come from `src/cli/args.rs`.
#[test]
fn the_build_writes_the_same_completions_and_pages() {
    let s = Strata::new();
    let share = std::path::Path::new(env!("OUT_DIR")).join("share");
    for (shell, file) in [
        ("bash", "strata.bash"),
        ("zsh", "_strata"),
        ("fish", "strata.fish"),
    ] {
        let built = std::fs::read_to_string(share.join("completions").join(file)).unwrap();
        assert_eq!(built, s.run(&["completion", shell]).ok().stdout, "{file}");
    }
    let dir = s.path("man");
    s.run(&["man", "--dir", dir.to_str().unwrap()]).ok();
    let pages = |d: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let built = pages(&share.join("man"));
    assert!(built.len() > 30, "{built:?}");
    assert_eq!(built, pages(&dir));
    for name in &built {
        assert_eq!(
            std::fs::read(share.join("man").join(name)).unwrap(),
            std::fs::read(dir.join(name)).unwrap(),
            "{name}"
        );
    }
}
