//! Writes strata's shell completions and manual pages at build time, from
//! the same clap definitions the binary parses with (`src/cli/args.rs`,
//! which uses nothing of the library so that this script can include it).
//!
//! They land in `$OUT_DIR/share/` (`completions/strata.bash`, `_strata`,
//! `strata.fish`; `man/strata.1` and a page per command), and also in
//! `$STRATA_GEN_DIR` when it is set, for packaging:
//! `STRATA_GEN_DIR=dist cargo build --release`. `strata completion SHELL`
//! and `strata man` print the same at run time.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "src/cli/args.rs"]
mod args;

fn main() {
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STRATA_GEN_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    write_all(&out.join("share"));
    if let Some(dir) = std::env::var_os("STRATA_GEN_DIR").filter(|d| !d.is_empty()) {
        write_all(&PathBuf::from(dir));
    }
}

/// Completions for bash, zsh and fish, and the manual pages, under `dir`.
fn write_all(dir: &Path) {
    let completions = dir.join("completions");
    let man = dir.join("man");
    for d in [&completions, &man] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut args::Cli::command(), "strata", &completions)
            .unwrap_or_else(|e| panic!("cannot write {shell} completions: {e}"));
    }
    clap_mangen::generate_to(args::Cli::command(), &man)
        .unwrap_or_else(|e| panic!("cannot write manual pages to {}: {e}", man.display()));
}
