//! Batch mirroring: many repositories and tags from one registry to one or
//! more others, filtered, in parallel, resumable, with nothing copied twice.
//!
//! A run plans first (repositories, their tags, the filters' verdicts),
//! then copies every selected tag that a target lacks: one HEAD per tag and
//! target tells an unchanged tag (nothing else is asked), one source read
//! feeds every target ([`fanout`]), and each blob crosses to a target
//! registry at most once in the whole run ([`ledger`]). Manifests go after
//! their blobs and an index after its children, so a target never names
//! an image it does not wholly hold; a killed run resumes by running again.
//!
//! - `request`: the step's keys and their checks;
//! - `select`: tag selection;
//! - `plan`: repositories, tags and what each target lacks;
//! - `execute`: copying one tag, its referrers, and pruning;
//! - `run`: the whole run, its progress and its outputs;
//! - `shard`: cutting a run into disjoint shards;
//! - `ledger`, `fanout`: the blob ledger and the fan-out sink.

pub mod execute;
pub mod fanout;
pub mod ledger;
pub mod plan;
pub mod request;
pub mod run;
pub mod select;
pub mod shard;

pub use request::MirrorRequest;
pub use run::run;
pub use shard::Shard;
