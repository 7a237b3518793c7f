//! The operations commands: `jobs`, `retry`, `cancel`, `rerun`, `files`, `notify` (`job` is
//! in [`job`](crate::app::job), `status` in [`status`](crate::app::status)).
//! They read and write the store while the daemon runs (WAL: no lock errors), and print for a
//! supervisor at the end of a night, or JSON for scripts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::app::human::{duration_ms, local_datetime_ns, local_time_ms, size};
use crate::app::table::{self, Column};
use crate::error::Error;
use crate::os::quote::shell_quote;
use crate::store::history::{JobFilter, JobHistory};
use crate::store::{self, FileRecord, JobId, JobRow, Location, Status};

pub(crate) fn open(store: &Location) -> Result<Box<dyn JobHistory>, Error> {
    store::open_history(store)
        .map(|s| s as Box<dyn JobHistory>)
        .map_err(Error::setup)
}

/// Refuses ids the store has never seen: a typo must not look like "nothing to do".
pub(crate) fn check_ids(history: &dyn JobHistory, ids: &[JobId]) -> Result<(), Error> {
    let mut unknown = Vec::new();
    for &id in ids {
        if history.job(id).map_err(runtime)?.is_none() {
            unknown.push(id.to_string());
        }
    }
    match unknown.len() {
        0 => Ok(()),
        1 => Err(Error::Config(format!("no job {} in the store", unknown[0]))),
        _ => Err(Error::Config(format!(
            "no jobs {} in the store",
            unknown.join(", ")
        ))),
    }
}

/// Refuses a rule name the store has no job of, suggesting the closest one.
pub(crate) fn check_rule(history: &dyn JobHistory, rule: &str) -> Result<(), Error> {
    let names = history.rule_names().map_err(runtime)?;
    if names.iter().any(|n| n == rule) {
        return Ok(());
    }
    let best = names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(n, rule), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 3))
        .min();
    let hint = match best {
        Some((_, name)) => format!("; did you mean `{name}`?"),
        None if names.is_empty() => "; the store has no jobs yet".to_string(),
        None => format!("; rules with jobs: {}", names.join(", ")),
    };
    Err(Error::Config(format!(
        "no job of rule `{rule}` in the store{hint}"
    )))
}

/// A store failure while answering (exit 1), its cause kept.
pub(crate) fn runtime(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::failed(e)
}

pub(crate) fn print(text: &str) -> Result<ExitCode, Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Error::io("cannot write to stdout"))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn json(value: &impl serde::Serialize) -> Result<ExitCode, Error> {
    print(&(serde_json::to_string_pretty(value).map_err(runtime)? + "\n"))
}

/// The jobs table's columns: the free-text ones (rule, node, result, path) give way to a narrow
/// terminal, the short ones never do.
const JOB_COLUMNS: [Column; 10] = [
    Column {
        name: "ID",
        right: true,
        shrinks: false,
    },
    Column {
        name: "STATUS",
        right: false,
        shrinks: false,
    },
    Column {
        name: "RULE",
        right: false,
        shrinks: true,
    },
    Column {
        name: "PRI",
        right: true,
        shrinks: false,
    },
    Column {
        name: "TRY",
        right: true,
        shrinks: false,
    },
    Column {
        name: "CREATED",
        right: false,
        shrinks: false,
    },
    Column {
        name: "TOOK",
        right: true,
        shrinks: false,
    },
    Column {
        name: "NODE",
        right: false,
        shrinks: true,
    },
    Column {
        name: "RESULT",
        right: false,
        shrinks: true,
    },
    Column {
        name: "PATH",
        right: false,
        shrinks: true,
    },
];

/// Where `PRI` and `NODE` are in [`JOB_COLUMNS`].
const PRIORITY_COLUMN: usize = 3;
const NODE_COLUMN: usize = 7;

/// How long a job ran (or has been running); empty before it started.
pub(crate) fn took(r: &JobRow, now: i64) -> String {
    match (r.started_at, r.finished_at) {
        (Some(start), Some(end)) => duration_ms(end - start),
        (Some(start), None) if r.status == "running" => format!("{}…", duration_ms(now - start)),
        _ => String::new(),
    }
}

/// The jobs table, `indent` columns narrower than the terminal (`files` indents it).
fn table(rows: &[JobRow], indent: u16) -> String {
    let now = store::now_ms();
    // The node column only where jobs ran on more than one node (workers on a shared store).
    let mut nodes: Vec<&str> = rows.iter().filter_map(|r| r.node.as_deref()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let with_node = nodes.len() > 1;
    // The priority column only where a job's is not 0 (`priority:`, `shotrouter bump`).
    let with_priority = rows.iter().any(|r| r.priority != 0);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.id.to_string(),
                r.status.clone(),
                r.rule.clone(),
                r.priority.to_string(),
                r.attempts.to_string(),
                local_time_ms(r.created_at, now),
                took(r, now),
                r.node.clone().unwrap_or_default(),
                r.result.clone().unwrap_or_default(),
                shell_quote(r.path.as_bytes()),
            ];
            if !with_node {
                row.remove(NODE_COLUMN);
            }
            if !with_priority {
                row.remove(PRIORITY_COLUMN);
            }
            row
        })
        .collect();
    let mut columns = JOB_COLUMNS.to_vec();
    if !with_node {
        columns.remove(NODE_COLUMN);
    }
    if !with_priority {
        columns.remove(PRIORITY_COLUMN);
    }
    table::render(
        &columns,
        &rows,
        table::width().map(|w| w.saturating_sub(indent)),
    )
}

/// `shotrouter jobs`.
///
/// # Errors
/// An unknown `--status`, no store, or a database error.
pub fn jobs(
    store: &Location,
    status: Option<&str>,
    rule: Option<&str>,
    since: Option<Duration>,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode, Error> {
    let status = match status {
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            Error::Config(format!(
                "unknown status `{text}`; use waiting, queued, claimed, running, done, failed, cancelled or skipped"
            ))
        })?),
        None => None,
    };
    let since_ms = since.map(|d| store::now_ms() - d.as_millis() as i64);
    let filter = JobFilter {
        status,
        rule,
        since_ms,
        limit,
        before: None,
    };
    let history = open(store)?;
    if let Some(rule) = rule {
        check_rule(history.as_ref(), rule)?;
    }
    let rows = history.jobs(&filter).map_err(runtime)?;
    if as_json {
        return json(&rows);
    }
    print(&table(&rows, 0))
}

/// `shotrouter retry`.
///
/// # Errors
/// Nothing to retry was named, no store, or a database error.
pub fn retry(
    store: &Location,
    ids: &[JobId],
    failed: bool,
    rule: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, Error> {
    if ids.is_empty() && !failed {
        return Err(Error::Config("name job ids, or give --failed".into()));
    }
    let mut history = open(store)?;
    check_ids(history.as_ref(), ids)?;
    if let Some(rule) = rule {
        check_rule(history.as_ref(), rule)?;
    }
    let requeued = history
        .retry(ids, failed.then_some(rule))
        .map_err(runtime)?;
    let refused: Vec<Refused> = ids
        .iter()
        .filter(|id| !requeued.contains(id))
        .map(|&id| Refused {
            id,
            reason: "only failed or cancelled jobs are retried",
        })
        .collect();
    if as_json {
        return json(&serde_json::json!({ "queued": requeued, "not_queued": refused }));
    }
    let listed: Vec<String> = requeued.iter().map(ToString::to_string).collect();
    let mut out = format!(
        "queued again: {} job{} {}\n",
        requeued.len(),
        if requeued.len() == 1 { "" } else { "s" },
        listed.join(" ")
    );
    for r in &refused {
        let _ = writeln!(out, "not queued again {}: {}", r.id, r.reason);
    }
    print(&out)
}

/// A job `retry` or `cancel` was asked for and left as it was, and why.
#[derive(serde::Serialize)]
struct Refused {
    id: JobId,
    reason: &'static str,
}

/// A job `cancel` cancelled; `stopped_processes` counts the processes of its running attempt
/// that were signalled.
#[derive(serde::Serialize)]
struct Cancelled {
    id: JobId,
    stopped_processes: usize,
}

/// `shotrouter cancel`: marks the jobs cancelled, then stops running ones from their recorded
/// run (a local group: SIGTERM, SIGKILL to what is left after 3 s).
///
/// # Errors
/// No store, or a database error.
pub fn cancel(store: &Location, ids: &[JobId], as_json: bool) -> Result<ExitCode, Error> {
    let mut history = open(store)?;
    check_ids(history.as_ref(), ids)?;
    let cancelled = history.cancel(ids).map_err(runtime)?;
    let mut done = Vec::new();
    for (id, run) in &cancelled {
        let mut killed = 0;
        if let Some(run) = run {
            killed = crate::exec::terminate::terminate(run, crate::exec::runner::KILL_GRACE)
                .map_err(|e| {
                    Error::Runtime(format!("job {id} is cancelled in the store, but {e}"))
                })?;
        }
        done.push(Cancelled {
            id: *id,
            stopped_processes: killed,
        });
    }
    let refused: Vec<Refused> = ids
        .iter()
        .filter(|id| !cancelled.iter().any(|(c, _)| c == *id))
        .map(|&id| Refused {
            id,
            reason: "not queued or running",
        })
        .collect();
    if as_json {
        return json(&serde_json::json!({ "cancelled": done, "not_cancelled": refused }));
    }
    let mut out = String::new();
    for c in &done {
        let _ = writeln!(
            out,
            "cancelled {}{}",
            c.id,
            if c.stopped_processes > 0 {
                format!(" (stopped {} processes)", c.stopped_processes)
            } else {
                String::new()
            }
        );
    }
    for r in &refused {
        let _ = writeln!(out, "not cancelled {}: {}", r.id, r.reason);
    }
    print(&out)
}

/// `shotrouter rerun`.
///
/// # Errors
/// No store, or a database error.
pub fn rerun(
    store: &Location,
    rule: &str,
    since: Option<Duration>,
    as_json: bool,
) -> Result<ExitCode, Error> {
    let since_ms = since.map(|d| store::now_ms() - d.as_millis() as i64);
    let mut history = open(store)?;
    check_rule(history.as_ref(), rule)?;
    let count = history.rerun(rule, since_ms).map_err(runtime)?;
    if as_json {
        return json(&serde_json::json!({ "rule": rule, "queued": count }));
    }
    print(&format!(
        "queued {count} job{} of rule `{rule}`; the daemon plans them with the current rules\n",
        if count == 1 { "" } else { "s" }
    ))
}

/// The sequence a frame belongs to, as the store knows it: its `####` path and its record.
fn sequence_of(
    history: &dyn JobHistory,
    frame: &Path,
) -> Result<Option<(PathBuf, FileRecord)>, Error> {
    for path in crate::media::sequence::sequence_paths(frame) {
        if let Some(record) = history.file(&path).map_err(runtime)? {
            return Ok(Some((path, record)));
        }
    }
    Ok(None)
}

/// `shotrouter notify`: records the files as complete for the daemon to route at once. Every
/// path is checked first, so a typo records nothing.
///
/// # Errors
/// No store, a missing file or one under no registered watch root (exit 2), a database error.
pub fn notify(store: &Location, paths: &[PathBuf]) -> Result<ExitCode, Error> {
    let abs: Vec<PathBuf> = paths.iter().map(|p| crate::rules::absolute(p)).collect();
    let missing: Vec<String> = abs
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| shell_quote(p.as_os_str().as_encoded_bytes()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "not a file: {}; nothing was recorded",
            missing.join(" ")
        )));
    }
    let mut store = open(store)?;
    let taken = store.notify(&abs).map_err(runtime)?;
    let outside: Vec<String> = abs
        .iter()
        .zip(&taken)
        .filter(|(_, taken)| !**taken)
        .map(|(p, _)| shell_quote(p.as_os_str().as_encoded_bytes()))
        .collect();
    let count = taken.iter().filter(|t| **t).count();
    let out = format!(
        "notified: {count} file{}\n",
        if count == 1 { "" } else { "s" }
    );
    if !outside.is_empty() {
        return Err(Error::Config(format!(
            "under no watch root of this store (has its daemon started with these roots?): {}; nothing was recorded",
            outside.join(" ")
        )));
    }
    print(&out)
}

/// `shotrouter files`.
///
/// # Errors
/// No store, or a database error.
pub fn files(store: &Location, paths: &[PathBuf], as_json: bool) -> Result<ExitCode, Error> {
    let store = open(store)?;
    let mut records = Vec::new();
    let mut out = String::new();
    for path in paths {
        let abs = crate::rules::absolute(path);
        let record = store.file(&abs).map_err(runtime)?;
        let sequence = sequence_of(store.as_ref(), &abs)?;
        let _ = writeln!(out, "{}", shell_quote(abs.as_os_str().as_encoded_bytes()));
        match (&record, &sequence) {
            (None, None) => {
                let _ = writeln!(
                    out,
                    "  not known to the store (no rule ran on it, or it arrived while nothing watched)"
                );
            }
            (Some(r), _) => describe_file(&mut out, r),
            (None, Some(_)) => {}
        }
        if let Some((hashes, r)) = &sequence {
            let _ = writeln!(
                out,
                "  a frame of the sequence {}",
                shell_quote(hashes.as_os_str().as_encoded_bytes())
            );
            describe_file(&mut out, r);
        }
        // JSON: the file's own record when there is one, then its sequence's; `null` for a
        // path the store knows nothing of.
        let before = records.len();
        records.extend(record.map(Some));
        records.extend(sequence.map(|(_, r)| Some(r)));
        if records.len() == before {
            records.push(None);
        }
    }
    if as_json {
        return json(&records);
    }
    print(&out)
}

/// What `files` prints of one record: its version, who made it, its jobs and their products.
fn describe_file(out: &mut String, r: &FileRecord) {
    if let Some((_, ino, bytes, mtime)) = r.version {
        let _ = writeln!(
            out,
            "  last seen: inode {ino} size {} modified {}{}",
            size(bytes),
            local_datetime_ns(mtime),
            if r.baseline {
                " (baseline: present at first start, not run)"
            } else {
                ""
            }
        );
    }
    if let Some((rule, job)) = &r.produced_by {
        let _ = writeln!(out, "  made by shotrouter: rule `{rule}`, job {job}");
    }
    if !r.jobs.is_empty() {
        for line in table(&r.jobs, 2).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    for job in &r.jobs {
        if let Some(product) = &job.output {
            let _ = writeln!(
                out,
                "  product of job {}: {}",
                job.id,
                shell_quote(product.as_bytes())
            );
        }
    }
}
