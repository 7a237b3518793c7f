//! `watch --metrics-file`: the Prometheus text of [`crate::http::metrics`] written to a file
//! every so often and at exit, for node_exporter's textfile collector. Its own thread, its own
//! read-only store connection: a slow disk or a busy database never holds up the engine.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};

use crate::engine::telemetry::TelemetryHandle;
use crate::store::Location;
use crate::store::history::JobHistory;

/// The writer thread; [`MetricsFile::finish`] writes once more and stops it.
pub struct MetricsFile {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

/// Starts writing `path` every `every` from the store at `location` and `telemetry`.
pub fn start(
    path: PathBuf,
    every: Duration,
    location: &Location,
    telemetry: &TelemetryHandle,
) -> MetricsFile {
    let (stop, stopped) = bounded::<()>(1);
    let location = location.clone();
    let telemetry = telemetry.clone();
    let thread = std::thread::Builder::new()
        .name("metrics-file".into())
        .spawn(move || {
            let mut store = None;
            loop {
                let last = stopped.recv_timeout(every).is_ok();
                write(&path, &location, &telemetry, &mut store);
                if last {
                    return;
                }
            }
        })
        .map_err(|e| tracing::error!(error = %e, "cannot start the metrics-file thread"))
        .ok();
    MetricsFile { stop, thread }
}

impl MetricsFile {
    /// Writes the file a last time (the engine's final snapshot) and stops the thread.
    pub fn finish(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One rewrite: to a temp file beside `path`, then renamed over it, so a collector never
/// reads half a page. Failures are logged; the next round tries again.
fn write(
    path: &Path,
    location: &Location,
    telemetry: &TelemetryHandle,
    store: &mut Option<Box<dyn JobHistory + Send>>,
) {
    let snapshot = telemetry.snapshot();
    // Until the engine has published once, its store may not be made or upgraded yet.
    if snapshot.started_at_ms == 0 {
        return;
    }
    if store.is_none() {
        match crate::store::open_history(location) {
            Ok(opened) => *store = Some(opened),
            Err(e) => {
                tracing::warn!(error = %e, "metrics file: cannot open the job store yet");
                return;
            }
        }
    }
    let Some(history) = store.as_deref() else {
        return;
    };
    let started = std::time::Instant::now();
    let rendered = crate::http::metrics::render(Some(&snapshot), history);
    tracing::debug!(
        render_us = started.elapsed().as_micros() as u64,
        "metrics rendered"
    );
    let text = match rendered {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(error = %e, "metrics file: cannot render the metrics");
            return;
        }
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    if let Err(e) = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path)) {
        tracing::warn!(error = %e, path = %path.display(), "metrics file: cannot write it");
    }
}
