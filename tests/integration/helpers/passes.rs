//! Waiting on the daemon instead of sleeping: its poll passes and whether it is idle, read from
//! the metrics file it rewrites every 100 ms when started with [`METRICS_ARGS`]. A test that
//! checks nothing ran twice waits for passes made after the last file ran, and for their jobs.

use std::time::Duration;

use crate::env::{Env, wait_until};

/// The metrics file, in the test's folder (the daemon's working folder).
const FILE: &str = "metrics.prom";

/// `watch` arguments that make the daemon write [`FILE`] every 100 ms.
pub const METRICS_ARGS: &[&str] = &["--metrics-file", FILE, "--metrics-every", "100ms"];

/// The metrics file as last written (empty before its first write): one read, so every sample
/// comes from the same snapshot.
fn read(env: &Env) -> String {
    std::fs::read_to_string(env.path(FILE)).unwrap_or_default()
}

/// The value of the unlabelled sample `name` in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// Poll passes the daemon has finished (the poll source's, and inotify's over the folders it
/// cannot watch); 0 before the first write.
pub fn passes(env: &Env) -> u64 {
    sample(&read(env), "shotrouter_poll_pass_duration_seconds_count").map_or(0, |n| n as u64)
}

/// Waits until the daemon has finished `n` passes more than `since` (a [`passes`] reading).
/// The file lags the engine by at most 200 ms, so at least `n - 1` of them started after
/// `since` was read.
pub fn wait_for_passes(env: &Env, since: u64, n: u64, limit: Duration) {
    wait_until(
        &format!("{n} poll passes after the first {since}"),
        limit,
        || passes(env) >= since + n,
    );
}

/// Waits until the daemon holds no job queued or running and no file waiting, and has counted
/// `ran()` successful attempts: every event it had received has been dealt with.
pub fn wait_idle(env: &Env, ran: impl Fn() -> usize, limit: Duration) {
    wait_until("the daemon to be idle", limit, || {
        let text = read(env);
        let zero = |name| sample(&text, name) == Some(0.0);
        zero("shotrouter_engine_queued")
            && zero("shotrouter_running_jobs")
            && zero("shotrouter_files_waiting")
            && sample(&text, "shotrouter_attempts_succeeded_total") == Some(ran() as f64)
    });
}
