//! The single integration-test binary: real binary, real temp folders, real processes.

mod cli;
mod daemon;
mod env;
mod media;
mod operations;
mod poll;
mod sequences;
mod store;
mod watch;
