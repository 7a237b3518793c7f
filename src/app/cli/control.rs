//! Clap types of the commands that change when queued jobs start (`bump`, `pause`, `resume`,
//! `run-now`).
//! What they do is `app::control`'s.

use crate::app::cli::{StateArgs, Verbosity};

/// `bump --help`'s examples.
pub const BUMP_EXAMPLES: &str = "Examples:\n  shotrouter bump 1234 1235 --priority 10\n  shotrouter bump 1234 --top   # starts next\n\nSee docs/operations.md.";
/// `pause --help`'s examples.
pub const PAUSE_EXAMPLES: &str = "Examples:\n  shotrouter pause --node render07   # drain before maintenance\n  shotrouter pause --rule archive-copy\n\nSee docs/operations.md.";
/// `resume --help`'s examples.
pub const RESUME_EXAMPLES: &str =
    "Examples:\n  shotrouter resume --node render07\n  shotrouter resume --rule archive-copy";
/// `run-now --help`'s examples.
pub const RUN_NOW_EXAMPLES: &str =
    "Example:\n  shotrouter run-now 1234 1235\n\nSee docs/operations.md.";

/// `shotrouter bump`.
#[derive(Debug, Clone, clap::Args)]
pub struct BumpArgs {
    /// Where the store is.
    #[command(flatten)]
    pub state: StateArgs,
    /// Job ids (queued ones; others are left as they are).
    #[arg(required = true)]
    pub ids: Vec<i64>,
    /// The new priority: higher starts first (a rule's `priority:` is 0 unless set).
    #[arg(
        long,
        allow_negative_numbers = true,
        required_unless_present = "top",
        conflicts_with = "top"
    )]
    pub priority: Option<i32>,
    /// One above every queued job's priority, so these start next.
    #[arg(long)]
    pub top: bool,
    /// Print JSON: the jobs bumped, with their priority, and those that were not.
    #[arg(long)]
    pub json: bool,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `shotrouter pause` and `shotrouter resume`: one node or one rule.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct PauseArgs {
    /// Where the store is.
    #[command(flatten)]
    pub state: StateArgs,
    /// A node, by the name `shotrouter status` lists (its host name unless `--node` named it).
    #[arg(long, group = "target")]
    pub node: Option<String>,
    /// A rule, by name.
    #[arg(long, group = "target")]
    pub rule: Option<String>,
    /// Print JSON: what is paused, and whether this changed it.
    #[arg(long)]
    pub json: bool,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `shotrouter run-now`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunNowArgs {
    /// Where the store is.
    #[command(flatten)]
    pub state: StateArgs,
    /// Job ids (queued ones; others are left as they are).
    #[arg(required = true)]
    pub ids: Vec<i64>,
    /// Print JSON: the jobs let go, and those that were not.
    #[arg(long)]
    pub json: bool,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}
