//! Output formatting that matches the docker 20.10 CLI byte for byte: sizes,
//! relative and absolute times, cell truncation, tab-aligned tables and
//! `--format` Go templates with docker's extra functions.

mod check;
mod duration;
mod funcs;
mod inspect;
mod json;
mod row;
mod size;
mod table;
mod template;
mod text;
mod time;
mod tz;

pub use duration::{created_since, human_duration};
pub use row::RowType;
pub use size::{format_g, human_size, human_size_precision};
pub use table::TableWriter;
pub use template::{FormatError, OutputFormat, Template, write_rows, write_rows_typed};
pub use text::{ellipsis, truncate_id};
pub use time::{go_time_string, rfc3339_local, rfc3339_nano};
