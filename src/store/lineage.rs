//! What the store keeps of lineage and declared inputs, backend-neutral: a job that waits for
//! its inputs ([`WaitFor`]), what one run used ([`RunUse`]), and the answers
//! of the lineage and staleness queries ([`LineageReport`], [`StaleProduct`]).
//!
//! Tables (both backends): `jobs.waits_for`/`wait_until` (a `waiting` job's inputs, JSON, and
//! its deadline), `jobs.work_hash` and `jobs.programs` (what the last done run ran);
//! `job_inputs (job_id, file_id, ino, size, mtime_ns, hash)`, one row per declared input a
//! job's last done run read, at the version it read, its file a row of `files` like any other
//! (root `''` and an absolute path when it lies outside every root); `rule_defs (name,
//! work_hash, seen_at, windows)`, each rule's current work hash and its `window:`s
//! (`19:00-07:00,12:00-13:00`, empty when none; read by workers) as the watcher last loaded
//! it. A job's
//! matched file is `jobs.file_id` at the job's version; its products are the `outputs` rows
//! with its id. The current version of an input is its `files` row, which the watcher updates
//! when a new version arrives.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::os::version::FileVersion;

use super::JobId;

/// What a job waits for before it may run: its declared inputs that are missing or still being
/// written (absolute paths on the watcher that planned it), and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitFor {
    /// The inputs not there yet.
    #[serde(with = "crate::os::path_text::list")]
    pub inputs: Vec<PathBuf>,
    /// Unix ms after which the job fails, naming the input that never came.
    pub until_ms: i64,
}

impl WaitFor {
    /// As stored in `jobs.waits_for`.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back; `None` for text this build cannot read.
    pub fn from_text(text: &str) -> Option<WaitFor> {
        serde_json::from_str(text).ok()
    }

    /// The job's result while it waits, as `jobs` and `job` show it.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .inputs
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        format!("waiting for {}", names.join(", "))
    }
}

/// One declared input as a run found it before its first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedInput {
    /// Where it is, as the job was planned (the watcher's path; the store names it by root).
    pub path: PathBuf,
    /// The version read.
    pub version: FileVersion,
    /// Its content hash (`xxh64:…`), where the job read the file itself.
    pub hash: Option<String>,
}

/// A program a run's steps ran: the path it resolved to and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedProgram {
    /// The resolved path (`/usr/bin/ffmpeg`), or the name when it resolved to none.
    pub path: String,
    /// The first line of its `-version`/`--version`, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What one successful run used, recorded with its end (`Write::Used`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunUse {
    /// Its declared inputs, at the versions it read.
    pub inputs: Vec<UsedInput>,
    /// The programs its steps ran.
    pub programs: Vec<UsedProgram>,
    /// The rule's work hash when the job was planned.
    pub work_hash: String,
}

/// What a job's successful run used, as `shotrouter job` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RunRecord {
    /// The rule's work hash it ran with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_hash: Option<String>,
    /// The programs its steps ran.
    pub programs: Vec<UsedProgram>,
    /// Its declared inputs at the versions read, and whether each has another version now.
    pub inputs: Vec<InputRead>,
}

/// A declared input a run read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputRead {
    /// The path (lossy UTF-8).
    pub path: String,
    /// The version read.
    pub version: super::StoredVersion,
    /// Whether the file has another version now.
    pub changed: bool,
}

impl RunRecord {
    /// From the `programs` column's JSON and the inputs' rows; `None` when nothing was recorded.
    pub(crate) fn from_parts(
        work_hash: Option<String>,
        programs: Option<&str>,
        inputs: Vec<InputRead>,
    ) -> Option<RunRecord> {
        let programs: Vec<UsedProgram> = programs
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        (work_hash.is_some() || !programs.is_empty() || !inputs.is_empty()).then_some(RunRecord {
            work_hash,
            programs,
            inputs,
        })
    }
}

/// How many jobs away a lineage walk goes unless told otherwise (the CLI's and the API's).
pub const DEFAULT_DEPTH: u32 = 10;

/// Which way a lineage query walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// What a file was made from.
    Up,
    /// What was made from a file.
    Down,
}

/// One step of a lineage walk: a job that made `product` from `input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageEdge {
    /// 1 for the edges that touch the asked path, 2 for the next, ...
    pub depth: u32,
    /// The file the job read (its matched file or sequence, or a declared input).
    pub input: String,
    /// `matched` or `declared`.
    pub role: &'static str,
    /// The version the job's run read.
    pub input_version: Option<super::StoredVersion>,
    /// Whether the input now has another version than the one read (the product is stale).
    pub input_changed: bool,
    /// The job.
    pub job: JobId,
    /// Its rule.
    pub rule: String,
    /// Its node, and its farm run (`slurm:1234_7`) when it ran on the farm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its farm run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub farm_run: Option<String>,
    /// The product.
    pub product: String,
    /// When the job finished, unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// The answer of `shotrouter lineage` and `/api/v1/lineage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageReport {
    /// The path asked about (a frame's sequence when a frame was asked).
    pub path: String,
    /// The direction.
    pub direction: Direction,
    /// The edges found, nearest first.
    pub edges: Vec<LineageEdge>,
    /// Whether the walk stopped at `--depth` with more beyond.
    pub truncated: bool,
}

/// A product whose job's last run used an input that has a newer version now, or was made by
/// a rule definition that has changed since (`shotrouter stale`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleProduct {
    /// The product.
    pub product: String,
    /// The job that made it.
    pub job: JobId,
    /// Its rule.
    pub rule: String,
    /// The inputs that changed since, each with the version used and the current one.
    pub changed_inputs: Vec<String>,
    /// Whether the rule's work hash changed since.
    pub rule_changed: bool,
}
