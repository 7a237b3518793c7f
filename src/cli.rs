//! The command line: clap types only. Each subcommand's `--help` ends with an example.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::rules::EventKind;

/// Routes files arriving in a shot tree to the jobs that must run on them.
#[derive(Debug, Parser)]
#[command(name = "shotrouter", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate a rules file; print every error with its line and column.
    #[command(
        after_help = "Example:\n  shotrouter check rules/demo.yaml\n\nExit status: 0 valid, 2 invalid."
    )]
    Check {
        /// The rules file.
        rules: PathBuf,
    },
    /// Show which rules a path would trigger and the exact commands, without running anything.
    #[command(
        after_help = "Example:\n  shotrouter explain rules/demo.yaml demo/shots/sh010/renders/beauty/sh010_beauty.1001.tif\n  shotrouter explain -v --json rules/demo.yaml shots/sh010/plate.mxf"
    )]
    Explain {
        /// The rules file.
        rules: PathBuf,
        /// Paths to explain (they need not exist); relative paths are taken from the current folder.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also list the rules that do not match, and why.
        #[arg(short, long)]
        verbose: bool,
        /// Print one JSON array instead of text.
        #[arg(long)]
        json: bool,
        /// The event to explain for.
        #[arg(long, value_enum, default_value = "close-write")]
        event: EventArg,
    },
    /// Watch the shot tree and run the jobs each arriving file triggers.
    #[command(
        after_help = "Examples:\n  shotrouter watch rules/demo.yaml\n  shotrouter watch --once rules/demo.yaml     # process what is there now, then exit\n\nStop with SIGINT or SIGTERM: running jobs get --grace to finish."
    )]
    Watch(WatchArgs),
}

/// Options of `shotrouter watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The rules file; it is reloaded when it changes.
    pub rules: PathBuf,
    /// Scan the roots, run every job the files present trigger, wait, and exit (0: all succeeded).
    #[arg(long)]
    pub once: bool,
    /// How long running jobs may finish after SIGINT/SIGTERM before they are killed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Where the job store and job logs go (default: `.shotrouter/` beside the rules file).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Keep no job store: nothing survives a restart (for throwaway runs and benchmarks).
    #[arg(long)]
    pub no_store: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `--event` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    /// A file written and closed.
    CloseWrite,
    /// A file renamed into place.
    MovedTo,
    /// A file read and closed.
    CloseNowrite,
    /// A file created.
    Create,
    /// A file deleted.
    Delete,
}

impl From<EventArg> for EventKind {
    fn from(e: EventArg) -> EventKind {
        match e {
            EventArg::CloseWrite => EventKind::CloseWrite,
            EventArg::MovedTo => EventKind::MovedTo,
            EventArg::CloseNowrite => EventKind::CloseNowrite,
            EventArg::Create => EventKind::Create,
            EventArg::Delete => EventKind::Delete,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::rules::parse_duration(text)
}
