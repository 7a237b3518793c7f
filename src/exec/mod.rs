//! Running jobs: the worker pool (limits, fairness, delayed retries) and the runner (argv
//! through duct in a process group, never a shell, with a watchdog for deadlines).

pub mod pool;
pub mod provenance;
pub mod runner;
