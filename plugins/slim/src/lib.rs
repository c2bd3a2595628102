//! slim: a strata layer transform that drops documentation, manual pages and
//! the message catalogs of every locale not kept, deciding on headers alone
//! (it never asks for an entry's content).
//!
//! Settings: `keep-locales`, locale names separated by commas (default
//! `C.UTF-8`, which needs no catalog: every translation goes).

mod rules;

use std::cell::RefCell;

use rules::{KeptLocales, Slimmer};

wit_bindgen::generate!({
    path: "../../wit",
    world: "layer-transform",
});

use exports::strata::plugin::layer_transformer::Guest;
use strata::plugin::log;
use strata::plugin::types::{Decision, EntryHeader, EntryKind, LayerInfo, Replacement};

/// What one layer's instance remembers between calls.
#[derive(Default)]
struct Layer {
    slim: Slimmer,
    info: Option<LayerInfo>,
}

thread_local! {
    static LAYER: RefCell<Layer> = RefCell::new(Layer::default());
}

struct Slim;

impl Guest for Slim {
    fn begin(settings: Vec<(String, String)>, layer: LayerInfo) -> Result<(), String> {
        let mut kept = KeptLocales::default();
        for (key, value) in &settings {
            match key.as_str() {
                "keep-locales" => kept = KeptLocales::parse(value)?,
                other => {
                    return Err(format!(
                        "unknown setting `{other}` (slim takes keep-locales)"
                    ));
                }
            }
        }
        LAYER.with_borrow_mut(|l| {
            *l = Layer {
                slim: Slimmer::new(kept),
                info: Some(layer),
            };
        });
        Ok(())
    }

    fn entries(batch: Vec<EntryHeader>) -> Result<Vec<Decision>, String> {
        LAYER.with_borrow_mut(|l| batch.iter().map(|h| l.decide(h)).collect())
    }

    fn finish() -> Result<Vec<Replacement>, String> {
        LAYER.with_borrow(|l| {
            let (index, count) = l.info.as_ref().map_or((0, 0), |i| (i.index + 1, i.count));
            log::info(&format!(
                "layer {index}/{count}: dropped {} entries ({} bytes)",
                l.slim.dropped, l.slim.dropped_bytes
            ));
        });
        Ok(Vec::new())
    }
}

impl Layer {
    fn decide(&mut self, header: &EntryHeader) -> Result<Decision, String> {
        let hardlink_to = match header.kind {
            EntryKind::Hardlink => header.link_target.as_deref(),
            _ => None,
        };
        let file = header.kind == EntryKind::File;
        if self
            .slim
            .drops(&header.path, header.size, file, hardlink_to)?
        {
            Ok(Decision::Drop)
        } else {
            Ok(Decision::Keep)
        }
    }
}

export!(Slim);

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: EntryKind, size: u64, link: Option<&str>) -> EntryHeader {
        EntryHeader {
            path: path.to_string(),
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: link.map(str::to_string),
            xattrs: Vec::new(),
            devmajor: 0,
            devminor: 0,
        }
    }

    #[test]
    fn counts_what_it_drops() {
        let mut layer = Layer::default();
        let batch = [
            header("usr/share/doc/a/copyright", EntryKind::File, 10, None),
            header("usr/share/man/man1/x.1.gz", EntryKind::File, 5, None),
            header("usr/bin/x", EntryKind::File, 100, None),
        ];
        let decisions: Vec<_> = batch.iter().map(|h| layer.decide(h).unwrap()).collect();
        assert!(matches!(
            decisions[..],
            [Decision::Drop, Decision::Drop, Decision::Keep]
        ));
        assert_eq!((layer.slim.dropped, layer.slim.dropped_bytes), (2, 15));
    }

    #[test]
    fn a_kept_hard_link_to_a_dropped_file_is_an_error() {
        let mut layer = Layer::default();
        layer
            .decide(&header("usr/share/doc/a/README", EntryKind::File, 3, None))
            .unwrap();
        let err = layer
            .decide(&header(
                "usr/bin/readme",
                EntryKind::Hardlink,
                0,
                Some("usr/share/doc/a/README"),
            ))
            .unwrap_err();
        assert!(
            err.contains("usr/bin/readme names usr/share/doc/a/README"),
            "{err}"
        );
        // A link to a kept file, and a dropped link, are fine.
        layer
            .decide(&header("usr/bin/x", EntryKind::File, 3, None))
            .unwrap();
        assert!(matches!(
            layer.decide(&header(
                "usr/bin/y",
                EntryKind::Hardlink,
                0,
                Some("usr/bin/x")
            )),
            Ok(Decision::Keep)
        ));
        assert!(matches!(
            layer.decide(&header(
                "usr/share/doc/b",
                EntryKind::Hardlink,
                0,
                Some("usr/share/doc/a/README")
            )),
            Ok(Decision::Drop)
        ));
    }
}
