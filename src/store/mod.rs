//! The job store: every file seen, every job and every published output, and editorial's cut
//! revisions. Three traits are the whole interface: [`queue::JobQueue`] for the engine
//! (enqueue, claim with fencing tokens, group commits, recovery, leases),
//! [`history::JobHistory`] for the operations commands and [`cuts::CutStore`] for cuts.
//! [`sqlite::SqliteStore`] implements them, embedded; another backend implements the same
//! traits and runs the same contract suite (`contract/`). This file holds the backend-neutral
//! types.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(test)]
mod contract;
pub mod control;
pub mod cuts;
mod encoding;
pub mod history;
pub mod job;
pub mod lineage;
mod lineage_walk;
pub mod location;
mod open;
pub mod postgres;
pub mod queue;
pub mod run;
pub mod sqlite;
mod url;
pub mod write;

pub use location::Location;
pub use open::{open_cuts, open_history, open_ops, open_queue, open_worker_queue};
pub use run::RunHandle;

/// What the operations side reads and changes: jobs' history and cuts, on one connection (the
/// HTTP server's pool keeps these).
pub trait OpsStore: history::JobHistory + cuts::CutStore {}

impl<T: history::JobHistory + cuts::CutStore> OpsStore for T {}

/// A job's id in the store.
pub type JobId = i64;

/// One step's argv as raw bytes.
pub type RawArgv = Vec<Vec<u8>>;

/// A stored file version: (device, inode, size, mtime in ns); the v2 store, which leaves the
/// device out of a version's identity, shows it as 0.
pub type StoredVersion = (u64, u64, u64, i64);

/// Job states, stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its declared inputs (`inputs:` of its rule): not claimable until they are
    /// there; what it waits for is its result.
    Waiting,
    /// Waiting for a worker.
    Queued,
    /// Claimed by a node that is about to run it (the v2 store only).
    Claimed,
    /// A worker runs it.
    Running,
    /// Succeeded.
    Done,
    /// Failed after its last attempt.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Never run: the rule's `frames:` leaves the file out (a frame outside the cut); the
    /// reason is recorded. Never retried, never counted failed.
    Skipped,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Queued => "queued",
            Status::Claimed => "claimed",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    /// Every state, in a job's order of life.
    pub const ALL: [Status; 8] = [
        Status::Waiting,
        Status::Queued,
        Status::Claimed,
        Status::Running,
        Status::Done,
        Status::Failed,
        Status::Cancelled,
        Status::Skipped,
    ];

    /// Parses the stored text (and the CLI's `--status`).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state folder is on a file system where SQLite's WAL is unsafe.
    #[error(
        "state folder `{}` is on a network or FUSE file system ({kind}), where SQLite's write-ahead log is unsafe; put it on a local disk with --state",
        path.display()
    )]
    NetworkFileSystem {
        /// The folder.
        path: PathBuf,
        /// nfs, cifs, fuse...
        kind: &'static str,
    },
    /// The folder cannot be created or written.
    #[error("state folder `{}` is not usable: {reason}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file exists but is not a shotrouter store.
    #[error("`{}` is not a shotrouter state file ({reason}); it was left untouched: move it away or choose another --state", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The file was written by a newer shotrouter.
    #[error("`{}` has schema version {found}, newer than this shotrouter's {supported}; upgrade shotrouter", path.display())]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// The newest version the backend that refused it knows.
        supported: i32,
    },
    /// The file was written by an older shotrouter, and only the daemon upgrades a store: the
    /// daemon of the older release may still be using it.
    #[error("`{}` has schema version {found}, older than this shotrouter's {current}; stop the daemon of the previous release and start `shotrouter watch` of this one, which upgrades it in place", path.display())]
    Outdated {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// The version this backend writes.
        current: i32,
    },
    /// There is no store where one was expected (the CLI never creates one).
    #[error("no shotrouter state at `{}`; give --state (the folder `watch` uses, by default `.shotrouter` beside the rules file)", .0.display())]
    Missing(PathBuf),
    /// A write for a job presented a fencing token that another claim has superseded (or the
    /// job was cancelled); it was refused and the attempt that made it must stop.
    #[error(
        "job {id}: claim token {token} is stale (the job was claimed again or cancelled); write refused"
    )]
    Stale {
        /// The job.
        id: JobId,
        /// The token presented.
        token: i64,
    },
    /// SQLite failed.
    #[error("state database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL statement failed, or the connection broke while it ran.
    #[error("PostgreSQL store error: {}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    /// PostgreSQL cannot be reached or refused us; `url` has its password redacted.
    #[error(
        "cannot connect to the PostgreSQL store `{url}`: {reason}; check that the server runs and accepts this machine, and the user, database and password (in the URL, `?passfile=`, PGPASSWORD or ~/.pgpass)"
    )]
    Connect {
        /// The store's URL, password redacted.
        url: String,
        /// What the server or the network said (never the password).
        reason: String,
    },
    /// TLS to PostgreSQL cannot be set up from the URL's settings (no CA file, a bad one).
    #[error("cannot connect to the PostgreSQL store `{url}` over TLS: {source}")]
    TlsSetup {
        /// The store's URL, password redacted.
        url: String,
        /// What is wrong with the settings.
        #[source]
        source: postgres::tls::TlsError,
    },
    /// The TLS handshake with PostgreSQL failed (a refused certificate, no TLS on the server).
    #[error("cannot connect to the PostgreSQL store `{url}` over TLS: {reason}")]
    Tls {
        /// The store's URL, password redacted.
        url: String,
        /// The client's error and its causes, one line (never the password).
        reason: String,
    },
    /// The server takes this login only over TLS, and the URL asked for none.
    #[error(
        "cannot connect to the PostgreSQL store `{url}`: {reason}; the server accepts only TLS connections from here: add `sslmode=verify-full&sslrootcert=PATH` (or `sslmode=require`) to the URL, or set PGSSLMODE"
    )]
    TlsRequired {
        /// The store's URL, password redacted.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The PostgreSQL database holds no shotrouter schema (the CLI never creates one).
    #[error(
        "no shotrouter store in `{url}`; start `shotrouter watch` or `shotrouter worker` with this --store once, which creates it"
    )]
    NoSchema {
        /// The store's URL, password redacted.
        url: String,
    },
    /// A cut revision's number is taken, or is not the next one: another import of the cut
    /// ran at the same time.
    #[error(
        "cut `{name}` changed while this import was computed (revision {revision} is taken, or not the next); import the file again"
    )]
    CutRevision {
        /// The cut.
        name: String,
        /// The revision that could not be stored.
        revision: i64,
    },
    /// A stored cut revision does not read back (written by another build, or edited by hand).
    #[error("cut `{name}` revision {revision} is unreadable in the store: {reason}")]
    CutData {
        /// The cut.
        name: String,
        /// The revision.
        revision: i64,
        /// What the JSON reader said.
        reason: String,
    },
    /// A `--store` value that cannot be used.
    #[error("--store `{value}`: {reason}")]
    Location {
        /// The value as given, password redacted.
        value: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// One row of `shotrouter jobs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    /// Id.
    pub id: JobId,
    /// Rule name.
    pub rule: String,
    /// Input path (lossy UTF-8).
    pub path: String,
    /// Status.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Exit status or failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// The published product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The node that claims it, or last ran it (the v2 store only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How far its ffmpeg step got, while it runs (`progress: ffmpeg`), as its node last
    /// recorded it (about once a second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
    /// Its priority: its rule's `priority:`, or what `shotrouter bump` gave it.
    pub priority: i32,
}

/// How far a running job's ffmpeg step got, recorded in the store by the node that runs it so
/// every node, `shotrouter job` and the API see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct JobProgress {
    /// Frames written so far.
    pub frame: u64,
    /// Frames the step will write, when known.
    #[serde(default)]
    pub total_frames: Option<u64>,
    /// Encoding speed, frames per second × 1000.
    #[serde(default)]
    pub fps_milli: u32,
}

impl JobProgress {
    /// As stored (JSON text).
    pub fn to_text(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// Read back; `None` for text this build cannot read (shown as no progress).
    pub fn from_text(text: Option<&str>) -> Option<JobProgress> {
        serde_json::from_str(text?).ok()
    }
}

/// Everything about one job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobDetail {
    /// The row.
    #[serde(flatten)]
    pub row: JobRow,
    /// Rule definition hash.
    pub rule_hash: String,
    /// Input version.
    pub input: Option<StoredVersion>,
    /// Each step's argv (lossy UTF-8 for display).
    pub steps: Vec<Vec<String>>,
    /// Each step's argv as raw bytes.
    #[serde(skip)]
    pub raw_steps: Vec<RawArgv>,
    /// The argv its last claim ran, when they differ from `steps` (a worker's `--map`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran: Option<RanSteps>,
    /// Its run on a farm scheduler, as `executor:id` (`slurm:1234_7`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub farm_run: Option<String>,
    /// What its successful run used: programs, declared inputs, the rule's work hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<lineage::RunRecord>,
}

/// A stored remote run (`slurm:1234_7#digest`) as people read it: `slurm:1234_7`.
pub(crate) fn farm_run(stored: Option<String>) -> Option<String> {
    stored.map(|text| match text.split_once('#') {
        Some((run, _)) => run.to_string(),
        None => text,
    })
}

/// The argv a job's last claim ran where it differs from the planned one, and the node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RanSteps {
    /// The node that ran them.
    pub node: Option<String>,
    /// Each step's argv (lossy UTF-8 for display).
    pub steps: Vec<Vec<String>>,
    /// Each step's argv as raw bytes.
    #[serde(skip)]
    pub raw_steps: Vec<RawArgv>,
}

impl RanSteps {
    /// What a store recorded (`ran_steps`, `ran_node`, and whether they belong to the job's
    /// last claim), shown when they belong to it and differ from the `planned` argv.
    pub(crate) fn recorded(
        ran: Option<Vec<u8>>,
        node: Option<String>,
        of_last_claim: bool,
        planned: &[RawArgv],
    ) -> Option<RanSteps> {
        let raw_steps = encoding::decode_steps(&ran.filter(|_| of_last_claim)?);
        (raw_steps != planned).then(|| RanSteps {
            node,
            steps: raw_steps
                .iter()
                .map(|s| s.iter().map(|a| encoding::lossy(a)).collect())
                .collect(),
            raw_steps,
        })
    }
}

/// What `shotrouter status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Jobs running.
    pub running: u64,
    /// Of those, jobs whose run is a farm scheduler's (`executor: slurm`): pending or running
    /// there.
    pub on_farm: u64,
    /// Jobs claimed by a node, not yet started (always 0 in the v1 store).
    pub claimed: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs waiting for their declared inputs.
    pub waiting: u64,
    /// Jobs failed in the last 24 h.
    pub failed_24h: u64,
    /// Jobs skipped in the last 24 h: frames a rule's `frames:` left out.
    pub skipped_24h: u64,
    /// Jobs done in the last hour.
    pub done_1h: u64,
    /// Jobs done in the last 24 h.
    pub done_24h: u64,
    /// Age of the oldest queued job, seconds.
    pub oldest_queued_s: Option<i64>,
    /// Files known.
    pub files: u64,
    /// The nodes that ran a daemon on this store, most recently seen first.
    pub nodes: Vec<NodeReport>,
    /// The nodes and rules paused (`shotrouter pause`).
    pub paused: Vec<control::Pause>,
    /// Queued jobs no live node can take (no node holds their `tags:`).
    pub waiting_for_tags: Vec<control::TagWait>,
    /// Queued jobs the watcher holds outside their rule's `window:`, per rule.
    pub waiting_for_window: Vec<control::WindowWait>,
}

/// A node of `shotrouter status`: when its daemon was last alive and what it cannot cover.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeReport {
    /// Its name (the host name, by default).
    pub name: String,
    /// Seconds since its last heartbeat (every 10 s while its daemon runs).
    pub last_seen_s: i64,
    /// What is wrong with its coverage of the tree, when something is (`degraded`).
    pub health: Option<String>,
    /// What it does: `watcher`, `worker` or `watcher+worker` (unknown for older nodes).
    pub role: Option<String>,
    /// Jobs it has claimed or runs now.
    pub running: u64,
    /// Whether it is paused (`shotrouter pause --node`): it claims nothing new.
    pub paused: bool,
}

impl StatusReport {
    /// Marks the nodes that [`StatusReport::paused`] names.
    pub(crate) fn mark_paused_nodes(&mut self) {
        for node in &mut self.nodes {
            node.paused = self.paused.iter().any(
                |p| matches!(&p.target, control::PauseTarget::Node(name) if *name == node.name),
            );
        }
    }
}

/// What the store knows of one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileRecord {
    /// The path.
    pub path: String,
    /// Last version seen: (dev, ino, size, mtime ns).
    pub version: Option<StoredVersion>,
    /// Whether it was present at the first start and never run.
    pub baseline: bool,
    /// Its jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// Rule and job that published this file, if shotrouter made it.
    pub produced_by: Option<(String, JobId)>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
