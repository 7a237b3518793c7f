//! The command line: clap types only. Each subcommand's `--help` ends with an example.
//!
//! One concept (the declared command line, which clap and the man pages read as a whole),
//! mostly help text. A command with subcommands of its own has a file here (`cut`), and so do
//! the long-running commands' options (`daemon`); the arguments' meaning lives in `commands`.

mod conform;
mod control;
mod cut;
mod daemon;

pub use conform::{CodecArg, ConformArgs, PickArg};
pub use control::{BumpArgs, PauseArgs, RunNowArgs};
pub use cut::{CutCommand, CutPlace};
pub use daemon::{WatchArgs, WorkerArgs};

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::{MatchesError, ValueSource};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::app::style::ColorChoice;
use crate::rules::EventKind;

/// Routes files arriving in a shot tree to the jobs that must run on them.
#[derive(Debug, Parser)]
#[command(
    name = "shotrouter",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SHOTROUTER_COMMIT"), ")"),
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Colour: `auto` (on a terminal, unless `NO_COLOR` is set), `always` or `never`.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
}

impl Cli {
    /// Parses this process's command line; exits 2 (as clap does for usage errors) when a
    /// `--store` URL typed on it holds a password, which `ps` would show to every user.
    pub fn parse_args() -> Cli {
        let mut command = Cli::command();
        let matches = command.get_matches_mut();
        if let Some(value) = store_password_on_command_line(&matches) {
            command
                .error(
                    clap::error::ErrorKind::ValueValidation,
                    format!(
                        "--store `{}` holds a password, and a command line is visible to every user of the machine (`ps`); keep the password in a password file (`?passfile=PATH`, PGPASSFILE or `~/.pgpass`, mode 600), or pass the URL in SHOTROUTER_STORE from a file only its user can read (systemd's EnvironmentFile=)",
                        crate::store::location::redacted(value)
                    ),
                )
                .exit();
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The `--store` value of the (sub)command `matches` when it was typed on the command line (not
/// taken from SHOTROUTER_STORE: a process's environment is readable only by its user and root)
/// and holds a password.
fn store_password_on_command_line(matches: &ArgMatches) -> Option<&str> {
    // A subcommand without `--store` is passed; a `--store` of another type than String must
    // not be, or the check would quietly stop refusing passwords.
    let store = match matches.try_get_one::<String>("store") {
        Ok(store) => store,
        Err(MatchesError::UnknownArgument { .. }) => None,
        Err(e) => panic!("`--store` must be a String for the password check: {e}"),
    };
    if let Some(value) = store
        && matches.value_source("store") == Some(ValueSource::CommandLine)
        && crate::store::location::url_holds_password(value)
    {
        return Some(value);
    }
    let (_, sub) = matches.subcommand()?;
    store_password_on_command_line(sub)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate a rules file; print every error and warning with its line and column.
    #[command(
        after_help = "Example:\n  shotrouter check rules/demo.yaml\n  shotrouter check --strict --json rules/demo.yaml\n\nExit status: 0 valid (warnings allowed), 2 invalid (or any warning with --strict)."
    )]
    Check {
        /// The rules file.
        rules: PathBuf,
        /// Treat warnings (a program not on PATH, a missing watch root...) as errors: exit 2.
        #[arg(long)]
        strict: bool,
        /// Print one JSON object (ok, errors, warnings, roots) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show which rules a path would trigger and the exact commands, without running anything.
    #[command(
        after_help = "Example:\n  shotrouter explain rules/demo.yaml demo/shots/sh010/renders/beauty/sh010_beauty.1001.tif\n  shotrouter explain -v --json rules/demo.yaml shots/sh010/plate.mxf\n\nExit status: 0 explained, 1 a path is under no watch root or a command cannot be built for it, 2 invalid rules."
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
        /// Where the cuts are read from (rules that name a shot): the state folder (default:
        /// `.shotrouter/` beside the rules file).
        #[arg(long, env = "SHOTROUTER_STATE")]
        state: Option<PathBuf>,
        /// The shared store the cuts are in: a `postgres://` URL, or a state folder.
        #[arg(long, env = "SHOTROUTER_STORE")]
        store: Option<String>,
    },
    /// What the daemon is doing: running, queued, failed, throughput.
    #[command(
        after_help = "Examples:\n  shotrouter status --state /mnt/shows/bigfish/.shotrouter\n  shotrouter status --watch     # refresh every 2 s until Ctrl-C"
    )]
    Status {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print again every `--every` until Ctrl-C: in place on a terminal, one block after
        /// another into a pipe or file.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        /// With `--watch`: how often.
        #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "watch")]
        every: Duration,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// List jobs, newest first.
    #[command(
        after_help = "Examples:\n  shotrouter jobs --status failed --since 12h\n  shotrouter jobs --rule review-quicktime --json"
    )]
    Jobs {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Only jobs in this state: queued, running, done, failed, cancelled, skipped.
        #[arg(long)]
        status: Option<String>,
        /// Only jobs of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only jobs created within this long (e.g. `2h`, `30m`).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Everything about one job, with the end of its log.
    #[command(after_help = "Example:\n  shotrouter job 1234")]
    Job {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// The job's id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Queue failed or cancelled jobs again (planned again with the current rules).
    #[command(
        after_help = "Examples:\n  shotrouter retry 1234 1235\n  shotrouter retry --failed --rule review-quicktime"
    )]
    Retry {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Job ids.
        ids: Vec<i64>,
        /// Every failed job (of `--rule`, if given).
        #[arg(long)]
        failed: bool,
        /// With `--failed`: only this rule's.
        #[arg(long)]
        rule: Option<String>,
        /// Print JSON: the ids queued again and those that were not.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Change queued jobs' priority: higher starts first, on this node and on workers.
    #[command(after_help = control::BUMP_EXAMPLES)]
    Bump(BumpArgs),
    /// Pause a node (it finishes what it runs, claims nothing new) or a rule (its jobs stay
    /// queued on every node); kept in the store until `resume`.
    #[command(after_help = control::PAUSE_EXAMPLES)]
    Pause(PauseArgs),
    /// Resume a paused node or rule.
    #[command(after_help = control::RESUME_EXAMPLES)]
    Resume(PauseArgs),
    /// Let queued jobs start now, outside their rule's `window:`.
    #[command(after_help = control::RUN_NOW_EXAMPLES)]
    RunNow(RunNowArgs),
    /// Cancel queued or running jobs; a running job's process group is killed.
    #[command(after_help = "Example:\n  shotrouter cancel 1234")]
    Cancel {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Print JSON: the ids cancelled and those that were not.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Run a rule again on the files it ran on (after editing it, say), or only where its
    /// products are stale.
    #[command(
        after_help = "Examples:\n  shotrouter rerun --rule review-quicktime --since 24h\n  shotrouter rerun --stale --rule review-quicktime   # only its products `shotrouter stale` lists"
    )]
    Rerun {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// The rule.
        #[arg(long)]
        rule: String,
        /// Only files it ran on within this long.
        #[arg(long, value_parser = parse_duration, conflicts_with = "stale")]
        since: Option<Duration>,
        /// Only the jobs whose products are stale: made from a declared input that has a
        /// newer version now, or by an older definition of the rule (see `shotrouter stale`).
        #[arg(long)]
        stale: bool,
        /// Print JSON: the rule and how many jobs were queued.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// What the store knows of a file: its jobs, their outputs, whether shotrouter made it.
    #[command(
        after_help = "Example:\n  shotrouter files shots/sh010/renders/beauty/sh010_beauty.1001.tif"
    )]
    Files {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Files (relative paths are taken from the current folder).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// What a file was made from (`--up`, the default), or what was made from it (`--down`),
    /// job by job: matched files, declared inputs, products and their copies.
    #[command(
        after_help = "Examples:\n  shotrouter lineage /mnt/san/review/sh010_beauty_v001.mov\n  shotrouter lineage --down shots/luts/show.cube --depth 3\n  shotrouter lineage shots/sh010/renders/beauty/sh010_beauty_v001.1005.tif   # a frame: its sequence\n\nAn input marked CHANGED has a newer version than the one its job read: the product is stale."
    )]
    Lineage {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// The file (relative paths are taken from the current folder; a frame finds its
        /// sequence).
        path: PathBuf,
        /// What it was made from, transitively (the default).
        #[arg(long, conflicts_with = "down")]
        up: bool,
        /// What was made from it, transitively.
        #[arg(long)]
        down: bool,
        /// At most this many jobs away.
        #[arg(long, default_value_t = crate::app::lineage::DEFAULT_DEPTH, value_parser = clap::value_parser!(u32).range(1..))]
        depth: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Products made from a declared input that has a newer version now, or by an older
    /// definition of their rule.
    #[command(
        after_help = "Example:\n  shotrouter stale\n  shotrouter rerun --stale --rule review-quicktime   # make one rule's again"
    )]
    Stale {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Tell the daemon that files are complete, so they are routed at once (a farm's post-task
    /// script, a publish tool): no waiting for a polling pass or a quiet time.
    #[command(
        after_help = "Example:\n  shotrouter notify --state /mnt/shows/bigfish/.shotrouter shots/sh010/plates/sh010_plate.mxf\n\nThe daemon takes the notices within half a second. Exit status: 0 all taken, 2 a path is\nmissing or under no watch root of the store."
    )]
    Notify {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// Complete files (relative paths are taken from the current folder).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Watch the shot tree and run the jobs each arriving file triggers.
    #[command(
        after_help = "Examples:\n  shotrouter watch rules/demo.yaml\n  shotrouter watch --once rules/demo.yaml     # process what is there now, then exit\n\nStop with SIGINT or SIGTERM: running jobs get --grace to finish."
    )]
    Watch(WatchArgs),
    /// Run jobs that watchers queued in a shared store, on this machine (a farm node).
    #[command(
        after_help = "Examples:\n  shotrouter worker --store postgres://shotrouter@db/shotrouter --jobs 4 --map shots=/mnt/shots\n  shotrouter worker --store /srv/show/.shotrouter --name encode-1 --tags gpu\n\nNo rules file: each job carries its planned commands. A job whose tree this machine cannot\nmap, or whose input is missing here, is left to another node. Stop with SIGINT or SIGTERM:\nrunning jobs get --grace to finish."
    )]
    Worker(WorkerArgs),
    /// Serve the dashboard and JSON API of a store, with no watcher (read-mostly).
    #[command(
        after_help = "Example:\n  shotrouter serve --state /mnt/shows/bigfish/.shotrouter --http 127.0.0.1:8470\n  shotrouter serve --state .shotrouter --http 0.0.0.0:8470 --http-token-file /etc/shotrouter/token\n\nStop with SIGINT or SIGTERM. See docs/dashboard.md."
    )]
    Serve {
        /// Where the store is.
        #[command(flatten)]
        state: StateArgs,
        /// The address to listen on; loopback unless you say otherwise.
        #[arg(long, value_name = "ADDR", default_value = crate::http::DEFAULT_ADDR)]
        http: std::net::SocketAddr,
        /// A file holding the bearer token that allows retry, cancel and rerun; without it
        /// the API is read-only.
        #[arg(long, value_name = "FILE")]
        http_token_file: Option<PathBuf>,
        /// A host name the server answers besides loopback names and the bound address (the
        /// name in your browser's address bar); repeatable. Other names get 421, which stops
        /// DNS rebinding.
        #[arg(long, value_name = "NAME")]
        http_host: Vec<String>,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Editorial's cuts: import an EDL or .otio as a new revision, show it, print the frames
    /// each shot needs rendered.
    #[command(
        subcommand,
        after_help = "Examples:\n  shotrouter cut import --rules rules.yaml reel1_v012.edl --name reel1 --fps 24\n  shotrouter cut ranges reel1 --json\n\nSee docs/cuts.md."
    )]
    Cut(CutCommand),
    /// Conform a cut into one review movie from the latest published version of each shot, with
    /// an .otio of what was used; verified before it is written.
    #[command(
        after_help = "Examples:\n  shotrouter conform reel1 --rules rules.yaml --from review --output reel1_conform.mov\n  shotrouter conform --from review --output /tmp/check.mov --codec ffv1 --json\n\nExit status: 0 written and verified, 1 a shot has no product or the movie fails its check\n(nothing is written), 2 usage. See docs/cuts.md."
    )]
    Conform(ConformArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    #[command(
        after_help = "Examples:\n  shotrouter completions bash > ~/.local/share/bash-completion/completions/shotrouter\n  shotrouter completions zsh > ~/.zfunc/_shotrouter\n  shotrouter completions fish > ~/.config/fish/completions/shotrouter.fish\n\nThe Debian package installs all three."
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write one man page per subcommand into DIR (for packagers: `packaging/build-deb`).
    #[command(hide = true)]
    Manpages {
        /// The folder the pages go to (created if missing).
        dir: PathBuf,
    },
}

/// Where the operations commands find the store.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// The state folder (as given to `watch --state`); with a PostgreSQL `--store`, where this
    /// machine's job logs are.
    #[arg(long, env = "SHOTROUTER_STATE", conflicts_with = "rules")]
    pub state: Option<PathBuf>,
    /// The rules file; its default state folder `.shotrouter/` beside it is used.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The shared store: a `postgres://` URL (the password from a passfile or `PGPASSWORD`,
    /// never the command line), or a state folder.
    #[arg(long, env = "SHOTROUTER_STORE", conflicts_with = "rules")]
    pub store: Option<String>,
}

impl StateArgs {
    /// Where the store is: `--store`, else the state folder.
    ///
    /// # Errors
    /// A `--store` URL that cannot be used.
    pub fn location(&self) -> Result<crate::store::Location, crate::error::Error> {
        match &self.store {
            Some(value) => crate::store::Location::parse(value).map_err(crate::error::Error::setup),
            None => Ok(crate::store::Location::Folder(self.dir())),
        }
    }

    /// This machine's job logs: the state folder, unless only a PostgreSQL store was given.
    pub fn logs(&self) -> Option<PathBuf> {
        match (&self.store, &self.state, &self.rules) {
            (Some(store), None, None)
                if store.starts_with("postgres://") || store.starts_with("postgresql://") =>
            {
                None
            }
            (Some(store), None, None) => Some(PathBuf::from(store)),
            _ => Some(self.dir()),
        }
    }

    /// The state folder: `--state`, else beside `--rules`, else `./.shotrouter`.
    pub fn dir(&self) -> PathBuf {
        match (&self.state, &self.rules) {
            (Some(dir), _) => dir.clone(),
            (None, Some(rules)) => crate::rules::absolute(rules)
                .parent()
                .map_or_else(|| PathBuf::from(".shotrouter"), |d| d.join(".shotrouter")),
            (None, None) => PathBuf::from(".shotrouter"),
        }
    }
}

/// `-q`/`-v`: the log filter when `SHOTROUTER_LOG` is not set (it wins: it can name modules).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// Only warnings and errors in the log.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More in the log: `-v` shotrouter's debug lines, `-vv` its trace lines and the libraries'
    /// debug lines.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Verbosity {
    /// The `tracing` filter these flags ask for.
    pub fn filter(self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "warn",
            (false, 0) => "info",
            (false, 1) => "info,shotrouter=debug",
            (false, _) => "debug,shotrouter=trace",
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Shells `shotrouter completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash (bash-completion).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `--store` is a String, which the password check reads: a change of its type must
    /// break this test, not quietly let passwords through.
    #[test]
    fn every_store_option_is_a_string_for_the_password_check() {
        fn walk(command: &clap::Command, found: &mut usize) {
            for arg in command.get_arguments().filter(|a| a.get_id() == "store") {
                assert_eq!(
                    arg.get_value_parser().type_id(),
                    clap::builder::ValueParser::string().type_id(),
                    "`{} --store`",
                    command.get_name()
                );
                *found += 1;
            }
            for sub in command.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut found = 0;
        walk(&Cli::command(), &mut found);
        assert!(found >= 6, "only {found} `--store` options");
        let matches = Cli::command()
            .try_get_matches_from(["shotrouter", "status", "--store", "postgres://u:pw@h/db"])
            .expect("parses");
        assert_eq!(
            store_password_on_command_line(&matches),
            Some("postgres://u:pw@h/db")
        );
        // Two levels down: `cut ranges --store`.
        let matches = Cli::command()
            .try_get_matches_from([
                "shotrouter",
                "cut",
                "ranges",
                "--store",
                "postgres://u:pw@h/db",
            ])
            .expect("parses");
        assert_eq!(
            store_password_on_command_line(&matches),
            Some("postgres://u:pw@h/db")
        );
    }
}
