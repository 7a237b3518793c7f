//! The single integration-test binary: real binary, real temp folders, real processes.

mod check_explain;
mod cli;
mod cli_output;
mod coverage;
mod daemon;
mod env;
mod hardening;
mod hardening_rules;
mod hardening_run;
mod http_api;
mod http_browser;
mod http_fuzz;
mod media;
mod operations;
mod packaging;
mod poll;
mod sequences;
mod store;
mod watch;
