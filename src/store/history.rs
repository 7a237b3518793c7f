//! The operations side of the store: what `status`, `jobs`, `job`, `files`, `retry`, `cancel`
//! and `rerun` read and change. Safe to use while engines run; never kills or deletes anything
//! itself: `cancel` returns the process groups the caller must stop.

use std::path::Path;

use crate::store::RunHandle;

use super::lineage::{Direction, LineageReport, StaleProduct};
use super::{FileRecord, JobDetail, JobId, JobRow, Status, StatusReport, StoreError};

/// Filters of `shotrouter jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this rule.
    pub rule: Option<&'a str>,
    /// Only jobs created at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only jobs older than this one (ids below it): the cursor of a page after the first.
    pub before: Option<JobId>,
}

/// The history of every job, for people and scripts.
pub trait JobHistory {
    /// Counts for `shotrouter status`.
    ///
    /// # Errors
    /// Database errors.
    fn status(&self) -> Result<StatusReport, StoreError>;

    /// Jobs, newest first.
    ///
    /// # Errors
    /// Database errors.
    fn jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRow>, StoreError>;

    /// How many jobs [`JobHistory::jobs`] would list (at most `filter.limit`), without reading
    /// them or explaining why queued ones wait: the dashboard's per-rule counts and charts.
    ///
    /// # Errors
    /// Database errors.
    fn count_jobs(&self, filter: &JobFilter<'_>) -> Result<usize, StoreError>;

    /// Tells the daemon that these files are complete (a farm's post-task, a publish tool):
    /// it routes them at once instead of waiting for its source to notice. Returns, per path,
    /// whether it is under a watch root the daemon registered; records them only when all are
    /// (a typo records nothing).
    ///
    /// # Errors
    /// Database errors.
    fn notify(&mut self, paths: &[std::path::PathBuf]) -> Result<Vec<bool>, StoreError>;

    /// Everything about one job; `None` when there is no such job.
    ///
    /// # Errors
    /// Database errors.
    fn job(&self, id: JobId) -> Result<Option<JobDetail>, StoreError>;

    /// What the store knows of one file (an input, a sequence's `####` path, or a product),
    /// given as an absolute path on this machine; `None` when it knows nothing of it.
    ///
    /// # Errors
    /// Database errors.
    fn file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError>;

    /// The names of every rule that has jobs in the store.
    ///
    /// # Errors
    /// Database errors.
    fn rule_names(&self) -> Result<Vec<String>, StoreError>;

    /// How many jobs each rule has in each status (one grouped count, for metrics); pairs with
    /// no job are left out.
    ///
    /// # Errors
    /// Database errors.
    fn counts_by_rule_and_status(&self) -> Result<Vec<(String, Status, u64)>, StoreError>;

    /// Queues failed or cancelled jobs again (with `failed_of_rule`, also every failed job of
    /// that rule, or of every rule with `Some(None)`); returns the ids queued again.
    ///
    /// # Errors
    /// Database errors.
    fn retry(
        &mut self,
        ids: &[JobId],
        failed_of_rule: Option<Option<&str>>,
    ) -> Result<Vec<JobId>, StoreError>;

    /// Cancels queued, claimed or running jobs; returns each cancelled job with the process
    /// group its running step had, for the caller to stop.
    ///
    /// # Errors
    /// Database errors.
    fn cancel(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Option<RunHandle>)>, StoreError>;

    /// Queues a new job of `rule` for the latest version of every input it ran on (created at
    /// or after `since_ms`), except inputs with one queued or running; returns how many.
    ///
    /// # Errors
    /// Database errors.
    fn rerun(&mut self, rule: &str, since_ms: Option<i64>) -> Result<usize, StoreError>;

    /// What `path` (absolute on this node; a frame finds its sequence) was made from
    /// ([`Direction::Up`]) or what was made from it ([`Direction::Down`]), transitively, at
    /// most `depth` jobs away.
    ///
    /// # Errors
    /// Database errors.
    fn lineage(
        &self,
        path: &Path,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageReport, StoreError>;

    /// The current products whose job read a declared input that has another version now, or
    /// whose rule's work hash changed since.
    ///
    /// # Errors
    /// Database errors.
    fn stale(&self) -> Result<Vec<StaleProduct>, StoreError>;

    /// Queues the stale products' jobs of `rule` again (a new generation of their file's
    /// latest version), except files with an unfinished job of the rule; returns how many.
    ///
    /// # Errors
    /// Database errors.
    fn rerun_stale(&mut self, rule: &str) -> Result<usize, StoreError>;

    /// Gives queued jobs a new priority (`shotrouter bump`): claims take them in that order,
    /// and the watcher holding one sees it at its next poll. Returns each changed job with its
    /// priority; jobs not queued are left out.
    ///
    /// # Errors
    /// Database errors.
    fn bump(
        &mut self,
        ids: &[JobId],
        to: super::control::Bump,
    ) -> Result<Vec<(JobId, i32)>, StoreError>;

    /// Pauses (`true`) or resumes a node or a rule; returns whether that changed anything.
    ///
    /// # Errors
    /// Database errors.
    fn set_paused(
        &mut self,
        target: &super::control::PauseTarget,
        paused: bool,
    ) -> Result<bool, StoreError>;

    /// Lets queued jobs start outside their rule's `window:` (`shotrouter run-now`); the
    /// watcher holding one sees it at its next poll. Returns the jobs changed.
    ///
    /// # Errors
    /// Database errors.
    fn run_now(&mut self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError>;
}
