//! `strata rmi IMAGE...`

use std::io::Write;

use strata::transport::store::{LookupError, Removal, RemoveError, Store};

use crate::cli::Reported;
use crate::cli::args::RmiArgs;

/// Runs `rmi`: each image in turn; failures are reported and the rest
/// still removed. With `-f`, an image that does not exist is not a failure.
pub fn run(store: &Store, args: &RmiArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut errors = Vec::new();
    let mut fatal = false;
    for name in &args.images {
        match store.remove(name, args.force) {
            Ok(records) => {
                for r in records {
                    match r {
                        Removal::Untagged(name) => {
                            writeln!(out, "Untagged: {}", name.familiar_string())?
                        }
                        Removal::Deleted(d) => writeln!(out, "Deleted: {d}")?,
                    }
                }
            }
            // docker names a missing image as it was typed here.
            Err(RemoveError::Lookup(LookupError::NotFound(_))) => {
                errors.push(format!("No such image: {name}"))
            }
            Err(e) => {
                fatal = true;
                errors.push(e.to_string());
            }
        }
    }
    out.flush()?;
    if errors.is_empty() {
        return Ok(());
    }
    eprintln!("Error: {}", errors.join("\nError: "));
    if args.force && !fatal {
        return Ok(());
    }
    Err(Reported(1).into())
}
