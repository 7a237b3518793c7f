//! `shotrouter status`: what the daemon is doing, in two lines and a line per node; also the
//! block `status --watch` repeats.

use crate::store::Location;
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::app::human::{duration_ms, local_time_ms};
use crate::app::ops::{json, open, print, runtime};
use crate::app::style::{Paint, paint};
use crate::error::Error;
use crate::store::{self, StatusReport};

/// `shotrouter status`.
///
/// # Errors
/// No store, or a database error.
pub fn status(store: &Location, as_json: bool) -> Result<ExitCode, Error> {
    let report = open(store)?.status().map_err(runtime)?;
    if as_json {
        return json(&report);
    }
    print(&status_text(&report))
}

/// Reads the status report for `status --watch`.
///
/// # Errors
/// No store, or a database error.
pub fn status_report(store: &Location) -> Result<StatusReport, Error> {
    open(store)?.status().map_err(runtime)
}

/// What `status` prints of a report.
pub fn status_text(report: &StatusReport) -> String {
    let claimed = if report.claimed > 0 {
        format!(" (and {} claimed, about to start)", report.claimed)
    } else {
        String::new()
    };
    let claimed = if report.on_farm > 0 {
        format!(
            " ({} of them on the farm: pending or running there){claimed}",
            report.on_farm
        )
    } else {
        claimed
    };
    let oldest = report.oldest_queued_s.map_or(String::new(), |s| {
        format!(" (oldest waiting {})", duration_ms(s * 1000))
    });
    let failed = format!("failed in the last 24h {}", report.failed_24h);
    let failed = if report.failed_24h > 0 {
        paint(&failed, Paint::Red)
    } else {
        failed
    };
    let mut out = format!(
        "running {}{claimed}, queued {}{oldest}, {failed}\ndone {} in the last hour ({:.1}/min), {} in the last 24h; {} files known\n",
        report.running,
        report.queued,
        report.done_1h,
        report.done_1h as f64 / 60.0,
        report.done_24h,
        report.files
    );
    if report.waiting > 0 {
        out.insert_str(
            out.len() - 1,
            &format!(
                "; {} waiting for their inputs (shotrouter jobs --status waiting)",
                report.waiting
            ),
        );
    }
    if report.skipped_24h > 0 {
        out.insert_str(
            out.len() - 1,
            &format!(
                "; {} frames skipped by `frames:` in the last 24h (shotrouter jobs --status skipped)",
                report.skipped_24h
            ),
        );
    }
    let now = store::now_ms();
    for node in &report.nodes {
        // A heartbeat comes every 10 s (every 5 s or less from a worker): a minute without one
        // means no daemon runs there.
        // A daemon stopped a moment ago still looks fresh: say what is known, not "running".
        let seen = if node.last_seen_s < 60 {
            paint(
                &format!(
                    "heartbeat {} ago (a daemon beats every 10 s while it runs)",
                    duration_ms(node.last_seen_s * 1000)
                ),
                Paint::Green,
            )
        } else {
            paint(
                &format!(
                    "not running (last seen {}, {} ago)",
                    local_time_ms(now - node.last_seen_s * 1000, now),
                    duration_ms(node.last_seen_s * 1000)
                ),
                Paint::Red,
            )
        };
        let role = node.role.as_deref().unwrap_or("node");
        let jobs = match node.running {
            0 => String::new(),
            1 => ", 1 job".to_string(),
            n => format!(", {n} jobs"),
        };
        let paused = if node.paused {
            format!(", {}", paint("paused", Paint::Red))
        } else {
            String::new()
        };
        let _ = writeln!(out, "{role} {}: {seen}{jobs}{paused}", node.name);
        if let Some(health) = &node.health
            && node.last_seen_s < 60
        {
            let _ = writeln!(out, "  {}: {health}", paint("DEGRADED", Paint::Red));
        }
    }
    for wait in &report.waiting_for_tags {
        let _ = writeln!(
            out,
            "{} queued job{} {}, which no live node holds (shotrouter worker --tags {}): {}{}",
            wait.jobs,
            if wait.jobs == 1 { "" } else { "s" },
            wait.reason,
            wait.tags.join(","),
            wait.ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            if wait.jobs as usize > wait.ids.len() {
                " …"
            } else {
                ""
            }
        );
    }
    for wait in &report.waiting_for_window {
        let _ = writeln!(
            out,
            "{} queued job{} of rule {} {} (shotrouter run-now ID starts one now)",
            wait.jobs,
            if wait.jobs == 1 { "" } else { "s" },
            wait.rule,
            wait.reason,
        );
    }
    for pause in &report.paused {
        let _ = writeln!(
            out,
            "paused: {} since {} (shotrouter resume --{} {})",
            pause.target,
            local_time_ms(pause.since_ms, now),
            pause.target.kind(),
            pause.target.name()
        );
    }
    out
}
