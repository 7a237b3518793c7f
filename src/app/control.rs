//! The commands that change when queued jobs start: `bump` (a job's priority), `pause` and
//! `resume` (a node or a rule), `run-now` (past its rule's window).

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::app::ops::{check_ids, json, open, print, runtime};
use crate::error::Error;
use crate::rules::PRIORITY_RANGE;
use crate::store::control::{Bump, PauseTarget};
use crate::store::{JobId, Location};

/// A job `bump` or `run-now` left as it was, and why.
#[derive(serde::Serialize)]
struct NotBumped {
    id: JobId,
    reason: &'static str,
}

/// `shotrouter bump`: gives queued jobs a priority (or `--top`: one above every queued job's).
///
/// # Errors
/// A priority out of range, an unknown id, no store, or a database error.
pub fn bump(store: &Location, ids: &[JobId], to: Bump, as_json: bool) -> Result<ExitCode, Error> {
    if let Bump::To(p) = to
        && !PRIORITY_RANGE.contains(&p)
    {
        return Err(Error::Config(format!(
            "--priority {p} is out of range ({} to {})",
            PRIORITY_RANGE.start(),
            PRIORITY_RANGE.end()
        )));
    }
    let mut history = open(store)?;
    check_ids(history.as_ref(), ids)?;
    let bumped = history.bump(ids, to).map_err(runtime)?;
    let refused: Vec<NotBumped> = ids
        .iter()
        .filter(|id| !bumped.iter().any(|(b, _)| b == *id))
        .map(|&id| NotBumped {
            id,
            reason: "only queued jobs are bumped",
        })
        .collect();
    if as_json {
        let bumped: Vec<_> = bumped
            .iter()
            .map(|(id, priority)| serde_json::json!({ "id": id, "priority": priority }))
            .collect();
        return json(&serde_json::json!({ "bumped": bumped, "not_bumped": refused }));
    }
    let mut out = String::new();
    for (id, priority) in &bumped {
        let _ = writeln!(out, "bumped {id} to priority {priority}");
    }
    for r in &refused {
        let _ = writeln!(out, "not bumped {}: {}", r.id, r.reason);
    }
    print(&out)
}

/// `shotrouter pause` (`paused`) and `shotrouter resume`.
///
/// # Errors
/// No store, or a database error.
pub fn pause(
    store: &Location,
    target: &PauseTarget,
    paused: bool,
    as_json: bool,
) -> Result<ExitCode, Error> {
    let mut history = open(store)?;
    let changed = history.set_paused(target, paused).map_err(runtime)?;
    if as_json {
        return json(&serde_json::json!({
            "target": target,
            "paused": paused,
            "changed": changed,
        }));
    }
    let text = match (paused, changed) {
        (true, true) => format!(
            "paused {target}: {}\n",
            match target {
                PauseTarget::Node(_) => "it finishes what it runs and claims nothing new",
                PauseTarget::Rule(_) => "its jobs stay queued until `shotrouter resume`",
            }
        ),
        (true, false) => format!("{target} was already paused\n"),
        (false, true) => format!("resumed {target}\n"),
        (false, false) => format!("{target} was not paused\n"),
    };
    print(&text)
}

/// `shotrouter run-now`: lets queued jobs start outside their rule's `window:`.
///
/// # Errors
/// An unknown id, no store, or a database error.
pub fn run_now(store: &Location, ids: &[JobId], as_json: bool) -> Result<ExitCode, Error> {
    let mut history = open(store)?;
    check_ids(history.as_ref(), ids)?;
    let let_go = history.run_now(ids).map_err(runtime)?;
    let refused: Vec<NotBumped> = ids
        .iter()
        .filter(|id| !let_go.contains(id))
        .map(|&id| NotBumped {
            id,
            reason: "only queued jobs wait for a window",
        })
        .collect();
    if as_json {
        return json(&serde_json::json!({ "run_now": let_go, "not_changed": refused }));
    }
    let mut out = String::new();
    for id in &let_go {
        let _ = writeln!(out, "job {id} may start now, outside its window");
    }
    for r in &refused {
        let _ = writeln!(out, "not changed {}: {}", r.id, r.reason);
    }
    print(&out)
}
