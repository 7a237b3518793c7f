//! Events in: a file is ready when it was closed after writing or renamed into place. A file
//! found by a scan (a new folder, an overflow rescan, a returning root, a catch-up at start)
//! cannot tell a finished file from one whose writer stalled, so the kernel is asked
//! ([`lease::writers`]): nobody writing means ready now; a writer means wait for its close,
//! which arrives because the folder is watched before it is scanned (asking again every
//! [`WRITER_RECHECK`] in case it does not); when the kernel cannot say (not the file's owner
//! and no `CAP_LEASE`), the file must hold its size and mtime for [`SCAN_QUIET`]. A rule's
//! `settle:` holds a file until it has been quiet that long. At start-up, files present are
//! the baseline on a first start; later starts catch up on files new or changed since.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cutfile::Dedup;
use crate::engine::sequencer::Purpose;
use crate::os::lease::{self, Writers};
use crate::os::version::FileVersion;
use crate::rules::EventKind;
use crate::source::{FileEvent, Origin, SourceEvent};

use super::Engine;
use super::arrivals::Waiting;

/// How many baseline files the outbox gets at once during a first start's initial scan.
pub const BASELINE_CHUNK: usize = 10_000;

/// How long a scanned file's size and mtime must hold still before it is dispatched, when the
/// kernel cannot say whether it is still open for writing. Long on purpose: a copy or render
/// that stalls (a busy file server, a paused artist's export) must not fire on half a file,
/// and writer stalls of 10 s are common; only files found by a scan ever wait this long.
pub const SCAN_QUIET: Duration = Duration::from_secs(15);

/// While a scanned file's writer has it open, how often the kernel is asked again (its close
/// event normally comes first).
pub const WRITER_RECHECK: Duration = Duration::from_secs(1);

impl Engine {
    pub(super) fn on_source(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::File(file) => {
                self.readout.counters.events += 1;
                self.cuts.waste.arrived();
                self.on_file(file, Instant::now());
            }
            SourceEvent::InitialScanDone => self.initial_scan_done(),
            SourceEvent::Overflow => {
                // The source rescans after each overflow.
                self.readout.counters.overflows += 1;
                self.readout.counters.rescans += 1;
            }
            SourceEvent::Health { topic, problem } => self.note_health(topic, problem),
            SourceEvent::PollPass { took } => self.readout.timings.poll_passes.observe(took),
            SourceEvent::RootBack(_) => self.readout.counters.rescans += 1,
            SourceEvent::RootLost(_) => {}
        }
    }

    fn on_file(&mut self, file: FileEvent, now: Instant) {
        let abs = self.set.file.watch[file.root].path.join(&file.rel);
        match file.origin {
            Origin::InitialScan => self.on_initial(file, abs, now),
            Origin::Scan if !self.options.once => {
                self.hold_until_complete(abs, file.root, file.rel, file.kind, now)
            }
            Origin::Scan | Origin::Event => {
                if matches!(file.kind, EventKind::CloseWrite | EventKind::MovedTo) {
                    self.arrivals.scanned.remove(&abs);
                }
                self.on_ready(
                    file.root,
                    &file.rel,
                    file.kind,
                    now,
                    file.origin == Origin::Scan,
                );
            }
        }
    }

    /// A file present at start-up: recorded as the baseline on a first start; otherwise run
    /// by the rules for which it is new, changed, or failed last time (catch-up).
    fn on_initial(&mut self, file: FileEvent, abs: PathBuf, now: Instant) {
        let Some(version) = FileVersion::of(&abs) else {
            return;
        };
        // A restart re-sees every cut file: only content no revision holds is news.
        self.take_cut_file(file.root, &file.rel, file.kind, Dedup::Any);
        let set = self.set.clone();
        set.route_into(
            &file.rel,
            file.kind,
            &mut self.arrivals.scratch,
            &mut self.arrivals.routed,
        );
        if self.arrivals.routed.is_empty() {
            return;
        }
        let input = self.rooted(file.root, &file.rel);
        let mut catch_up = false;
        for index in std::mem::take(&mut self.arrivals.routed) {
            if set.file.rules[index].sequence.is_some() {
                let purpose = if self.arrivals.began_first {
                    Purpose::Baseline
                } else {
                    Purpose::CatchUp
                };
                self.on_frame(index, file.root, &file.rel, purpose, now);
                continue;
            }
            let rule = &set.file.rules[index].name;
            let wanted = !self.arrivals.began_first
                && self.node.store.as_mut().is_some_and(|store| {
                    let own_output = store.producer(&abs, version).ok().flatten().as_deref()
                        == Some(rule.as_str());
                    !own_output && store.wants_catch_up(rule, &input, version).unwrap_or(true)
                });
            if wanted {
                catch_up = true;
            } else if self.node.store.is_none() {
                // With a store, the store knows this version: it refuses a later duplicate.
                self.planned.ledger.record(rule, &abs, version);
            }
        }
        if self.arrivals.first_start {
            if self.node.store.is_some() {
                self.arrivals.baseline.push((input, version));
                if self.arrivals.baseline.len() >= BASELINE_CHUNK {
                    self.flush_baseline();
                }
            }
        } else if self.arrivals.began_first {
            // A root first listed after the initial scan of a first start.
            if self.node.store.is_some() {
                let files = vec![(input, version)];
                self.node.committer.push(
                    crate::store::queue::Write::Baseline { files },
                    super::node::outbox::Then::Nothing,
                );
            }
        } else if catch_up {
            self.hold_until_complete(abs, file.root, file.rel, file.kind, now);
        }
    }

    /// A file found by a scan: ready now if nobody writes it, else held until its writer
    /// closes it or (when the kernel cannot say) until it has held still for [`SCAN_QUIET`].
    fn hold_until_complete(
        &mut self,
        abs: PathBuf,
        root: usize,
        rel: PathBuf,
        kind: EventKind,
        now: Instant,
    ) {
        let quiet = match lease::writers(&abs) {
            Writers::None => return self.on_ready(root, &rel, kind, now, true),
            Writers::Open => WRITER_RECHECK,
            Writers::Unknown => SCAN_QUIET,
        };
        let version = FileVersion::of(&abs);
        if version.is_some() {
            let waiting = Waiting {
                root,
                rel,
                kind,
                version,
                quiet,
            };
            self.arrivals.scanned.push(abs, now + quiet, waiting);
        }
    }

    /// A file is ready (or deleted): route it, then dispatch or settle per rule. A product of
    /// this daemon's own jobs is recognised from memory by its one event (which consumes the
    /// record when a store holds it too); a `scanned` file asks the store.
    fn on_ready(&mut self, root: usize, rel: &Path, kind: EventKind, now: Instant, scanned: bool) {
        let set = self.set.clone();
        let abs = set.file.watch[root].path.join(rel);
        // A product's publish ends in one complete-file event (the rename into place); other
        // kinds (a poller's `create` first) leave the record for it.
        let completes = matches!(kind, EventKind::CloseWrite | EventKind::MovedTo);
        let published = if self.node.store.is_some() && completes {
            self.provenance.take(&abs)
        } else {
            self.provenance.get(&abs)
        };
        // A cut file is imported when complete; one a scan found again is news only when no
        // revision holds its content (a live save of an older cut is a revert, and stored).
        if completes || scanned {
            let dedup = if scanned { Dedup::Any } else { Dedup::Latest };
            self.take_cut_file(root, rel, kind, dedup);
            self.input_arrived(&abs);
        }
        set.route_into(
            rel,
            kind,
            &mut self.arrivals.scratch,
            &mut self.arrivals.routed,
        );
        if self.arrivals.routed.is_empty() {
            return;
        }
        // A deletion has no version: whatever is at the path now (a file renamed into its
        // place meanwhile) is another file, with its own event.
        let version = if kind == EventKind::Delete {
            None
        } else {
            FileVersion::of(&abs)
        };
        if kind != EventKind::Delete && version.is_none() {
            tracing::debug!(path = %abs.display(), "gone before it could be routed");
            return;
        }
        if kind != EventKind::Delete {
            let routed = std::mem::take(&mut self.arrivals.routed);
            self.note_outside(&set, &routed, rel, &abs, now);
            self.arrivals.routed = routed;
        }
        let producer = match (published, version) {
            (Some((rule, made)), Some(version)) if made == version => Some(rule),
            (_, Some(version)) if scanned => self
                .node
                .store
                .as_ref()
                .and_then(|store| store.producer(&abs, version).ok().flatten()),
            _ => None,
        };
        for index in std::mem::take(&mut self.arrivals.routed) {
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
                self.arrivals.settling.push(
                    (rule.name.clone(), abs.clone()),
                    now + rule.settle,
                    waiting,
                );
            } else {
                self.dispatch(index, root, rel, version);
            }
        }
    }

    /// Files whose quiet time is over: dispatched if they held still, else waiting again.
    pub(super) fn fire_due_files(&mut self, now: Instant) {
        for (abs, waiting) in self.arrivals.scanned.drain_ready(now) {
            let writers = lease::writers(&abs);
            match FileVersion::of(&abs) {
                None => {}
                Some(_) if writers == Writers::None => {
                    self.on_ready(waiting.root, &waiting.rel, waiting.kind, now, true)
                }
                Some(current)
                    if writers == Writers::Unknown
                        && waiting.quiet == SCAN_QUIET
                        && Some(current) == waiting.version =>
                {
                    self.on_ready(waiting.root, &waiting.rel, waiting.kind, now, true)
                }
                Some(current) => {
                    // Still written, or changed during its quiet time: ask again later.
                    let quiet = if writers == Writers::Open {
                        WRITER_RECHECK
                    } else {
                        SCAN_QUIET
                    };
                    self.arrivals.scanned.push(
                        abs,
                        now + quiet,
                        Waiting {
                            version: Some(current),
                            quiet,
                            ..waiting
                        },
                    );
                }
            }
        }
        for ((rule, abs), waiting) in self.arrivals.settling.drain_ready(now) {
            let current = FileVersion::of(&abs);
            if current.is_some() && current != waiting.version {
                // Written again during the quiet time: wait again from now.
                let deadline = now + waiting.quiet;
                self.arrivals.settling.push(
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

    /// Files a producer declared complete (`shotrouter notify`): routed at once, as if their
    /// close had been seen, without waiting for the source to notice them.
    pub(super) fn take_notices(&mut self, now: Instant) {
        let Some(store) = self.node.store.as_mut() else {
            return;
        };
        let notices = match store.take_notices() {
            Ok(notices) => notices,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the notices of producers");
                return;
            }
        };
        for notice in notices {
            let Some(root) = self
                .set
                .file
                .watch
                .iter()
                .position(|w| w.name == notice.root)
            else {
                tracing::warn!(root = %notice.root, path = %notice.rel.display(), "notice for a root these rules do not watch; ignored");
                continue;
            };
            tracing::info!(root = %notice.root, path = %notice.rel.display(), "notified complete by a producer");
            self.on_ready(root, &notice.rel, EventKind::CloseWrite, now, false);
        }
    }

    /// A source's report on how well it covers the tree: logged on each change and kept as
    /// this node's health (shown by `shotrouter status`).
    fn note_health(&mut self, topic: &'static str, problem: Option<String>) {
        match problem {
            Some(problem) => {
                tracing::error!(topic, problem = %problem, "degraded");
                self.arrivals.health.insert(topic, problem);
            }
            None => {
                if self.arrivals.health.remove(topic).is_some() {
                    tracing::info!(topic, "no longer degraded");
                }
            }
        }
        // Recorded with the next heartbeat, at once.
        self.node.liveness.beat_soon();
    }

    /// Hands the baseline gathered so far to the outbox, in one write.
    fn flush_baseline(&mut self) {
        let files = std::mem::take(&mut self.arrivals.baseline);
        self.arrivals.baselined += files.len();
        if !files.is_empty() {
            self.node.committer.push(
                crate::store::queue::Write::Baseline { files },
                super::node::outbox::Then::Nothing,
            );
        }
    }

    fn initial_scan_done(&mut self) {
        self.arrivals.initial_done = true;
        if !self.arrivals.first_start {
            tracing::info!(
                catching_up = self.arrivals.scanned.len(),
                "initial scan done; files new or changed since the last run will be processed"
            );
            return;
        }
        self.flush_baseline();
        tracing::info!(
            files = self.arrivals.baselined,
            "first start: files already present are recorded as the baseline, not processed (`shotrouter rerun` or `watch --once` processes them)"
        );
        self.arrivals.first_start = false;
    }
}
