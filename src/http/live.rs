//! What the dashboard shows, computed once a second by one task whatever the number of
//! viewers (and not at all while nobody looks), and pushed to each of them by server-sent
//! events (`/api/v1/events`) when it changes. `status`, `rules` and `/healthz` answer from it
//! too: with 100,000 jobs the store's counts take a good part of a second, once, not once
//! per request. Every list is bounded (the newest few), so a store of 100,000 jobs costs the same
//! as one of ten. File names travel as JSON strings inside `data:` lines: serde_json escapes
//! control characters, so a name with a newline cannot end an event early.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State as Extract;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::engine::telemetry::{Progress, Telemetry, TelemetryHandle};
use crate::store::history::{JobFilter, JobHistory};
use crate::store::{JobProgress, JobRow, Status, StatusReport, StoreError, now_ms};

use super::State;
use super::pool::Pool;

/// How often the live view is computed.
const TICK: Duration = Duration::from_secs(1);

/// How often the per-rule counts (the costliest part) are computed again at most.
const RULES_EVERY: Duration = Duration::from_secs(10);

/// Rows per list.
const ROWS: usize = 20;

/// Per-rule counts stop at this many: a number this high reads "at least".
pub const COUNT_CAP: usize = 1000;

/// A job in a worker's hands, with its progress when its step reports one.
#[derive(Debug, Clone, Serialize)]
pub struct LiveJob {
    /// The stored row.
    #[serde(flatten)]
    pub row: JobRow,
    /// From the engine's snapshot for this node's jobs (fresher), else as the node that runs
    /// it last recorded it in the store (a worker's, another watcher's).
    pub progress: Option<JobProgress>,
}

/// Counts of one rule, each capped at [`COUNT_CAP`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleStats {
    /// The rule.
    pub name: String,
    /// Jobs created in the last hour and done.
    pub done_1h: usize,
    /// Jobs created in the last 24 hours that failed.
    pub failed_24h: usize,
    /// Jobs queued now.
    pub queued: usize,
}

/// The live view, as sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    /// The store's counts; `None` while the store cannot be read.
    pub status: Option<StatusReport>,
    /// Why the store cannot be read.
    pub error: Option<String>,
    /// The engine's snapshot, when a daemon runs in this process.
    pub telemetry: Option<Telemetry>,
    /// Jobs running, newest first.
    pub running: Vec<LiveJob>,
    /// Jobs queued, newest first.
    pub queued: Vec<JobRow>,
    /// Jobs waiting for their declared inputs, newest first (their result says what for).
    pub waiting: Vec<JobRow>,
    /// Jobs that failed, created in the last 24 hours, newest first.
    pub failures: Vec<JobRow>,
    /// The newest jobs, whatever their state.
    pub recent: Vec<JobRow>,
    /// Per-rule counts.
    pub rules: Vec<RuleStats>,
    /// Per cut, the waste the watcher last worked out, with its worst shots.
    pub waste: Vec<super::cuts::WasteSummary>,
    /// The ids among `recent` that have a thumbnail on this node (`thumbnail: true`).
    pub thumbnails: Vec<crate::store::JobId>,
    /// The rules the watcher in this process routes by now, in file order (none from
    /// `shotrouter serve`): the dashboard's controls list them before any of their jobs exist.
    pub configured: Vec<ConfiguredRule>,
}

/// A rule as the watcher routes by it: what decides when its jobs start.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfiguredRule {
    /// The rule.
    pub name: String,
    /// Its `priority:`.
    pub priority: i32,
    /// Its `window:` ("19:00–07:00"), none when it may start at any time.
    pub windows: Vec<String>,
    /// Whether the (local) clock is inside one of its windows now.
    pub open: bool,
}

/// The rules of `set`, their windows read against the engine's clock.
fn configured(set: &crate::route::matcher::RuleSet) -> Vec<ConfiguredRule> {
    let minute = crate::rules::clock::local_minute();
    set.file
        .rules
        .iter()
        .map(|r| ConfiguredRule {
            name: r.name.clone(),
            priority: r.priority,
            windows: r.windows.iter().map(ToString::to_string).collect(),
            open: crate::rules::schedule::open_at(&r.windows, minute),
        })
        .collect()
}

/// The latest view, serialized once for every viewer.
#[derive(Debug, Default)]
pub struct Live {
    /// The view.
    pub view: View,
    /// Its JSON.
    pub json: String,
}

/// Who asked for the view lately, and when it was last computed: the task computes only
/// while someone looks (an SSE viewer, or a request within [`IDLE_AFTER`]), so a daemon whose
/// server nobody reads pays nothing for it.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    /// When a request last wanted the view, unix ms.
    wanted_ms: AtomicI64,
    /// When the view was last computed, unix ms.
    fresh_ms: AtomicI64,
    /// Wakes the task for a request that found the view stale.
    wake: Notify,
    /// Told after every computation.
    computed: Notify,
}

/// With no viewer and no request for this long, the view is no longer computed.
const IDLE_AFTER_MS: i64 = 10_000;

/// A view older than this is computed again before a request is answered from it.
const STALE_MS: i64 = 2_000;

/// Per-rule counts are computed again at most this often, even while the counts move.
const RULES_MIN: Duration = Duration::from_secs(3);

/// The latest view, at most [`STALE_MS`] old (or the one there is, if the store is too slow
/// to give a fresh one within 10 s). Every request that waits shares one computation.
pub(crate) async fn fresh(state: &super::Shared) -> Arc<Live> {
    let demand = &state.demand;
    demand.wanted_ms.store(now_ms(), Ordering::Relaxed);
    if now_ms() - demand.fresh_ms.load(Ordering::Relaxed) > STALE_MS {
        let computed = demand.computed.notified();
        tokio::pin!(computed);
        computed.as_mut().enable();
        demand.wake.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(10), computed).await;
    }
    state.live.borrow().clone()
}

/// Starts the task that refreshes the view until `stop`; returns the view's receiver.
pub(crate) fn start(
    pool: Pool,
    telemetry: Option<TelemetryHandle>,
    demand: Arc<Demand>,
    state_dir: std::path::PathBuf,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<Arc<Live>> {
    let (tx, rx) = watch::channel(Arc::new(Live::default()));
    tokio::spawn(async move {
        let mut rules: Vec<RuleStats> = Vec::new();
        let mut rules_at: Option<Instant> = None;
        let mut last_counts = None;
        loop {
            // The server's own receiver is one; more are SSE viewers.
            let looked_at = tx.receiver_count() > 1
                || now_ms() - demand.wanted_ms.load(Ordering::Relaxed) < IDLE_AFTER_MS;
            if looked_at {
                let snapshot = telemetry.as_ref().map(TelemetryHandle::snapshot);
                let dir = state_dir.clone();
                let computed = pool.run(move |h| {
                    let mut view = compute(h, snapshot)?;
                    let done = view.recent.iter().filter(|j| j.output.is_some());
                    view.thumbnails = super::thumbnail::present(&dir, done.map(|j| j.id));
                    Ok(view)
                });
                let mut view = match computed.await {
                    Ok(view) => view,
                    Err(e) => View {
                        error: Some(e.to_string()),
                        telemetry: telemetry.as_ref().map(TelemetryHandle::snapshot),
                        ..View::default()
                    },
                };
                // The per-rule counts are the costly part: again when the store's counts
                // moved (at most every RULES_MIN), else every RULES_EVERY.
                let counts = view
                    .status
                    .as_ref()
                    .map(|s| (s.running, s.queued, s.failed_24h, s.done_1h, s.done_24h));
                let since = rules_at.map(|t| t.elapsed());
                let due = since
                    .is_none_or(|d| d >= RULES_EVERY || (counts != last_counts && d >= RULES_MIN));
                if counts.is_some()
                    && due
                    && let Ok(fresh) = pool.run(|h| Ok(rule_stats(h)?)).await
                {
                    rules = fresh;
                    rules_at = Some(Instant::now());
                    last_counts = counts;
                }
                view.rules = rules.clone();
                view.configured = telemetry
                    .as_ref()
                    .and_then(TelemetryHandle::rules)
                    .map(|set| configured(&set))
                    .unwrap_or_default();
                view.waste = telemetry
                    .as_ref()
                    .and_then(TelemetryHandle::waste)
                    .map(|report| super::cuts::summaries(&report, ROWS))
                    .unwrap_or_default();
                let json = serde_json::to_string(&view).unwrap_or_else(|e| {
                    serde_json::json!({ "error": format!("cannot serialize the view: {e}") })
                        .to_string()
                });
                tx.send_if_modified(|live| {
                    if live.json == json {
                        return false;
                    }
                    *live = Arc::new(Live { view, json });
                    true
                });
                demand.fresh_ms.store(now_ms(), Ordering::Relaxed);
                demand.computed.notify_waiters();
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = demand.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    });
    rx
}

/// The snapshot's progress in the store's form, which the API and the page show.
pub fn stored_form(progress: Progress) -> JobProgress {
    JobProgress {
        frame: progress.frame,
        total_frames: progress.total_frames,
        fps_milli: progress.fps_milli,
    }
}

/// One view from the store, without the per-rule counts.
fn compute(history: &mut dyn JobHistory, telemetry: Option<Telemetry>) -> Result<View, StoreError> {
    let newest = |status: Option<Status>, since_ms: Option<i64>| {
        history.jobs(&JobFilter {
            status,
            since_ms,
            limit: ROWS,
            ..JobFilter::default()
        })
    };
    let running = newest(Some(Status::Running), None)?
        .into_iter()
        .map(|mut row| {
            let progress = telemetry
                .as_ref()
                .and_then(|t| t.active.get(&row.id.to_string()))
                .and_then(|a| a.progress)
                .map(stored_form)
                .or(row.progress.take());
            LiveJob { row, progress }
        })
        .collect();
    let view = View {
        status: Some(history.status()?),
        error: None,
        running,
        queued: newest(Some(Status::Queued), None)?,
        waiting: newest(Some(Status::Waiting), None)?,
        failures: newest(Some(Status::Failed), Some(now_ms() - 86_400_000))?,
        recent: newest(None, None)?,
        telemetry,
        rules: Vec::new(),
        waste: Vec::new(),
        thumbnails: Vec::new(),
        configured: Vec::new(),
    };
    Ok(view)
}

/// Each rule's counts, each capped at [`COUNT_CAP`] rows read.
///
/// # Errors
/// Database errors.
pub fn rule_stats(history: &dyn JobHistory) -> Result<Vec<RuleStats>, StoreError> {
    let now = now_ms();
    let count = |rule: &str, status: Status, since_ms: Option<i64>| {
        history.count_jobs(&JobFilter {
            status: Some(status),
            rule: Some(rule),
            since_ms,
            limit: COUNT_CAP,
            before: None,
        })
    };
    history
        .rule_names()?
        .into_iter()
        .map(|name| {
            Ok(RuleStats {
                done_1h: count(&name, Status::Done, Some(now - 3_600_000))?,
                failed_24h: count(&name, Status::Failed, Some(now - 86_400_000))?,
                queued: count(&name, Status::Queued, None)?,
                name,
            })
        })
        .collect()
}

/// `GET /api/v1/events`: the view now, then again whenever it changes.
pub(crate) async fn events(
    Extract(state): Extract<State>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    // The first view must be fresh; later ones come as the task computes them.
    fresh(&state).await;
    let rx = state.live.clone();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
        }
        // Before the first view is computed there is nothing to send.
        let mut json = rx.borrow_and_update().json.clone();
        while json.is_empty() {
            rx.changed().await.ok()?;
            json = rx.borrow_and_update().json.clone();
        }
        let event = Event::default().event("live").data(json);
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
