//! The command line: `cli` (the only clap user) parses, [`run`](crate::run) dispatches to the
//! commands, `ops` reads the store's history for the operations commands, `explain` shows what
//! rules do, `logfmt` writes the text log's lines.

pub mod cli;
pub mod commands;
pub mod explain;
pub mod logfmt;
pub mod ops;
