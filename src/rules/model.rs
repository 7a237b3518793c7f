//! The rules file as the rest of shotrouter sees it: [`RuleFile`], [`Rule`], [`WatchRoot`], the
//! events a rule fires on, and the defaults a rule gets when it leaves a key out.
//!
//! The loader checks everything as it builds these values, so a loaded [`RuleFile`] is valid:
//! globs and regexes compile, templates name known variables, durations parse.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::deliver::copy::TransferKind;
use crate::deliver::hash::HashKind;
use crate::media::avid::AvidCodec;
use crate::media::keykode::KeyKodeSpec;
use crate::media::sequence::OnGaps;
use crate::media::timecode::TimecodeSpec;
use crate::rules::diag::Diagnostics;
use crate::rules::template::Template;
use crate::rules::verify::VerifyRule;

/// Variables every rule can use, whatever the file.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "path", "rel", "root", "dir", "name", "stem", "ext", "frame", "rule",
];

/// Ignore globs used when a file gives no `ignore:` list: hidden files, temp and partial writes.
pub const DEFAULT_IGNORE: &[&str] = &["**/.*", "**/*.tmp", "**/*.part", "**/*~"];

/// Wait before a failed job's first retry when a rule gives no `backoff:`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);

/// How long a sequence waits for its next frame when its rule gives no `settle:`.
pub const DEFAULT_SEQUENCE_SETTLE: Duration = Duration::from_secs(5);

/// A file-system event a rule can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A file opened for writing was closed: the normal "render wrote a frame".
    CloseWrite,
    /// A file was renamed into a watched folder: the "write to temp, rename into place" idiom.
    MovedTo,
    /// A file opened read-only was closed.
    CloseNowrite,
    /// A file was created (it may still be empty).
    Create,
    /// A file was deleted.
    Delete,
}

impl EventKind {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`EventKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u8);

impl EventSet {
    /// `close_write` and `moved_to`: a file that is complete.
    pub const READY: EventSet = EventSet(EventKind::CloseWrite.bit() | EventKind::MovedTo.bit());

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: EventKind) {
        self.0 |= kind.bit();
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: EventSet) -> EventSet {
        EventSet(self.0 | other.0)
    }
}

/// A folder to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRoot {
    /// The root's name: what the store records paths relative to, so that machines which mount
    /// the same tree at different places agree on a file's identity. Defaults to the folder name.
    pub name: String,
    /// Absolute path (relative entries are resolved against the rules file's folder).
    pub path: PathBuf,
    /// Whether sub-folders are watched too.
    pub recursive: bool,
    /// How changes under the root are noticed.
    pub source: SourceKind,
    /// How a polled root is polled (used when `source` is, or `auto` resolves to, `poll`).
    pub poll: PollSettings,
}

/// How a watch root's changes are noticed (`source:` in `watch:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Chosen at start from the root's file system: inotify on a local one, polling on a
    /// network or FUSE one, where inotify would see only this machine's own writes.
    #[default]
    Auto,
    /// The kernel's inotify: immediate, sees only writes made through this machine's kernel.
    Inotify,
    /// Polling folder times and listings: sees every writer of a network file system.
    Poll,
}

impl SourceKind {
    /// The name used in `rules.yaml` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Auto => "auto",
            SourceKind::Inotify => "inotify",
            SourceKind::Poll => "poll",
        }
    }
}

/// `on_rename:` on a rule: whether a file renamed (or whose folder was renamed) within the
/// tree runs the rule again when its contents already succeeded under the old name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRename {
    /// The store follows the file to its new name; nothing runs. The default, unless the
    /// rule lists `moved_to` in `on:` itself.
    #[default]
    Follow,
    /// Run again on the new name (the product is named after the input, say).
    Rerun,
}

/// `progress:` on a rule: where its steps' progress is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressKind {
    /// shotrouter adds `-progress FILE -nostats` after `ffmpeg` in each ffmpeg step and reads
    /// the frame count and speed ffmpeg writes there.
    Ffmpeg,
}

/// `poll:` on a watch root: how often folders are looked at, and how long a new file must hold
/// still before it counts as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PollSettings {
    /// Between looks at a folder that changed recently (and at files not yet complete).
    pub hot: Duration,
    /// Between looks at every other folder: the longest a file arriving in a quiet folder
    /// waits before it is noticed.
    pub cold: Duration,
    /// How long a new file's size and mtime must hold still before it counts as complete.
    pub quiet: Duration,
}

/// Defaults of `poll:`. The quiet time outlasts an NFS client's shortest attribute cache
/// (`acregmin`, 3 s by default) three times over, so a writer that pauses for less than that
/// between writes is not mistaken for a finished one through a stale cached size.
pub const DEFAULT_POLL: PollSettings = PollSettings {
    hot: Duration::from_secs(2),
    cold: Duration::from_secs(30),
    quiet: Duration::from_secs(10),
};

impl Default for PollSettings {
    fn default() -> Self {
        DEFAULT_POLL
    }
}

/// One compiled, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Globs on the path relative to the watch root; empty when only `regex` is given.
    pub globs: Vec<String>,
    /// Regex on the relative path, whose named captures become variables.
    pub regex: Option<regex::bytes::Regex>,
    /// Events the rule fires on.
    pub events: EventSet,
    /// argv lists run in order; `run:` is a single step.
    pub steps: Vec<Vec<Template>>,
    /// The product the job publishes atomically, if any.
    pub output: Option<Template>,
    /// Longest a job may run before its process group is killed.
    pub timeout: Option<Duration>,
    /// How many times a failed job is tried again.
    pub retries: u32,
    /// Wait before the first retry; it doubles with each further one (capped at 10 minutes).
    pub backoff: Duration,
    /// At most this many jobs of this rule at once (across every node, on a shared store).
    pub concurrency: Option<usize>,
    /// Queued jobs of a higher priority start first (`priority:`, default 0). Not part of the
    /// definition hash: it decides when the rule runs, not what.
    pub priority: i32,
    /// The local times of day its jobs may start (`window:`; empty: any time). Not part of the
    /// definition hash either.
    pub windows: Vec<crate::rules::schedule::Window>,
    /// Only nodes holding every one of these tags run the rule's jobs (`worker --tags`). Not
    /// part of the definition hash: it decides where the rule runs, not what.
    pub tags: Vec<String>,
    /// Whether later rules are skipped for a path this rule matched.
    pub stop: bool,
    /// Quiet time after the last write before the job fires.
    pub settle: Duration,
    /// Frames are grouped into sequences and the job runs once per sequence.
    pub sequence: Option<SequenceRule>,
    /// Gives `{timecode}` (the rule's own, else the file's top-level default).
    pub timecode: Option<TimecodeSpec>,
    /// Gives `{keykode}`.
    pub keykode: Option<KeyKodeSpec>,
    /// Checks on the product before it is published.
    pub verify: Option<VerifyRule>,
    /// `avid:`: an Avid DNxHD/DNxHR name at a rate, giving `{avid.*}`.
    pub avid: Option<AvidCodec>,
    /// `ale:`: where the Avid Log Exchange describing the product is written, beside it.
    pub ale: Option<Template>,
    /// The input is read with ffprobe before planning, giving `{probe.*}`.
    pub probe: bool,
    /// `thumbnail: true`: a small JPEG poster frame of each published product, for the
    /// dashboard. Not part of either hash: a picture of the product is not the product.
    pub thumbnail: bool,
    /// `copy:` or `move:`: the verified delivery of the product (or, without commands, of the
    /// matched file).
    pub transfer: Option<TransferRule>,
    /// What a file renamed within the tree does when this rule already ran on its contents.
    /// Not part of the definition hash: it decides when the rule fires, not what it runs.
    pub on_rename: OnRename,
    /// Where its steps' progress is read from (`progress: ffmpeg`). Not part of the definition
    /// hash: it adds reporting arguments, not work.
    pub progress: Option<ProgressKind>,
    /// Its own `notify:` entries, replacing the file's; `None` uses the file's. Not part of the
    /// definition hash: it tells people, it does not change what runs.
    pub notify: Option<Vec<super::NotifyTarget>>,
    /// Where its jobs run (`executor:`). Not part of the definition hash, like `tags`: it
    /// decides where the rule runs, not what.
    pub executor: super::farm::ExecutorKind,
    /// What its jobs ask of Slurm (`executor: slurm`): the file's `slurm:` with the rule's own
    /// over it.
    pub slurm: Option<super::farm::SlurmRequest>,
    /// `frames:`: which frames of a shot with a cut the rule processes.
    pub frames: super::frames::FrameScope,
    /// `inputs:`: the files its jobs read besides the matched one, waited for, and run again
    /// (or marked stale) when they change.
    pub inputs: Option<super::inputs::DeclaredInputs>,
    /// A hash of what decides its products (commands, product path, checks, inputs, the
    /// file's `vars:`), without what only decides when or where it runs (timeout, retries,
    /// settle...): a change marks its products stale (`shotrouter stale`).
    pub work_hash: String,
    /// Line of the rule in the file, for messages.
    pub line: usize,
    /// A hash of everything that defines what the rule runs, recorded with each job.
    pub definition_hash: String,
}

impl Rule {
    /// Whether any of its templates uses a `{cut.*}` variable: only then are they bound, so a
    /// rule that only limits its frames pays no allocations for them.
    pub fn uses_cut_variables(&self) -> bool {
        let verify = self
            .verify
            .iter()
            .flat_map(|v| v.checks.iter().map(|(_, t)| t));
        let transfer = self.transfer.iter().map(|t| &t.to);
        self.steps
            .iter()
            .flatten()
            .chain(self.output.iter())
            .chain(self.ale.iter())
            .chain(verify)
            .chain(transfer)
            .any(|t| t.variables().any(|(v, _)| v.starts_with("cut.")))
    }

    /// The `notify:` entries that apply to this rule: its own, else the file's.
    pub fn notify_targets<'a>(&'a self, file: &'a RuleFile) -> &'a [super::NotifyTarget] {
        self.notify.as_deref().unwrap_or(&file.notify)
    }

    /// A stable digest of the rule's definition (not its name or position in the file): xxh3-64
    /// of a canonical text of its keys. It is stored with every job and compared across runs
    /// and builds, so the hash is a specified one (not std's); a unit test pins one value, so a
    /// change of the canonical text (or of how the toolchain formats it) cannot pass unnoticed.
    pub(super) fn compute_hash(&self) -> String {
        let steps: Vec<Vec<&str>> = self
            .steps
            .iter()
            .map(|s| s.iter().map(Template::source).collect())
            .collect();
        let canonical = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.globs,
            self.regex.as_ref().map(regex::bytes::Regex::as_str),
            self.events,
            steps,
            self.output.as_ref().map(Template::source),
            self.timeout,
            self.retries,
            self.backoff,
            self.concurrency,
            self.stop,
            self.settle,
            self.sequence
                .as_ref()
                .map(|s| (s.expect.as_ref().map(Template::source), s.on_gaps)),
            self.timecode,
            self.keykode,
            self.verify.as_ref().map(|v| v
                .checks
                .iter()
                .map(|(k, t)| (k, t.source()))
                .collect::<Vec<_>>()),
        );
        // Keys added later are appended only when set, so rules without them keep their hash.
        let mut canonical = canonical;
        if let Some(avid) = &self.avid {
            canonical.push_str(&format!("|avid:{avid:?}"));
        }
        if let Some(ale) = &self.ale {
            canonical.push_str(&format!("|ale:{}", ale.source()));
        }
        if self.verify.as_ref().is_some_and(|v| v.decode) {
            canonical.push_str("|verify.decode");
        }
        if self.frames != super::frames::FrameScope::All {
            canonical.push_str(&format!("|frames:{}", self.frames.as_str()));
        }
        if let Some(t) = &self.transfer {
            canonical.push_str(&format!(
                "|{}:{}:{:?}:{}",
                t.kind.as_str(),
                t.to.source(),
                t.hashes,
                t.mhl
            ));
        }
        if let Some(inputs) = &self.inputs {
            let paths: Vec<&str> = inputs.paths.iter().map(Template::source).collect();
            canonical.push_str(&format!("|inputs:{paths:?}"));
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
    }

    /// The [`Rule::work_hash`]: what decides its products, the file's `vars:` included
    /// (their values fill its templates), nothing that only decides when or where it runs.
    pub(super) fn compute_work_hash(
        &self,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let steps: Vec<Vec<&str>> = self
            .steps
            .iter()
            .map(|s| s.iter().map(Template::source).collect())
            .collect();
        let verify = self.verify.as_ref().map(|v| {
            (
                v.checks
                    .iter()
                    .map(|(k, t)| (k, t.source()))
                    .collect::<Vec<_>>(),
                v.decode,
            )
        });
        let transfer = self
            .transfer
            .as_ref()
            .map(|t| (t.kind.as_str(), t.to.source(), &t.hashes, t.mhl));
        let inputs = self
            .inputs
            .as_ref()
            .map(|i| i.paths.iter().map(Template::source).collect::<Vec<_>>());
        let canonical = format!(
            "{steps:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{inputs:?}|{vars:?}",
            self.output.as_ref().map(Template::source),
            self.sequence
                .as_ref()
                .map(|s| (s.expect.as_ref().map(Template::source), s.on_gaps)),
            self.timecode,
            self.keykode,
            verify,
            self.avid,
            self.ale.as_ref().map(Template::source),
            transfer,
            self.frames.as_str(),
        );
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
    }
}

/// `sequence:` on a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceRule {
    /// `expect: 1001-1048` (a template): fire as soon as every frame in it is present.
    pub expect: Option<Template>,
    /// What to do with missing frames.
    pub on_gaps: OnGaps,
}

/// A loaded rules file.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// The file it came from.
    pub path: PathBuf,
    /// Folders to watch.
    pub watch: Vec<WatchRoot>,
    /// Globs of paths never routed (relative to their watch root).
    pub ignore: Vec<String>,
    /// User variables.
    pub vars: BTreeMap<String, String>,
    /// Most jobs running at once.
    pub jobs: usize,
    /// Folders outside the watch roots where outputs may be written.
    pub outputs: Vec<PathBuf>,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The file's `notify:` entries, for rules without their own.
    pub notify: Vec<super::NotifyTarget>,
    /// The file's `slurm:` block, when rules run on the farm.
    pub farm: Option<super::farm::FarmSettings>,
    /// The file's `cuts:` block: how shots are named in editorial's cuts.
    pub cuts: Option<super::cuts::CutSettings>,
    /// The file's `conform:` block: the sequence review the daemon keeps up to date.
    pub conform: Option<super::conform::ConformSettings>,
    /// The file's `lineage:` block: whether runs are recorded, where OpenLineage events go.
    pub lineage: super::inputs::LineageSettings,
    /// What `check` warns about (a program not on `PATH`, a missing root): the file loads, but
    /// something will likely fail or wait; the daemon logs each at start.
    pub warnings: Diagnostics,
}

/// A rule's `copy:` or `move:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRule {
    /// Copy or move.
    pub kind: TransferKind,
    /// The destination file (relative paths are relative to the watch root).
    pub to: Template,
    /// Hashes computed while copying and verified on the destination (`xxh64` when not given).
    pub hashes: Vec<HashKind>,
    /// Whether the destination folder's ASC MHL history records the delivery.
    pub mhl: bool,
}
