//! What a running command reads stays in the store until it ends: an
//! `rmi` of an image being saved, pushed, copied or mounted removes its
//! names at once, its blobs only when the command is done.
//!
//! The `rmi` lands in the middle of the command for certain: the command is
//! stopped (SIGSTOP) once its lease is in `.strata/leases/` and while it
//! still holds it, with the store's lock free, and resumed after the `rmi`.

mod common;

use std::fs::TryLockError;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, Strata, Unmounter, fixture, need, skopeo_digest, unique};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

const IMAGE: &str = "peers/debian:bookworm";
const ID: &str = "a7941c22ff31";
const FULL_ID: &str = "sha256:a7941c22ff3116e1e12518300844e0cefc9a6d4fdf3fb52aae4703d75059e07e";
/// The manifest strata makes for the Debian fixture when it loads it.
const DIGEST: &str = "sha256:a77a47e1a28de094200622394e0e6a408b385ffa2267120facb72ba13c4e1a80";
/// Its blobs: four layers, the config, the manifest.
const BLOBS: usize = 6;

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
    // The lease ended with the save, and the blobs go with the next
    // collection.
    after_the_lease(&s);

    // The archive is whole: a fresh store loads it as the same image.
    let path = s.path("saved.tar");
    std::fs::write(&path, &archive).unwrap();
    let other = Strata::new();
    let loaded = other.run(&["load", "-i", path.to_str().unwrap()]).ok();
    assert_eq!(loaded.stdout, format!("Loaded image: {IMAGE}\n"));
    assert_eq!(other.run(&["images", "-q"]).ok().stdout, format!("{ID}\n"));
    other.run(&["history", IMAGE]).ok();
}

#[test]
fn an_image_removed_while_it_is_pushed_is_pushed_whole() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::isolated();
    load_debian(&s);
    // The image keeps one name, the one pushed, so that removing it by
    // that name removes the image. One upload at a time: the small layers
    // and the config wait, unopened, behind the large layer.
    let mut name = IMAGE.to_string();
    let paused = in_flight(&s, || {
        let next = format!("{reg}/{}/debian:v1", unique("lease-push"));
        s.reg(&["tag", &name, &next]).ok();
        s.reg(&["rmi", &name]).ok();
        name = next;
        let mut c = s.registry_command();
        c.args(["push", "--max-concurrent-uploads", "1", &name]);
        c
    });
    removed_beside(&s, &name);
    let pushed = paused.resume().ok();
    assert!(
        pushed
            .stdout
            .ends_with(&format!("v1: digest: {DIGEST} size: 856\n")),
        "{}",
        pushed.stdout
    );
    after_the_lease(&s);
    // The registry has it whole: its digest, and a fresh store pulls it
    // (every blob checked against its digest) as the same image.
    assert_eq!(skopeo_digest(&name), DIGEST);
    pulled_whole(&name);
}

#[test]
fn an_image_removed_while_it_is_copied_to_a_registry_is_copied_whole() {
    let reg = need("STRATA_TEST_REGISTRY_PLAIN");
    let s = Strata::isolated();
    load_debian(&s);
    let mut target = String::new();
    let paused = in_flight(&s, || {
        target = format!("{reg}/{}/debian:v1", unique("lease-copy"));
        let mut c = s.registry_command();
        c.args([
            "copy",
            "--max-concurrent",
            "1",
            IMAGE,
            &format!("docker://{target}"),
        ]);
        c
    });
    removed_beside(&s, IMAGE);
    let copied = paused.resume().ok();
    assert!(
        copied.stdout.ends_with(&format!(
            "Writing manifest to image destination\n{DIGEST}\n"
        )),
        "{}",
        copied.stdout
    );
    after_the_lease(&s);
    assert_eq!(skopeo_digest(&target), DIGEST);
    pulled_whole(&target);
}

#[test]
fn an_image_removed_while_it_is_copied_to_an_archive_is_copied_whole() {
    let s = Strata::new();
    load_debian(&s);
    let archive = s.path("copied.tar");
    let paused = in_flight(&s, || {
        let _ = std::fs::remove_file(&archive);
        let mut c = s.command();
        c.args([
            "copy",
            IMAGE,
            &format!("docker-archive:{}:{IMAGE}", archive.display()),
        ]);
        c
    });
    removed_beside(&s, IMAGE);
    paused.resume().ok();
    after_the_lease(&s);
    let other = Strata::new();
    let loaded = other.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(loaded.stdout, format!("Loaded image: {IMAGE}\n"));
    assert_eq!(other.run(&["images", "-q"]).ok().stdout, format!("{ID}\n"));
}

#[test]
fn an_overlay_mount_beside_an_rmi_unpacks_whole_and_is_refused() {
    mount_beside_an_rmi(&[]);
}

#[test]
fn a_flattened_mount_beside_an_rmi_is_written_whole_and_is_refused() {
    mount_beside_an_rmi(&["--flatten"]);
}

/// A mount records itself only while its image is still in the store: an
/// `rmi` that lands while the layers are unpacked wins, and the mount is
/// refused and taken back; but what it was unpacking stays readable to
/// the end (its error is the refusal, no missing blob).
fn mount_beside_an_rmi(options: &[&str]) {
    if !rustix::process::geteuid().is_root() {
        return common::cannot_run("mount_beside_an_rmi", "mounts need root");
    }
    let s = Strata::new();
    let _unmount = Unmounter(&s);
    load_debian(&s);
    let paused = in_flight(&s, || {
        // A try that ran to its end mounted the image: undone for the next.
        let _ = s.run(&["umount", IMAGE]);
        let mut c = s.command();
        c.arg("mount").args(options).args(["--jobs", "1", IMAGE]);
        c
    });
    removed_beside(&s, IMAGE);
    if options.is_empty() {
        // Blobs no name reaches and layers half unpacked are no problem
        // (checked once: hashing the blobs is slow in a debug build).
        let check = s.run(&["system", "check"]).ok();
        assert_eq!(
            check.stdout,
            format!("{BLOBS} blobs and 0 index entries checked: no problem found\n")
        );
    }
    let refused = paused.resume();
    assert_ne!(refused.code, 0, "the mount succeeded: {}", refused.stdout);
    assert_eq!(refused.stdout, "");
    assert_eq!(
        refused.stderr,
        format!(
            "Error: store: blob {FULL_ID} was removed by another strata process during this operation; run it again\n"
        )
    );
    // Taken back whole: no record, no tree, no overlay.
    assert_eq!(s.run(&["mount"]).ok().stdout, "");
    let state = std::fs::read_dir(s.root().join(".strata/mounts")).unwrap();
    assert_eq!(state.count(), 0, "a mount's state directory is left");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(s.root().to_str().unwrap()), "{mounts}");
    let cache = s.root().join(".strata/rootfs/sha256");
    let unpacked = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    if options.is_empty() {
        // Every layer was unpacked: none lost its blob under the unpack.
        assert_eq!(unpacked(), 4);
    }
    after_the_lease(&s);
    assert_eq!(
        unpacked(),
        0,
        "the next collection takes the unpacked layers"
    );
}

fn load_debian(s: &Strata) {
    s.run(&["load", "-i", fixture("debian-docker.tar").to_str().unwrap()])
        .ok();
}

/// Removes the image by `name` while a command reading it is stopped in
/// its lease: the image is gone at once, every blob stays.
fn removed_beside(s: &Strata, name: &str) {
    let removed = s.run(&["rmi", name]).ok();
    assert!(
        removed.stdout.contains(&format!("Deleted: {FULL_ID}")),
        "{}",
        removed.stdout
    );
    assert_eq!(s.run(&["images", "-aq"]).ok().stdout, "");
    assert_eq!(blob_count(s), BLOBS, "the lease keeps every blob");
}

/// Once the command has ended: its lease is gone, the next collection
/// takes the blobs, and the store is sound.
fn after_the_lease(s: &Strata) {
    let leases = s.root().join(".strata/leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    assert_eq!(
        blob_count(s),
        BLOBS,
        "nothing collects before the next removal"
    );
    collected(s);
    let check = s.run(&["system", "check"]).ok();
    assert_eq!(
        check.stdout,
        "0 blobs and 0 index entries checked: no problem found\n"
    );
}

fn blob_count(s: &Strata) -> usize {
    std::fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

/// Runs a collection (any removal does one) and checks that it took every
/// blob of the removed image.
fn collected(s: &Strata) {
    s.run(&["load", "-i", common::demo_archive().to_str().unwrap()])
        .ok();
    s.run(&["rmi", "strata-demo/hello:1.0"]).ok();
    assert_eq!(blob_count(s), 0, "the removed image's blobs are collected");
}

/// A fresh store pulls `name` as the Debian fixture's image.
fn pulled_whole(name: &str) {
    let other = Strata::isolated();
    other.reg(&["pull", "-q", name]).ok();
    assert_eq!(other.reg(&["images", "-q"]).ok().stdout, format!("{ID}\n"));
}

/// A strata command stopped (SIGSTOP) while it holds its lease. Dropped
/// without [`Paused::resume`] (a failed test), the command is killed.
struct Paused {
    child: Option<Child>,
}

impl Paused {
    /// Lets the command go on and waits for its end.
    fn resume(mut self) -> Run {
        let child = self.child.take().unwrap();
        signal(&child, Signal::CONT);
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            signal(&child, Signal::CONT);
            let _ = child.wait();
        }
    }
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32).unwrap()
}

fn signal(child: &Child, sig: Signal) {
    // Gone already is fine: there is nothing left to stop or resume.
    let _ = rustix::process::kill_process(pid(child), sig);
}

/// Starts the command `make` gives and stops it in the middle: after it
/// took its lease and before it dropped it, at a moment it does not hold
/// the store's lock (which the `rmi` beside it needs). A command that got
/// past its lease before the stop landed is let finish, and `make` is
/// asked for the next try (a few at most: the lease is held for far longer
/// than a stop takes).
fn in_flight(s: &Strata, mut make: impl FnMut() -> Command) -> Paused {
    for _ in 0..5 {
        let mut cmd = make();
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let paused = Paused { child: Some(child) };
        if stopped_in_lease(s, paused.child.as_ref().unwrap()) {
            return paused;
        }
        let run = paused.resume().ok();
        eprintln!("the command ended its lease before it was stopped; again:\n{run:?}");
    }
    panic!("the command never was stopped inside its lease");
}

/// True once `child` is stopped with its lease in the store and the
/// store's lock free; false when its lease came and went first.
fn stopped_in_lease(s: &Strata, child: &Child) -> bool {
    let leases = s.root().join(".strata/leases");
    let prefix = format!("lease-{}-", child.id());
    let leased = || {
        std::fs::read_dir(&leases).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !leased() {
        if exited(child) {
            return false;
        }
        assert!(Instant::now() < deadline, "no lease appeared in {leases:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.root().join(".strata/lock"))
        .unwrap();
    loop {
        signal(child, Signal::STOP);
        // The stop is delivered asynchronously: wait until every thread
        // has stopped (or the process ended), reaping nothing.
        let status = rustix::process::waitid(
            WaitId::Pid(pid(child)),
            WaitIdOptions::STOPPED | WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        )
        .unwrap()
        .unwrap();
        if !status.stopped() || !leased() {
            return false;
        }
        match lock.try_lock() {
            Ok(()) => {
                lock.unlock().unwrap();
                return true;
            }
            // Stopped holding the lock: let it release it, and stop it
            // again.
            Err(TryLockError::WouldBlock) => {
                signal(child, Signal::CONT);
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::Error(e)) => panic!("cannot try the store's lock: {e}"),
        }
    }
}

/// True when the child has ended (not reaped: its output is still to be
/// collected).
fn exited(child: &Child) -> bool {
    rustix::process::waitid(
        WaitId::Pid(pid(child)),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
    )
    .unwrap()
    .is_some()
}
