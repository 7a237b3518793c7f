//! Keeps the cuts' waste fresh for the dashboard and `/api/v1/cuts/{name}/waste` without
//! slowing routing: the walk of the shot tree runs on a thread of its own, asked for when a
//! cut revision or new rules arrive, and again at most every [`REFRESH`] while files arrive.
//! Nothing is walked while the store holds no cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};

use super::telemetry::{TelemetryHandle, WasteReport};
use super::waste::waste_of_all;
use crate::route::matcher::RuleSet;
use crate::store::cuts::CutRevision;

/// While files keep arriving, how often the waste is worked out again, at most: a walk of a
/// large tree over NFS takes a while, and the dashboard's figures need not be to the second.
pub const REFRESH: Duration = Duration::from_secs(300);

/// The rules and the latest revision of every cut, to work the waste out from.
struct Ask {
    set: Arc<RuleSet>,
    revisions: Arc<Vec<CutRevision>>,
}

/// The watcher's side of the waste thread.
#[derive(Debug, Default)]
pub struct WasteWatch {
    /// To the thread; `None` when none was started (no telemetry wanted, or it would not start).
    asks: Option<Sender<AskBox>>,
    /// Files arrived since the last ask.
    dirty: bool,
    /// No ask for arrivals before this.
    next: Option<Instant>,
}

/// An [`Ask`] behind a box that `Debug` can print without the rules.
struct AskBox(Ask);

impl std::fmt::Debug for AskBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ask({} cuts)", self.0.revisions.len())
    }
}

impl WasteWatch {
    /// Starts the thread, which publishes each result on `handle`. A thread that cannot start
    /// leaves the dashboard without waste figures (logged), and routing as it was.
    pub fn start(handle: TelemetryHandle) -> WasteWatch {
        let (tx, rx) = unbounded::<AskBox>();
        let started = std::thread::Builder::new()
            .name("cut-waste".into())
            .spawn(move || {
                while let Ok(mut ask) = rx.recv() {
                    // Asks that queued up meanwhile: only the newest counts.
                    while let Ok(newer) = rx.try_recv() {
                        ask = newer;
                    }
                    let AskBox(ask) = ask;
                    let began = Instant::now();
                    let cuts = waste_of_all(&ask.set, &ask.revisions);
                    let took_ms = began.elapsed().as_millis() as u64;
                    tracing::debug!(cuts = cuts.len(), took_ms, "worked out the cuts' waste");
                    handle.publish_waste(WasteReport {
                        computed_at_ms: crate::store::now_ms(),
                        took_ms,
                        cuts,
                    });
                }
            });
        match started {
            Ok(_) => WasteWatch {
                asks: Some(tx),
                ..WasteWatch::default()
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the cut-waste thread; the dashboard shows no waste");
                WasteWatch::default()
            }
        }
    }

    /// A file arrived: the waste may have changed.
    pub fn arrived(&mut self) {
        self.dirty = true;
    }

    /// Works the waste out again now (a new revision, new rules).
    pub fn ask(&mut self, set: &Arc<RuleSet>, revisions: &Arc<Vec<CutRevision>>, now: Instant) {
        self.dirty = false;
        self.next = Some(now + REFRESH);
        if revisions.is_empty() {
            return;
        }
        if let Some(tx) = &self.asks {
            let _ = tx.send(AskBox(Ask {
                set: Arc::clone(set),
                revisions: Arc::clone(revisions),
            }));
        }
    }

    /// Works the waste out again if files arrived and the last time is [`REFRESH`] ago.
    pub fn tick(&mut self, set: &Arc<RuleSet>, revisions: &Arc<Vec<CutRevision>>, now: Instant) {
        if self.dirty && self.next.is_none_or(|next| now >= next) {
            self.ask(set, revisions, now);
        }
    }
}
