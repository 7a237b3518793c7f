//! The options of the long-running commands, `watch` and `worker`: where the store is, how
//! many jobs, how they stop, what they serve.

use std::path::PathBuf;
use std::time::Duration;

use super::{LogFormat, Verbosity, parse_duration};

/// Options of `shotrouter worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The shared store: a `postgres://` URL, or the state folder of a watcher on this machine.
    #[arg(long, env = "SHOTROUTER_STORE")]
    pub store: String,
    /// Jobs at once on this node.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Where a watcher's root is mounted here: `ROOT=PATH`, ROOT a root's `name:` or its path on
    /// the watcher (repeat for each); roots mounted at the same path need none.
    #[arg(long = "map", value_name = "ROOT=PATH", value_parser = parse_map)]
    pub map: Vec<(String, PathBuf)>,
    /// Tags this node holds (comma-separated): it also takes jobs of rules with these `tags:`.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// This node's name, unique in the cluster (default: the host name and `-worker`).
    #[arg(long)]
    pub name: Option<String>,
    /// Where job logs and sequence views go on this machine (default: the store's folder for
    /// SQLite, else `/var/lib/shotrouter/worker` as root or `~/.local/state/shotrouter`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// How long running jobs may finish after SIGINT/SIGTERM before they are killed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// A node whose heartbeat is older than this loses its claims to the others.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Serve the dashboard and JSON API of the shared store on this address (e.g.
    /// `127.0.0.1:8470`); off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// With `--http`: a file holding the bearer token that allows retry, cancel and rerun.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
    /// With `--http`: a host name the server answers besides loopback names and the bound
    /// address (the name in your browser's address bar); repeatable. Other names get 421,
    /// which stops DNS rebinding.
    #[arg(long, value_name = "NAME", requires = "http")]
    pub http_host: Vec<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

fn parse_map(text: &str) -> Result<(String, PathBuf), String> {
    let (root, path) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not ROOT=PATH"))?;
    if root.is_empty() || path.is_empty() {
        return Err(format!("`{text}` is not ROOT=PATH"));
    }
    Ok((root.to_string(), PathBuf::from(path)))
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
    /// The job store, when it is not the SQLite one in the state folder: a `postgres://` URL
    /// shared with other watchers and workers (docs/scale-out.md).
    #[arg(long, env = "SHOTROUTER_STORE", conflicts_with = "no_store")]
    pub store: Option<String>,
    /// Keep no job store: nothing survives a restart (for throwaway runs and benchmarks).
    #[arg(long)]
    pub no_store: bool,
    /// Watch and enqueue only: `shotrouter worker` nodes run every job.
    #[arg(long, conflicts_with_all = ["no_store", "once"])]
    pub no_run: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Delete job logs (`STATE/logs/<rule>/<job>.log`) older than this, at start and hourly
    /// (e.g. `30d`, `12h`); `0` keeps them forever.
    #[arg(long, default_value = "30d", value_parser = parse_keep)]
    pub keep_logs: Duration,
    /// Write the Prometheus metrics (the text `/metrics` serves) to this file every
    /// `--metrics-every` and at exit, replacing it atomically: for node_exporter's textfile
    /// collector on hosts that serve no HTTP.
    #[arg(long, value_name = "PATH", conflicts_with = "no_store")]
    pub metrics_file: Option<PathBuf>,
    /// How often `--metrics-file` is rewritten.
    #[arg(long, default_value = "15s", value_parser = parse_duration, requires = "metrics_file")]
    pub metrics_every: Duration,
    /// Serve the dashboard and JSON API on this address (e.g. `127.0.0.1:8470`); off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// With `--http`: a file holding the bearer token that allows retry, cancel and rerun over
    /// HTTP; without it the API is read-only.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
    /// With `--http`: a host name the server answers besides loopback names and the bound
    /// address (the name in your browser's address bar); repeatable. Other names get 421,
    /// which stops DNS rebinding.
    #[arg(long, value_name = "NAME", requires = "http")]
    pub http_host: Vec<String>,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `--keep-logs`: a duration, or `0` (forever, kept as zero).
fn parse_keep(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}
