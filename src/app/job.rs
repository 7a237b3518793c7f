//! `shotrouter job ID`: everything about one job, as a supervisor reads it (its file and
//! version, attempts, result, times, progress, the argv planned and the argv run, its farm
//! run) and the end of its log; or JSON for scripts.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::app::human::{duration_ms, local_datetime_ns, local_time_ms, size};
use crate::app::ops::{json, open, print, runtime, took};
use crate::app::style::{paint, status_paint};
use crate::error::Error;
use crate::os::quote::shell_quote;
use crate::store::{self, JobId, Location};

/// `shotrouter job ID`.
///
/// # Errors
/// An unknown id (exit 1), no store, or a database error.
pub fn job(
    store: &Location,
    logs: Option<&Path>,
    id: JobId,
    as_json: bool,
) -> Result<ExitCode, Error> {
    let detail = open(store)?
        .job(id)
        .map_err(runtime)?
        .ok_or_else(|| Error::Config(format!("no job {id} in the store")))?;
    let log_path = logs
        .unwrap_or(Path::new("STATE"))
        .join("logs")
        .join(&detail.row.rule)
        .join(format!("{id}.log"));
    if as_json {
        return json(&detail);
    }
    let r = &detail.row;
    let mut out = String::new();
    let status = match status_paint(&r.status) {
        Some(p) => paint(&r.status, p),
        None => r.status.clone(),
    };
    let _ = writeln!(
        out,
        "job {}  {status}  rule {} (definition {})",
        r.id, r.rule, detail.rule_hash
    );
    let _ = writeln!(out, "file      {}", shell_quote(r.path.as_bytes()));
    if let Some((_, ino, bytes, mtime)) = detail.input {
        let _ = writeln!(
            out,
            "version   inode {ino} size {} ({bytes} bytes) modified {}",
            size(bytes),
            local_datetime_ns(mtime)
        );
    }
    let _ = writeln!(out, "attempts  {}", r.attempts);
    if r.priority != 0 {
        let _ = writeln!(out, "priority  {}", r.priority);
    }
    if let Some(result) = &r.result {
        let _ = writeln!(out, "result    {result}");
    }
    if let Some(output) = &r.output {
        let _ = writeln!(out, "output    {}", shell_quote(output.as_bytes()));
    }
    let now = store::now_ms();
    let when = |t: i64| format!("{} ({} ago)", local_time_ms(t, now), duration_ms(now - t));
    let _ = writeln!(out, "created   {}", when(r.created_at));
    if let Some(t) = r.started_at {
        let _ = writeln!(out, "started   {}", when(t));
    }
    if let Some(t) = r.finished_at {
        let _ = writeln!(out, "finished  {}", when(t));
    }
    let ran = took(r, now);
    if !ran.is_empty() {
        let _ = writeln!(out, "took      {ran}");
    }
    if let Some(p) = r.progress {
        let total = p.total_frames.map_or(String::new(), |t| format!(" of {t}"));
        let fps = f64::from(p.fps_milli) / 1000.0;
        let _ = writeln!(out, "progress  frame {}{total}, {fps:.1} fps", p.frame);
    }
    let quoted = |step: &Vec<Vec<u8>>| -> String {
        step.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &detail.ran {
        // A worker ran other paths (its `--map`): both, planned first.
        Some(ran) => {
            let node = ran.node.as_deref().unwrap_or("?");
            let _ = writeln!(out, "ran on    node {node}, its paths mapped");
            let steps = detail.raw_steps.len().max(ran.raw_steps.len());
            for i in 0..steps {
                if let Some(step) = detail.raw_steps.get(i) {
                    let _ = writeln!(out, "step {}    planned {}", i + 1, quoted(step));
                }
                if let Some(step) = ran.raw_steps.get(i) {
                    let _ = writeln!(out, "          ran     {}", quoted(step));
                }
            }
        }
        None => {
            for (i, step) in detail.raw_steps.iter().enumerate() {
                let _ = writeln!(out, "step {}    {}", i + 1, quoted(step));
            }
        }
    }
    if let Some(used) = &detail.used {
        for program in &used.programs {
            let version = program.version.as_deref().unwrap_or("version unknown");
            let _ = writeln!(
                out,
                "program   {} ({version})",
                shell_quote(program.path.as_bytes())
            );
        }
        for input in &used.inputs {
            let (_, ino, bytes, mtime) = input.version;
            let changed = if input.changed {
                paint("  CHANGED since", crate::app::style::Paint::Red)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "input     {} read at inode {ino} size {} modified {}{changed}",
                shell_quote(input.path.as_bytes()),
                size(bytes),
                local_datetime_ns(mtime)
            );
        }
    }
    if let Some(run) = &detail.farm_run {
        let (executor, id) = run.split_once(':').unwrap_or(("farm", run));
        let _ = writeln!(out, "farm      {executor} job {id}");
    }
    let on_node = match (&r.node, logs.is_some()) {
        (Some(node), false) => format!(" (on node {node}; give --state for this machine's logs)"),
        _ => String::new(),
    };
    let _ = writeln!(out, "log       {}{on_node}", log_path.display());
    if let Ok(text) = std::fs::read(&log_path) {
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(20)..] {
            let _ = writeln!(out, "  | {line}");
        }
    }
    print(&out)
}
