//! Shared test helpers: what a test does when it cannot run its real part ([`require`]), waits
//! on the daemon's poll passes read from its metrics file ([`passes`]), and a real one-node Slurm
//! cluster ([`slurm`]). The C programs beside them (`argvdump.c`, `slowwriter.c`) are built by
//! `daemon::compile_helper`.

pub mod passes;
pub mod require;
pub mod slurm;
