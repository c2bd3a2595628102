//! One module per command: parse, build source and sink, call the library,
//! format the output.

pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod mount;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rmi;
pub mod save;
pub mod search;
pub mod tag;
