//! strata: a daemonless Docker/OCI image tool.
//!
//! Every command is a source, zero or more transforms and a sink joined by
//! one copy engine ([`copy`]). Places images live are in [`transport`]; the
//! core image types are in [`image`].

pub mod cancel;
pub mod command;
pub mod compression;
pub mod copy;
pub mod digest;
pub mod format;
pub mod image;
pub mod mirror;
pub mod mount;
mod mountinfo;
pub mod mutate;
pub mod pgzip;
pub mod pipe;
pub mod pipeline;
pub mod plugin;
pub mod progress;
pub mod reference;
pub mod rootfs;
pub mod transport;
