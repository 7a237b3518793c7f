//! The command line: `cli` (the clap types) parses, [`run`](crate::run) dispatches to the
//! commands, `ops`, `job` and `status` read the store's history for the operations commands,
//! `cut` imports and shows editorial's cuts, `explain` shows what rules do, `logfmt` writes the
//! text log's lines and `logging` installs it, `packaging` writes the completion scripts and
//! man pages a package ships; `table`, `human` and `style` shape text output (widths, times and
//! sizes, colour), `watch_status` repeats `status`, `metrics_file` writes `watch --metrics-file`.

pub mod check;
pub mod cli;
pub mod commands;
pub mod conform;
pub mod control;
pub mod cut;
pub mod explain;
pub mod explain_cut;
pub mod human;
pub mod job;
pub mod lineage;
pub mod logfmt;
pub mod logging;
pub mod metrics_file;
pub mod ops;
pub mod packaging;
pub mod serve;
pub mod status;
pub mod style;
pub mod table;
pub mod watch_status;
