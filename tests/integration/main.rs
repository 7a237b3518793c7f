//! The single integration-test binary: real binary, real temp folders, real processes.

mod cli;
mod daemon;
mod env;
mod store;
mod watch;
