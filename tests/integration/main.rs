//! The single integration-test binary: real binary, real temp folders, real processes.

mod check_explain;
mod cli;
mod cli_output;
mod cluster;
mod coverage;
mod daemon;
mod deliveries;
mod editorial;
mod env;
mod hardening;
mod hardening_rules;
mod hardening_run;
mod media;
mod metrics;
mod notify;
mod operations;
mod packaging;
mod pg;
mod pg_cluster;
mod poll;
mod progress;
mod sd_notify;
mod sequences;
mod store;
mod watch;
