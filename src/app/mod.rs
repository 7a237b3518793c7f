//! The command line: `cli` (the clap types) parses, [`run`](crate::run) dispatches to the
//! commands, `check` validates a rules file, `ops` reads the store's history for the operations
//! commands, `explain` shows what rules do, `logfmt` writes the text log's lines, `packaging`
//! writes the completion scripts and man pages a package ships.

pub mod check;
pub mod cli;
pub mod commands;
pub mod explain;
pub mod logfmt;
pub mod ops;
pub mod packaging;
