//! Running jobs: the [`executor::Executor`] seam and its first implementation, [`local`] (a
//! pool of threads running process groups), the runner (argv through
//! duct in a process group, never a shell, then the delivery steps) and the watchdog (deadlines
//! and cancels, signalled to the job's process group), and temp outputs named after their claim
//! (swept after a crash); `notifier` delivers `notify:` webhooks and commands and `openlineage`
//! a job's OpenLineage run events, both through the `courier` (a bounded, retrying queue on a
//! thread of its own); `progress` reads ffmpeg's `-progress` output.

pub mod by_plan;
pub mod courier;
pub mod executor;
pub mod fenced_publish;
pub mod hooks;
pub mod lineage;
pub mod local;
pub mod notifier;
pub mod openlineage;
pub mod plan;
pub mod progress;
pub mod provenance;
mod resume;
pub mod runner;
pub mod slurm;
mod step;
pub mod temps;
pub mod terminate;
pub mod watchdog;
