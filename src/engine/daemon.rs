//! The watch loop: file source → settle → matcher → ledger → pool, plus reload and shutdown.
//!
//! One thread owns all routing state; the file source, the workers, the signal handler and the
//! rules-file watch talk to it over channels. Only this module reads the clock.
//!
//! With the job store (the default), start-up first resolves jobs a killed daemon left running,
//! resumes the queued ones, then catches up: files that arrived or changed while it was down are
//! run, finished ones are not touched. On the very first start the files present are recorded
//! as a baseline instead, so deploying shotrouter on a full tree does not re-queue a library.
//! Without a store (`--no-store`) every start is a first start. `--once` runs what is present.
//! Files found by a scan (a new folder, an overflow rescan, a returning root) are dispatched
//! once their size and mtime have held still for [`SCAN_QUIET`], since a scan cannot tell a
//! finished file from one still being written; a close event for them comes first if it can.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select, unbounded};
use indicatif::ProgressBar;

use crate::Error;
use crate::engine::ledger::{Ledger, Provenance};
use crate::engine::sequencer::{Gathering, Purpose, SequenceKey, Sequencer};
use crate::exec::pool::{Finished, Pool, Report};
use crate::exec::runner::{self, JobSpec, Outcome};
use crate::media::sequence::{FrameName, Sequence};
use crate::os::process::GroupId;
use crate::os::version::FileVersion;
use crate::route::matcher::{RuleSet, Scratch};
use crate::route::plan;
use crate::rules::{self, EventKind};
use crate::source::{FileEvent, Origin, SourceEvent, Sources, WatchConfig};
use crate::store::{self, JobId, NewJob, Status, Store};

/// How long a scanned file's size and mtime must hold still before it is dispatched.
pub const SCAN_QUIET: Duration = Duration::from_millis(500);

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// How the daemon is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The rules file.
    pub rules_path: PathBuf,
    /// Process what is there, then exit.
    pub once: bool,
    /// Time running jobs get after SIGINT/SIGTERM.
    pub grace: Duration,
    /// Where job logs and the job store go.
    pub state_dir: PathBuf,
    /// Whether jobs are recorded in the store (off only for throwaway runs and benchmarks).
    pub store: bool,
}

/// A file waiting out its quiet time.
#[derive(Debug, Clone)]
struct Waiting {
    root: usize,
    rel: PathBuf,
    kind: EventKind,
    version: Option<FileVersion>,
    quiet: Duration,
}

struct Daemon {
    options: Options,
    set: Arc<RuleSet>,
    ledger: Ledger,
    provenance: Arc<Provenance>,
    /// Per (rule, file): waiting for the rule's `settle`.
    settling: crate::engine::settle::Debouncer<(String, PathBuf), Waiting>,
    /// Per file: found by a scan, waiting to hold still.
    scanned: crate::engine::settle::Debouncer<PathBuf, Waiting>,
    /// Image sequences gathering frames.
    sequences: Sequencer,
    pool: Pool,
    run_tag: String,
    next_job: u64,
    /// Jobs submitted whose last attempt has not finished.
    outstanding: usize,
    succeeded: usize,
    failed: usize,
    scratch: Scratch,
    routed: Vec<usize>,
    progress: Option<ProgressBar>,
    /// Whether work was pending at the last check, to log the moment the queue drains.
    busy: bool,
    /// The job store, when jobs are recorded.
    store: Option<Store>,
    /// Store jobs handed to the pool whose last attempt has not been recorded yet.
    in_flight: HashSet<JobId>,
    /// The store's queue sequence number up to which queued jobs have been picked up.
    last_seq: i64,
    /// When to look in the store for jobs queued by `retry` or `rerun`.
    next_poll: Instant,
    /// Whether this start records a baseline instead of catching up.
    first_start: bool,
    /// Jobs to hand the pool once the open store batch is committed (a worker must find its
    /// job's row), with the earliest time each may start.
    deferred: Option<Vec<(JobSpec, Option<Instant>)>>,
    /// Starts reported during the open batch and not yet written: a job that also finishes in
    /// the batch is recorded with one write instead of two.
    unclaimed: HashMap<JobId, (u64, Option<PathBuf>, Option<GroupId>)>,
    /// Files of the initial scan, written to the store in one transaction at its end.
    baseline: Vec<(PathBuf, FileVersion)>,
}

/// Most messages handled in one store transaction (group commit); workers wait for the write
/// lock while a batch is open, so it stays short.
const BATCH: usize = 64;

/// How often the store is checked for jobs queued by another process.
const STORE_POLL: Duration = Duration::from_secs(1);

/// Runs `shotrouter watch`.
///
/// # Errors
/// Invalid rules (exit 2), watch limits (exit 2), or signal set-up failures (exit 1).
pub fn run(options: Options) -> Result<ExitCode, Error> {
    crate::os::program::become_subreaper();
    let set = Arc::new(RuleSet::compile(rules::load(&options.rules_path)?)?);
    let store = if options.store {
        Some(Store::open(&options.state_dir).map_err(|e| Error::Config(e.to_string()))?)
    } else {
        None
    };
    let first_start = store.as_ref().is_none_or(Store::is_new);
    let (source_tx, source_rx) = unbounded();
    let (done_tx, done_rx) = unbounded();
    let signals = signal_channel()?;
    let provenance = Arc::new(Provenance::default());
    let store_dir = options.store.then(|| options.state_dir.clone());
    let pool = Pool::new(
        set.file.jobs,
        rule_limits(&set),
        provenance.clone(),
        store_dir,
        done_tx,
    );
    let progress = (options.once && std::io::stderr().is_terminal()).then(|| ProgressBar::new(0));
    let mut daemon = Daemon {
        run_tag: format!("{}", std::process::id()),
        options,
        set,
        ledger: Ledger::default(),
        provenance,
        settling: Default::default(),
        scanned: Default::default(),
        sequences: Sequencer::default(),
        pool,
        next_job: 0,
        outstanding: 0,
        succeeded: 0,
        failed: 0,
        scratch: Scratch::default(),
        routed: Vec::new(),
        progress,
        busy: false,
        store,
        in_flight: HashSet::new(),
        last_seq: 0,
        next_poll: Instant::now() + STORE_POLL,
        first_start,
        baseline: Vec::new(),
        deferred: None,
        unclaimed: HashMap::new(),
    };
    daemon.recover()?;
    let mut watcher = None;
    let mut reloads = crossbeam_channel::never();
    if daemon.options.once {
        for event in crate::source::scan(&watch_config(&daemon.set)) {
            let _ = source_tx.send(SourceEvent::File(event));
        }
    } else {
        watcher = Some(
            Sources::start(watch_config(&daemon.set), source_tx.clone())
                .map_err(|e| Error::Config(e.to_string()))?,
        );
        reloads = crate::engine::reload::watch(&daemon.options.rules_path);
        let roots: Vec<String> = daemon
            .set
            .file
            .watch
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        tracing::info!(rules = %daemon.options.rules_path.display(), roots = %roots.join(", "), jobs = daemon.set.file.jobs, "watching");
    }
    loop {
        let wait = daemon
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
        select! {
            recv(source_rx) -> event => if let Ok(event) = event {
                daemon.begin_batch();
                daemon.on_source(event);
                daemon.drain(&source_rx, &done_rx, &source_tx);
            },
            recv(done_rx) -> report => if let Ok(report) = report {
                daemon.begin_batch();
                daemon.on_report(report, &source_tx);
                daemon.drain(&source_rx, &done_rx, &source_tx);
            },
            recv(signals) -> signal => {
                tracing::info!(signal = signal.unwrap_or_default(), "stopping: no new jobs");
                drop(watcher.take());
                return Ok(daemon.shut_down(&done_rx));
            }
            recv(reloads) -> _ => daemon.reload(&mut watcher, &source_tx)?,
            default(wait) => {}
        }
        let now = Instant::now();
        daemon.fire_due(now, source_rx.is_empty());
        if now >= daemon.next_poll {
            daemon.next_poll = now + STORE_POLL;
            daemon.resume_queued();
        }
        daemon.note_idle(&source_rx);
        if daemon.options.once && daemon.is_idle() && source_rx.is_empty() {
            return Ok(daemon.finish_once());
        }
    }
}

fn watch_config(set: &RuleSet) -> WatchConfig {
    WatchConfig {
        roots: set.file.watch.clone(),
        ignore: set.ignore_set().clone(),
        events: set.events(),
    }
}

fn rule_limits(set: &RuleSet) -> HashMap<String, usize> {
    set.file
        .rules
        .iter()
        .filter_map(|r| r.concurrency.map(|c| (r.name.clone(), c)))
        .collect()
}

fn signal_channel() -> Result<Receiver<i32>, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (tx, rx) = unbounded();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::Runtime(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = tx.send(signal);
            }
        })
        .map_err(|e| Error::Runtime(format!("cannot start the signal thread: {e}")))?;
    Ok(rx)
}

impl Daemon {
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.settling.next_deadline(),
            self.scanned.next_deadline(),
            self.sequences.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_idle(&self) -> bool {
        self.outstanding == 0
            && self.settling.is_empty()
            && self.scanned.is_empty()
            && self.sequences.is_empty()
    }

    /// Logs once each time all work is done: what a supervisor checks at the end of a night.
    fn note_idle(&mut self, source: &Receiver<SourceEvent>) {
        let idle = self.is_idle() && source.is_empty();
        if idle && self.busy {
            tracing::info!(
                succeeded = self.succeeded,
                failed = self.failed,
                "idle: every job so far has finished"
            );
        }
        self.busy = !idle;
    }

    fn on_source(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::File(file) => self.on_file(file, Instant::now()),
            SourceEvent::InitialScanDone => self.initial_scan_done(),
            SourceEvent::Overflow | SourceEvent::RootLost(_) | SourceEvent::RootBack(_) => {}
        }
    }

    fn on_file(&mut self, file: FileEvent, now: Instant) {
        let abs = self.set.file.watch[file.root].path.join(&file.rel);
        match file.origin {
            Origin::InitialScan => self.on_initial(file, abs, now),
            Origin::Scan if !self.options.once => {
                let version = FileVersion::of(&abs);
                if version.is_some() {
                    let waiting = Waiting {
                        root: file.root,
                        rel: file.rel,
                        kind: file.kind,
                        version,
                        quiet: SCAN_QUIET,
                    };
                    self.scanned.push(abs, now + SCAN_QUIET, waiting);
                }
            }
            Origin::Scan | Origin::Event => {
                if matches!(file.kind, EventKind::CloseWrite | EventKind::MovedTo) {
                    self.scanned.remove(&abs);
                }
                self.on_ready(file.root, &file.rel, file.kind, now);
            }
        }
    }

    /// A file present at start-up: recorded as the baseline on a first start; otherwise run
    /// by the rules for which it is new, changed, or failed last time (catch-up).
    fn on_initial(&mut self, file: FileEvent, abs: PathBuf, now: Instant) {
        let Some(version) = FileVersion::of(&abs) else {
            return;
        };
        let set = self.set.clone();
        set.route_into(&file.rel, file.kind, &mut self.scratch, &mut self.routed);
        if self.routed.is_empty() {
            return;
        }
        let mut catch_up = false;
        for index in std::mem::take(&mut self.routed) {
            if set.file.rules[index].sequence.is_some() {
                let purpose = if self.first_start {
                    Purpose::Baseline
                } else {
                    Purpose::CatchUp
                };
                self.on_frame(index, file.root, &file.rel, purpose, now);
                continue;
            }
            let rule = &set.file.rules[index].name;
            let wanted = !self.first_start
                && self.store.as_ref().is_some_and(|store| {
                    let own_output = store.producer(&abs, version).ok().flatten().as_deref()
                        == Some(rule.as_str());
                    !own_output && store.wants_catch_up(rule, &abs, version).unwrap_or(true)
                });
            if wanted {
                catch_up = true;
            } else {
                self.ledger.record(rule, &abs, version);
            }
        }
        if self.first_start {
            self.baseline.push((abs, version));
        } else if catch_up {
            let waiting = Waiting {
                root: file.root,
                rel: file.rel,
                kind: file.kind,
                version: Some(version),
                quiet: SCAN_QUIET,
            };
            self.scanned.push(abs, now + SCAN_QUIET, waiting);
        }
    }

    /// A file is ready (or deleted): route it, then dispatch or settle per rule.
    fn on_ready(&mut self, root: usize, rel: &Path, kind: EventKind, now: Instant) {
        let set = self.set.clone();
        let abs = set.file.watch[root].path.join(rel);
        set.route_into(rel, kind, &mut self.scratch, &mut self.routed);
        if self.routed.is_empty() {
            return;
        }
        let version = FileVersion::of(&abs);
        if kind != EventKind::Delete && version.is_none() {
            tracing::debug!(path = %abs.display(), "gone before it could be routed");
            return;
        }
        let producer = version.and_then(|v| self.provenance.producer(&abs, v));
        for index in std::mem::take(&mut self.routed) {
            let rule = &set.file.rules[index];
            if producer.as_deref() == Some(rule.name.as_str()) {
                tracing::debug!(rule = %rule.name, path = %abs.display(), "skipping the rule's own output");
                continue;
            }
            if rule.sequence.is_some() && kind != EventKind::Delete {
                self.on_frame(index, root, rel, Purpose::Run, now);
            } else if rule.settle > Duration::ZERO
                && !self.options.once
                && kind != EventKind::Delete
            {
                let waiting = Waiting {
                    root,
                    rel: rel.to_path_buf(),
                    kind,
                    version,
                    quiet: rule.settle,
                };
                self.settling
                    .push((rule.name.clone(), abs.clone()), now + rule.settle, waiting);
            } else {
                self.dispatch(index, root, rel, version);
            }
        }
    }

    /// A frame for a sequence rule: gather it with its sequence.
    fn on_frame(&mut self, index: usize, root: usize, rel: &Path, purpose: Purpose, now: Instant) {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let name = rel.file_name().unwrap_or_default();
        let Some(frame) = FrameName::parse(name.as_encoded_bytes()) else {
            tracing::debug!(rule = %rule.name, path = %rel.display(), "no frame number; a sequence rule skips it");
            return;
        };
        let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let key = SequenceKey {
            rule: rule.name.clone(),
            root,
            dir,
            head: frame.head,
            tail: frame.tail,
        };
        if !self.sequences.contains(&key) {
            // Frames already in the folder belong to the sequence too (a re-render of one
            // frame re-runs the whole sequence, not a one-frame movie).
            let abs_dir = set.file.watch[root].path.join(&key.dir);
            let seen = crate::media::sequence::scan(&abs_dir, &key.head, &key.tail)
                .unwrap_or_default()
                .iter()
                .flat_map(|s| s.frames.iter().map(|f| f.number))
                .collect();
            let vars = plan::bindings(&set, index, &set.file.watch[root].path, rel);
            let expect = plan::expect_range(rule, &vars).unwrap_or_else(|e| {
                tracing::warn!(rule = %rule.name, path = %rel.display(), error = %e, "cannot read the expected range; waiting for the frames to settle instead");
                None
            });
            self.sequences.begin(
                key.clone(),
                Gathering {
                    seen,
                    expect,
                    purpose,
                    deadline: now,
                },
            );
        }
        let quiet = if self.options.once {
            Duration::ZERO
        } else {
            rule.settle
        };
        self.sequences
            .arrive(&key, frame.frame, purpose, now, quiet);
    }

    /// A sequence is due: list its folder and run (or baseline) each sequence found there.
    fn fire_sequence(&mut self, key: SequenceKey, gathering: Gathering) {
        let set = self.set.clone();
        let Some(index) = set.index_of(&key.rule) else {
            return;
        };
        let root_path = &set.file.watch[key.root].path;
        let abs_dir = root_path.join(&key.dir);
        let found = match crate::media::sequence::scan(&abs_dir, &key.head, &key.tail) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(rule = %key.rule, dir = %abs_dir.display(), error = %e, "cannot list the sequence's folder");
                return;
            }
        };
        for mut sequence in found {
            // Only frames the rule matches, and not the rule's own products.
            sequence.frames.retain(|f| {
                let rel = key.dir.join(&f.name);
                set.route(&rel, EventKind::MovedTo).contains(&index)
            });
            let Some(version) = sequence_version(&sequence) else {
                continue;
            };
            let identity = sequence.hashes_path();
            match gathering.purpose {
                Purpose::Baseline => {
                    self.ledger.record(&key.rule, &identity, version);
                    if let Some(store) = self.store.as_mut()
                        && let Err(e) = store.record_baseline(&[(identity, version)])
                    {
                        tracing::error!(error = %e, "cannot record the baseline");
                    }
                    continue;
                }
                Purpose::CatchUp => {
                    let wanted = self.store.as_ref().is_some_and(|store| {
                        store
                            .wants_catch_up(&key.rule, &identity, version)
                            .unwrap_or(true)
                    });
                    if !wanted {
                        self.ledger.record(&key.rule, &identity, version);
                        continue;
                    }
                }
                Purpose::Run => {}
            }
            let first = key.dir.join(&sequence.frames[0].name);
            self.dispatch_subject(index, key.root, &first, Some(version), Some(sequence));
        }
    }

    fn fire_due(&mut self, now: Instant, source_empty: bool) {
        // In --once, sequences fire when every file present has been seen.
        if !self.options.once || source_empty {
            for (key, gathering) in self.sequences.drain_ready(now) {
                self.fire_sequence(key, gathering);
            }
        }
        for (abs, waiting) in self.scanned.drain_ready(now) {
            match FileVersion::of(&abs) {
                Some(current) if Some(current) == waiting.version => {
                    self.on_ready(waiting.root, &waiting.rel, waiting.kind, now)
                }
                Some(current) => {
                    let deadline = now + waiting.quiet;
                    self.scanned.push(
                        abs,
                        deadline,
                        Waiting {
                            version: Some(current),
                            ..waiting
                        },
                    );
                }
                None => {}
            }
        }
        for ((rule, abs), waiting) in self.settling.drain_ready(now) {
            let current = FileVersion::of(&abs);
            if current.is_some() && current != waiting.version {
                // Written again during the quiet time: wait again from now.
                let deadline = now + waiting.quiet;
                self.settling.push(
                    (rule, abs),
                    deadline,
                    Waiting {
                        version: current,
                        ..waiting
                    },
                );
                continue;
            }
            if let Some(index) = self.set.index_of(&rule) {
                self.dispatch(index, waiting.root, &waiting.rel, current);
            }
        }
    }

    fn initial_scan_done(&mut self) {
        if !self.first_start {
            tracing::info!(
                catching_up = self.scanned.len(),
                "initial scan done; files new or changed since the last run will be processed"
            );
            return;
        }
        let files = std::mem::take(&mut self.baseline);
        if let Some(store) = self.store.as_mut()
            && let Err(e) = store.record_baseline(&files)
        {
            tracing::error!(error = %e, "cannot record the baseline");
        }
        tracing::info!(
            files = files.len(),
            "first start: files already present are recorded as the baseline, not processed (`shotrouter rerun` or `watch --once` processes them)"
        );
        self.first_start = false;
    }

    fn dispatch(&mut self, index: usize, root: usize, rel: &Path, version: Option<FileVersion>) {
        self.dispatch_subject(index, root, rel, version, None);
    }

    /// Records and submits a job of rule `index` on a file, or on a sequence whose first frame
    /// is `rel`. A sequence is identified by its `####` path and a digest of its frames.
    fn dispatch_subject(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        version: Option<FileVersion>,
        sequence: Option<Sequence>,
    ) {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let abs = match &sequence {
            Some(seq) => seq.hashes_path(),
            None => set.file.watch[root].path.join(rel),
        };
        if let Some(version) = version
            && !self.ledger.record(&rule.name, &abs, version)
        {
            tracing::debug!(rule = %rule.name, path = %abs.display(), "this version was already dispatched");
            return;
        }
        let mut spec = match self.plan_job(index, root, rel, sequence.as_ref()) {
            Ok(spec) => spec,
            Err(reason) => {
                self.record_unplannable(index, &abs, version, &reason);
                return;
            }
        };
        spec.path = abs.clone();
        if let (Some(store), Some(version)) = (self.store.as_mut(), version) {
            let new = NewJob {
                rule: &rule.name,
                rule_hash: &rule.definition_hash,
                path: &abs,
                version,
                steps: &spec.steps,
                output: spec.output.as_ref().map(|o| o.final_path.as_path()),
            };
            match store.enqueue(&new) {
                Ok(Some(queued)) => {
                    self.skip_own(queued.seq);
                    self.adopt(&mut spec, queued.id, 1);
                }
                Ok(None) => {
                    tracing::debug!(rule = %rule.name, path = %abs.display(), "the store already has this version");
                    return;
                }
                Err(e) => {
                    tracing::error!(rule = %rule.name, path = %abs.display(), error = %e, "cannot record the job; running it unrecorded")
                }
            }
        }
        self.submit(spec, None);
    }

    /// Our own jobs need no pick-up by the store poll: skip past them when the queue sequence
    /// is unbroken (a gap is a job another process queued).
    fn skip_own(&mut self, seq: i64) {
        if seq == self.last_seq + 1 {
            self.last_seq = seq;
        }
    }

    /// Turns a store id into the job's identity: log file named after it, tracked in flight.
    fn adopt(&mut self, spec: &mut JobSpec, id: JobId, attempt: u32) {
        spec.store_id = Some(id);
        spec.id = id.to_string();
        spec.attempt = attempt;
        spec.log_path = self
            .options
            .state_dir
            .join("logs")
            .join(&spec.rule)
            .join(format!("{id}.log"));
        self.in_flight.insert(id);
    }

    /// A job that cannot be built (a variable without a value, `on_gaps: fail`): logged,
    /// counted failed, and recorded as a failed job so `shotrouter jobs --failed` shows it.
    fn record_unplannable(
        &mut self,
        index: usize,
        path: &Path,
        version: Option<FileVersion>,
        reason: &str,
    ) {
        let rule = &self.set.file.rules[index];
        tracing::error!(rule = %rule.name, path = %path.display(), error = %reason, "cannot build the job");
        self.failed += 1;
        if let (Some(store), Some(version)) = (self.store.as_mut(), version) {
            let new = NewJob {
                rule: &rule.name,
                rule_hash: &rule.definition_hash,
                path,
                version,
                steps: &[],
                output: None,
            };
            if let Ok(Some(queued)) = store.enqueue(&new) {
                let _ = store.finish(queued.id, Status::Failed, Some(reason), None);
                self.skip_own(queued.seq);
            }
        }
    }

    /// Plans rule `index` for a file (or a sequence starting at `rel`).
    fn plan_job(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        sequence: Option<&Sequence>,
    ) -> Result<JobSpec, String> {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let root_path = &set.file.watch[root].path;
        self.next_job += 1;
        let id = format!("{}-{}", self.run_tag, self.next_job);
        let view_dir = self.options.state_dir.join("views").join(&id);
        let input = sequence.map(|sequence| plan::SequenceInput {
            sequence,
            view_dir: &view_dir,
        });
        if rule.sequence.is_some() && input.is_none() {
            return Err("a sequence rule needs the sequence's frames".into());
        }
        match plan::plan(&set, index, root_path, rel, &format!("sr{id}"), input) {
            Ok(planned) => {
                if !planned.missing.is_empty() {
                    tracing::warn!(rule = %rule.name, path = %root_path.join(rel).display(), missing = %crate::media::sequence::format_ranges(&planned.missing), on_gaps = ?rule.sequence.as_ref().map(|s| s.on_gaps), "sequence has missing frames");
                }
                Ok(JobSpec {
                    log_path: self
                        .options
                        .state_dir
                        .join("logs")
                        .join(&rule.name)
                        .join(format!("{id}.log")),
                    id,
                    rule: rule.name.clone(),
                    path: root_path.join(rel),
                    steps: planned.steps,
                    output: planned.output,
                    allowed_roots: plan::allowed_output_roots(&set),
                    timeout: rule.timeout,
                    attempt: 1,
                    store_id: None,
                    view: planned.view,
                    verify: planned.verify,
                })
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn submit(&mut self, spec: JobSpec, not_before: Option<Instant>) {
        self.outstanding += 1;
        if let Some(bar) = &self.progress {
            bar.inc_length(1);
        }
        self.hand_over(spec, not_before);
    }

    /// Gives a job to the pool, or keeps it until the open batch is committed.
    fn hand_over(&mut self, spec: JobSpec, not_before: Option<Instant>) {
        match (&mut self.deferred, not_before) {
            (Some(deferred), _) => deferred.push((spec, not_before)),
            (None, Some(at)) => self.pool.submit_at(spec, at),
            (None, None) => self.pool.submit(spec),
        }
    }

    /// Starts a group commit: store writes are collected into one transaction.
    fn begin_batch(&mut self) {
        if let Some(store) = self.store.as_mut() {
            match store.begin_batch() {
                Ok(()) => self.deferred = Some(Vec::new()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a store batch; writing one by one")
                }
            }
        }
    }

    /// Handles up to [`BATCH`] more messages that are already waiting, then commits.
    fn drain(
        &mut self,
        source: &Receiver<SourceEvent>,
        done: &Receiver<Report>,
        source_tx: &Sender<SourceEvent>,
    ) {
        for _ in 1..BATCH {
            if let Ok(report) = done.try_recv() {
                self.on_report(report, source_tx);
            } else if let Ok(event) = source.try_recv() {
                self.on_source(event);
            } else {
                break;
            }
        }
        // Jobs still running at the end of the batch are recorded as started now.
        for (id, (job, temp, group)) in std::mem::take(&mut self.unclaimed) {
            self.claim_started(id, job, temp.as_deref(), group.as_ref());
        }
        if let Some(store) = self.store.as_mut()
            && let Err(e) = store.end_batch()
        {
            tracing::error!(error = %e, "cannot commit a store batch; its jobs run unrecorded");
        }
        for (spec, not_before) in self.deferred.take().unwrap_or_default() {
            self.hand_over(spec, not_before);
        }
    }

    /// Start-up: resolve jobs a killed daemon left running, then resume every queued job.
    fn recover(&mut self) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let interrupted = store
            .recover_interrupted()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        for job in &interrupted {
            tracing::warn!(job = job.id, rule = %job.rule, resolution = ?job.resolution, killed_processes = job.killed, "job was interrupted by the previous daemon's end");
        }
        self.resume_queued();
        Ok(())
    }

    /// Hands the pool every queued job in the store it does not have yet (resumed at start-up,
    /// or queued by `shotrouter retry`/`rerun`), planned again with the current rules.
    fn resume_queued(&mut self) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let queued = match store.queued_since(self.last_seq) {
            Ok(queued) => queued,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read queued jobs from the store");
                return;
            }
        };
        for (seq, job) in queued {
            self.last_seq = self.last_seq.max(seq);
            if self.in_flight.contains(&job.id) {
                continue;
            }
            let located = self.set.index_of(&job.rule).zip(self.locate(&job.path));
            let Some((index, (root, rel))) = located else {
                let reason = format!(
                    "rule `{}` or the file's watch root is no longer in the rules",
                    job.rule
                );
                tracing::error!(job = job.id, %reason, "cannot resume a queued job");
                if let Some(store) = self.store.as_mut() {
                    let _ = store.cancel(&[job.id]);
                }
                continue;
            };
            let planned = if self.set.file.rules[index].sequence.is_some() {
                match reread_sequence(&job.path) {
                    Some(seq) => {
                        let first = rel.with_file_name(&seq.frames[0].name);
                        self.plan_job(index, root, &first, Some(&seq))
                    }
                    None => Err("no frame of the sequence is left".to_string()),
                }
            } else {
                self.plan_job(index, root, &rel, None)
            };
            let mut spec = match planned {
                Ok(mut spec) => {
                    spec.path = job.path.clone();
                    spec
                }
                Err(reason) => {
                    tracing::error!(job = job.id, error = %reason, "cannot build the queued job");
                    self.failed += 1;
                    if let Some(store) = self.store.as_mut() {
                        let _ = store.finish(job.id, Status::Failed, Some(&reason), None);
                    }
                    continue;
                }
            };
            let rule = &self.set.file.rules[index];
            if let Some(store) = self.store.as_mut()
                && let Err(e) = store.set_plan(
                    job.id,
                    &rule.definition_hash,
                    &spec.steps,
                    spec.output.as_ref().map(|o| o.final_path.as_path()),
                )
            {
                tracing::warn!(job = job.id, error = %e, "cannot record the job's new plan");
            }
            self.adopt(&mut spec, job.id, job.attempts + 1);
            let wait = Duration::from_millis((job.not_before - store::now_ms()).max(0) as u64);
            tracing::info!(job = job.id, rule = %job.rule, path = %job.path.display(), "resuming queued job");
            self.submit(spec, (wait > Duration::ZERO).then(|| Instant::now() + wait));
        }
    }

    /// Records an attempt's end in the store; false when a user cancelled the job meanwhile.
    fn record_end(
        &mut self,
        spec: &JobSpec,
        status: Status,
        result: Option<&str>,
        retry_at: Option<Duration>,
    ) -> bool {
        let (Some(store), Some(id)) = (self.store.as_mut(), spec.store_id) else {
            return true;
        };
        let retry_ms = retry_at.map(|d| store::now_ms() + d.as_millis() as i64);
        match store.finish(id, status, result, retry_ms) {
            Ok(running) => running,
            Err(e) => {
                tracing::error!(job = id, error = %e, "cannot record the job's end");
                true
            }
        }
    }

    fn on_report(&mut self, report: Report, source: &Sender<SourceEvent>) {
        match report {
            Report::Finished(finished) => self.on_finished(*finished, source),
            started => self.on_started_report(started),
        }
    }

    /// During shutdown: starts are recorded as usual, ends without retries or chaining.
    fn on_report_while_stopping(&mut self, report: Report) {
        match report {
            Report::Finished(finished) => self.log_final(*finished),
            started => self.on_started_report(started),
        }
    }

    fn on_started_report(&mut self, report: Report) {
        if let Report::Started {
            first,
            store_id,
            job,
            temp_output,
            group,
        } = report
        {
            self.on_started(first, store_id, job, temp_output.as_deref(), group.as_ref());
        }
    }

    /// Records that a job's first step started, in its group; a job a user cancelled while it
    /// waited is stopped at once.
    fn on_started(
        &mut self,
        first: bool,
        id: JobId,
        job: u64,
        temp_output: Option<&Path>,
        group: Option<&GroupId>,
    ) {
        if first && self.deferred.is_some() {
            self.unclaimed.insert(
                id,
                (job, temp_output.map(Path::to_path_buf), group.cloned()),
            );
            return;
        }
        if !first && let Some(claim) = self.unclaimed.get_mut(&id) {
            claim.2 = group.cloned();
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if !first {
            if let Some(group) = group
                && let Err(e) = store.set_group(id, group)
            {
                tracing::warn!(job = id, error = %e, "cannot record the step's process group");
            }
            return;
        }
        self.claim_started(id, job, temp_output, group);
    }

    /// Records a job's start; one a user cancelled meanwhile is stopped at once.
    fn claim_started(&mut self, id: JobId, job: u64, temp: Option<&Path>, group: Option<&GroupId>) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        match store.claim(id, temp, group) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    job = id,
                    "cancelled by a user before it started; stopping it"
                );
                self.pool.cancel(job);
            }
            Err(e) => tracing::warn!(job = id, error = %e, "cannot record the job's start"),
        }
    }

    fn on_finished(&mut self, finished: Finished, source: &Sender<SourceEvent>) {
        let Finished {
            spec,
            outcome,
            duration,
        } = finished;
        if let Some(id) = spec.store_id {
            // Started and finished within one batch: `finish` records both with one write.
            self.unclaimed.remove(&id);
        }
        let rule = self
            .set
            .index_of(&spec.rule)
            .map(|i| self.set.file.rules[i].clone());
        let ms = duration.as_millis() as u64;
        match &outcome {
            Outcome::Succeeded { published } => {
                tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "ok", duration_ms = ms, "end");
                self.record_end(&spec, Status::Done, None, None);
                self.succeeded += 1;
                // In --once there is no watcher to see the product land: route it ourselves so
                // chains (frames → movie → SAN copy) complete.
                if self.options.once
                    && let Some(product) = published
                    && let Some((root, rel)) = self.locate(product)
                {
                    let _ = source.send(SourceEvent::File(FileEvent {
                        root,
                        rel,
                        kind: EventKind::MovedTo,
                        origin: Origin::Event,
                    }));
                }
            }
            Outcome::Failed(failure) => {
                let retries = rule.as_ref().map_or(0, |r| r.retries);
                let text = failure.to_string();
                tracing::warn!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = %text, duration_ms = ms, attempt = spec.attempt, log = %spec.log_path.display(), "end");
                if spec.attempt <= retries {
                    let base = rule.as_ref().map_or(rules::DEFAULT_BACKOFF, |r| r.backoff);
                    let delay = base
                        .saturating_mul(1 << (spec.attempt - 1).min(16))
                        .min(MAX_BACKOFF);
                    if self.record_end(&spec, Status::Queued, Some(&text), Some(delay)) {
                        tracing::info!(job = %spec.id, rule = %spec.rule, retry_in_ms = delay.as_millis() as u64, "will retry");
                        let retry = JobSpec {
                            attempt: spec.attempt + 1,
                            ..spec
                        };
                        self.hand_over(retry, Some(Instant::now() + delay));
                        return;
                    }
                    tracing::info!(job = %spec.id, "cancelled by a user; not retried");
                } else {
                    self.record_end(&spec, Status::Failed, Some(&text), None);
                }
                self.failed += 1;
            }
            Outcome::Cancelled => {
                tracing::warn!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = "cancelled", "end");
                self.record_end(&spec, Status::Cancelled, Some("cancelled"), None);
                self.failed += 1;
            }
        }
        if let Some(id) = spec.store_id {
            self.in_flight.remove(&id);
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
    }

    fn locate(&self, path: &Path) -> Option<(usize, PathBuf)> {
        let (root, rel) = self.set.locate(path)?;
        let index = self.set.file.watch.iter().position(|w| w.path == root)?;
        Some((index, rel.to_path_buf()))
    }

    fn reload(
        &mut self,
        watcher: &mut Option<Sources>,
        source: &Sender<SourceEvent>,
    ) -> Result<(), Error> {
        let path = &self.options.rules_path;
        let set = match rules::load(path)
            .map_err(Error::from)
            .and_then(|f| RuleSet::compile(f).map_err(Error::from))
        {
            Ok(set) => Arc::new(set),
            Err(e) => {
                tracing::error!("rules reload failed; the previous rules stay in force\n{e}");
                return Ok(());
            }
        };
        let rewatch = set.file.watch != self.set.file.watch
            || set.file.ignore != self.set.file.ignore
            || set.events() != self.set.events();
        self.pool.set_limits(set.file.jobs, rule_limits(&set));
        self.set = set;
        if rewatch {
            drop(watcher.take());
            *watcher = Some(
                Sources::start(watch_config(&self.set), source.clone())
                    .map_err(|e| Error::Config(e.to_string()))?,
            );
        }
        tracing::info!(rules = %path.display(), count = self.set.file.rules.len(), rewatched = rewatch, "rules reloaded");
        Ok(())
    }

    fn finish_once(self) -> ExitCode {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        tracing::info!(succeeded = self.succeeded, failed = self.failed, "done");
        self.pool.shutdown();
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Stops taking work, lets running jobs finish within the grace period, then kills them.
    fn shut_down(mut self, done: &Receiver<Report>) -> ExitCode {
        let dropped = self.pool.drain_queued();
        if !dropped.is_empty() {
            tracing::warn!(
                count = dropped.len(),
                "queued jobs not started; they run again when their files are next seen"
            );
        }
        let running = self.pool.running();
        tracing::info!(
            running,
            grace_s = self.options.grace.as_secs_f64(),
            "waiting for running jobs"
        );
        let deadline = Instant::now() + self.options.grace;
        let mut cancelled = false;
        while self.pool.running() > 0 {
            let limit = if cancelled {
                runner::KILL_GRACE * 2
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match done.recv_timeout(limit) {
                Ok(report) => self.on_report_while_stopping(report),
                Err(_) if !cancelled => {
                    tracing::warn!(
                        running = self.pool.running(),
                        "grace period over; killing running jobs"
                    );
                    self.pool.cancel_running();
                    cancelled = true;
                }
                Err(_) => break,
            }
        }
        while let Ok(report) = done.try_recv() {
            self.on_report_while_stopping(report);
        }
        // Jobs cut short by the stop run again at the next start.
        if let Some(store) = self.store.as_mut() {
            match store.recover_interrupted() {
                Ok(requeued) if !requeued.is_empty() => tracing::info!(
                    count = requeued.len(),
                    "interrupted jobs queued for the next start"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot queue interrupted jobs again"),
            }
        }
        self.pool.shutdown();
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }

    /// Records a job that ended during shutdown; no retries are started now.
    fn log_final(&mut self, finished: Finished) {
        let Finished { spec, outcome, .. } = finished;
        tracing::info!(job = %spec.id, rule = %spec.rule, path = %spec.path.display(), status = ?outcome, "end");
        let retries = self
            .set
            .index_of(&spec.rule)
            .map_or(0, |i| self.set.file.rules[i].retries);
        match &outcome {
            Outcome::Succeeded { .. } => {
                self.record_end(&spec, Status::Done, None, None);
            }
            Outcome::Failed(failure) if spec.attempt <= retries => {
                self.record_end(
                    &spec,
                    Status::Queued,
                    Some(&failure.to_string()),
                    Some(Duration::ZERO),
                );
            }
            Outcome::Failed(failure) => {
                self.record_end(&spec, Status::Failed, Some(&failure.to_string()), None);
            }
            // Killed by the stop: left `running`, queued again below for the next start.
            Outcome::Cancelled => {}
        }
    }
}

/// A sequence's version: a digest of each frame's number, inode, size and mtime, so a frame
/// re-rendered (or added, or removed) makes a new version and the same frames never run twice.
fn sequence_version(sequence: &Sequence) -> Option<FileVersion> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    let (mut size, mut mtime_ns, mut dev) = (0u64, 0i128, 0u64);
    for frame in &sequence.frames {
        let v = FileVersion::of(&sequence.frame_path(frame))?;
        (frame.number, v.ino, v.size, v.mtime_ns).hash(&mut hasher);
        size += v.size;
        mtime_ns = mtime_ns.max(v.mtime_ns);
        dev = v.dev;
    }
    (!sequence.frames.is_empty()).then(|| FileVersion {
        dev,
        ino: hasher.finish() >> 1,
        size,
        mtime_ns,
    })
}

/// The sequence a stored `dir/name.####.ext` path names, as it is on disk now.
fn reread_sequence(hashes_path: &Path) -> Option<Sequence> {
    let name = hashes_path.file_name()?.as_encoded_bytes();
    let end = name.iter().rposition(|&b| b == b'#')? + 1;
    let start = name[..end]
        .iter()
        .rposition(|&b| b != b'#')
        .map_or(0, |i| i + 1);
    let dir = hashes_path.parent()?;
    crate::media::sequence::scan(dir, &name[..start], &name[end..])
        .ok()?
        .into_iter()
        .find(|s| s.hashes_path() == hashes_path && !s.frames.is_empty())
}
