//! Output whose reader went away: a listing ends silently with the status
//! a shell shows for docker killed by SIGPIPE; an archive cut short on
//! standard output is an error, never a success.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use common::{Strata, demo_archive, docker, docker_lock, fixture};

/// Runs `cmd` with standard output a pipe whose reading end is closed.
fn into_closed_pipe(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

/// The shell's view of an exit: the code, or 128 + the signal.
fn shell_status(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap())
}

#[test]
fn a_listing_into_a_closed_pipe_ends_silently_as_docker_does() {
    let s = Strata::new();
    s.run(&["load", "-i", demo_archive().to_str().unwrap()])
        .ok();
    for args in [
        &["images"][..],
        &["history", "strata-demo/hello:1.0"],
        &["inspect", "strata-demo/hello:1.0"],
        &["images", "--format", "{{.ID}}"],
    ] {
        let out = into_closed_pipe(s.command().args(args));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "strata {args:?} is silent"
        );
        assert_eq!(shell_status(&out), 141, "strata {args:?}");
    }

    let _docker = docker_lock();
    let theirs = into_closed_pipe(docker().args(["images"]));
    assert_eq!(String::from_utf8_lossy(&theirs.stderr), "");
    assert_eq!(shell_status(&theirs), 141, "docker images");
}

#[test]
fn a_save_whose_reader_goes_away_fails() {
    let s = Strata::new();
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
    let mut save = s
        .command()
        .args(["save", "peers/debian:bookworm"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `save | head -c 1000000`: part of the archive, then the pipe closes.
    let mut stdout = save.stdout.take().unwrap();
    let mut first = vec![0; 1_000_000];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = save.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "Error: standard output: Broken pipe\n");
}
