//! keep-rust: keeps every entry (strata's plugin benchmark: what an entry
//! costs to cross into a Rust guest and back).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "layer-transform",
});

use exports::strata::plugin::layer_transformer::Guest;
use strata::plugin::types::{Decision, EntryHeader, LayerInfo, Replacement};

struct Keep;

impl Guest for Keep {
    fn begin(_settings: Vec<(String, String)>, _layer: LayerInfo) -> Result<(), String> {
        Ok(())
    }

    fn entries(batch: Vec<EntryHeader>) -> Result<Vec<Decision>, String> {
        Ok(batch.iter().map(|_| Decision::Keep).collect())
    }

    fn finish() -> Result<Vec<Replacement>, String> {
        Ok(Vec::new())
    }
}

export!(Keep);
