//! `strata tag SOURCE TARGET`

use strata::transport::store::Store;

use crate::cli::args::TagArgs;

/// Runs `tag`: silent on success, as docker.
pub fn run(store: &Store, args: &TagArgs) -> anyhow::Result<()> {
    store.tag(&args.source, &args.target)?;
    Ok(())
}
