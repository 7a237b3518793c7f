//! OpenLineage run events (`lineage: {openlineage: URL}` in the rules file, docs/openlineage.md):
//! each attempt of a job is one run of the job named after its rule, with a START when its first
//! step starts and a COMPLETE, FAIL or ABORT when it ends, sent by the node that runs it (watcher
//! or worker: the plan carries the receiver). Each event is built at once, its files stat'd
//! then, and POSTed from a [`Courier`] of its own: a receiver that is down or slow holds up no
//! job and no engine; failed posts are tried again, a full queue drops its oldest.

mod event;
mod run_id;

pub use event::{
    Dataset, ErrorMessage, EventType, Job, PRODUCER, Run, RunEvent, RunFacets, SCHEMA_URL,
    VERSION_FACET,
};

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exec::courier::{Courier, Parcel, post_json};
use crate::exec::plan::PortableLineage;
use crate::exec::runner::{JobSpec, Outcome};

/// One attempt of a job, as the run its events tell of.
#[derive(Debug, Clone)]
pub struct LineageRun {
    target: PortableLineage,
    job: String,
    /// Made with the START, kept until the end.
    run_id: Option<String>,
    /// The matched file (a sequence's `####` path), then each declared input.
    inputs: Vec<PathBuf>,
    /// The product, then the copy or move destination.
    outputs: Vec<PathBuf>,
}

impl LineageRun {
    /// The run of `spec`'s attempt; `None` when its plan sends no OpenLineage events.
    pub fn of(spec: &JobSpec) -> Option<LineageRun> {
        let target = spec.plan.openlineage.clone()?;
        let plan = &spec.plan;
        let inputs = std::iter::once(spec.path.clone())
            .chain(plan.inputs.iter().cloned())
            .collect();
        let outputs = plan
            .output
            .iter()
            .map(|o| o.final_path.clone())
            .chain(plan.transfer.iter().map(|t| t.to.clone()))
            .collect();
        Some(LineageRun {
            target,
            job: spec.rule.clone(),
            run_id: None,
            inputs,
            outputs,
        })
    }

    /// Its id, once its START was sent.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The event of `kind` at `at`, its files as they are now on this host (`datasets`, the
    /// namespace); outputs only on COMPLETE (a failed attempt published nothing).
    fn event(
        &self,
        kind: EventType,
        at: SystemTime,
        datasets: &str,
        error: Option<String>,
    ) -> RunEvent {
        let outputs = match kind {
            EventType::Complete => self
                .outputs
                .iter()
                .map(|p| Dataset::of(datasets, p))
                .collect(),
            _ => Vec::new(),
        };
        RunEvent {
            event_type: kind,
            event_time: rfc3339(at),
            run: Run {
                run_id: self.run_id.clone().unwrap_or_default(),
                facets: RunFacets {
                    error_message: error.map(ErrorMessage::new),
                },
            },
            job: Job {
                namespace: self.target.namespace.clone(),
                name: self.job.clone(),
            },
            inputs: self
                .inputs
                .iter()
                .map(|p| Dataset::of(datasets, p))
                .collect(),
            outputs,
            producer: PRODUCER,
            schema_url: SCHEMA_URL,
        }
    }
}

/// How an attempt ended, as an event type and, when it did not complete, why.
fn end_of(outcome: &Outcome, stopping: bool) -> (EventType, Option<String>) {
    match outcome {
        Outcome::Succeeded { .. } => (EventType::Complete, None),
        Outcome::Failed(failure) => (EventType::Fail, Some(failure.to_string())),
        Outcome::Cancelled if stopping => (
            EventType::Abort,
            Some("interrupted by the node's stop; queued again".into()),
        ),
        Outcome::Cancelled => (EventType::Abort, Some("cancelled".into())),
    }
}

/// `at` as RFC 3339 in UTC.
fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A node's sender of run events; its thread starts with the first event.
pub struct Lineage {
    courier: OnceLock<Courier<Post>>,
    /// The dataset namespace: `file://<this host>`, whose paths the datasets name.
    datasets: String,
}

impl Default for Lineage {
    fn default() -> Self {
        Lineage {
            courier: OnceLock::new(),
            datasets: format!("file://{}", crate::store::sqlite::node_name()),
        }
    }
}

impl Lineage {
    /// Sends the START of `run`, unless it was sent already (a job of several steps reports
    /// each step's start).
    pub fn start(&self, run: &mut LineageRun) {
        if run.run_id.is_none() {
            self.send_start(run, SystemTime::now());
        }
    }

    /// Sends the end of `run`'s attempt, which ran `duration`. When no START was sent (its first
    /// step could not start, or no store recorded its claim, so no start was reported), the
    /// START goes first, dated when the attempt began: every run has both.
    pub fn end(&self, mut run: LineageRun, outcome: &Outcome, duration: Duration, stopping: bool) {
        let now = SystemTime::now();
        if run.run_id.is_none() {
            self.send_start(&mut run, now.checked_sub(duration).unwrap_or(now));
        }
        let (kind, error) = end_of(outcome, stopping);
        let event = run.event(kind, now, &self.datasets, error);
        self.post(&run, &event);
    }

    /// Delivers what is due within `grace`, then stops (see [`Courier::finish`]).
    pub fn finish(self, grace: Duration) {
        if let Some(courier) = self.courier.into_inner() {
            courier.finish(grace);
        }
    }

    fn send_start(&self, run: &mut LineageRun, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        run.run_id = Some(run_id::new_v7(ms));
        let event = run.event(EventType::Start, at, &self.datasets, None);
        self.post(run, &event);
    }

    fn post(&self, run: &LineageRun, event: &RunEvent) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(job = %run.job, error = %e, "cannot write an OpenLineage event");
                return;
            }
        };
        let post = Post {
            url: run.target.url.clone(),
            body,
            about: format!(
                "{:?} job={} run={}",
                event.event_type,
                run.job,
                run.run_id.as_deref().unwrap_or("")
            ),
        };
        self.courier
            .get_or_init(|| Courier::start("openlineage", "lineage event"))
            .send([post]);
    }
}

/// One event for one receiver.
struct Post {
    url: String,
    body: Vec<u8>,
    about: String,
}

impl fmt::Display for Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.about)
    }
}

impl Parcel for Post {
    fn deliver(&self, agent: &ureq::Agent) -> Result<(), String> {
        post_json(agent, &self.url, &self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::copy::{TransferKind, TransferPlan};
    use crate::deliver::publish::OutputPaths;
    use crate::exec::plan::JobPlan;
    use crate::exec::runner::Failure;
    use std::path::Path;

    fn spec(dir: &Path, lineage: bool) -> JobSpec {
        JobSpec {
            id: "7".into(),
            rule: "review".into(),
            path: dir.join("a.exr"),
            plan: JobPlan {
                inputs: vec![dir.join("show.cube")],
                output: Some(OutputPaths {
                    final_path: dir.join("a.mov"),
                    temp_path: dir.join(".a.sr7.mov"),
                    ale: None,
                }),
                transfer: Some(TransferPlan {
                    kind: TransferKind::Copy,
                    to: dir.join("san/a.mov"),
                    hashes: Vec::new(),
                    mhl_root: None,
                }),
                openlineage: lineage.then(|| PortableLineage {
                    url: "http://127.0.0.1:9/api/v1/lineage".into(),
                    namespace: "shotrouter://show".into(),
                }),
                ..JobPlan::default()
            },
            allowed_roots: Vec::new(),
            log_path: dir.join("7.log"),
            attempt: 1,
            claim: None,
        }
    }

    fn names(datasets: &[Dataset]) -> Vec<&str> {
        datasets.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn a_plan_without_a_receiver_has_no_run() {
        assert!(LineageRun::of(&spec(Path::new("/s"), false)).is_none());
    }

    #[test]
    fn the_run_reads_the_matched_file_and_declared_inputs_and_completes_with_its_products() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("a.exr"), b"frame").expect("input");
        std::fs::write(d.join("show.cube"), b"lut").expect("lut");
        std::fs::write(d.join("a.mov"), b"movie").expect("product");
        let mut run = LineageRun::of(&spec(d, true)).expect("a run");
        run.run_id = Some("0193a3f0-7b1c-7000-8000-000000000001".into());
        let at = UNIX_EPOCH + Duration::from_millis(1_765_000_000_250);
        let start = run.event(EventType::Start, at, "file://n1", None);
        assert_eq!(start.event_time, "2025-12-06T05:46:40.25Z");
        assert_eq!(start.job.name, "review");
        assert_eq!(start.job.namespace, "shotrouter://show");
        let a = d.join("a.exr").to_string_lossy().into_owned();
        let lut = d.join("show.cube").to_string_lossy().into_owned();
        assert_eq!(names(&start.inputs), [a.as_str(), lut.as_str()]);
        assert!(start.inputs.iter().all(|i| i.facets.version.is_some()));
        assert!(start.outputs.is_empty(), "nothing is made yet");
        let done = run.event(EventType::Complete, at, "file://n1", None);
        assert_eq!(done.run.run_id, start.run.run_id);
        let movie = d.join("a.mov").to_string_lossy().into_owned();
        let copy = d.join("san/a.mov").to_string_lossy().into_owned();
        assert_eq!(names(&done.outputs), [movie.as_str(), copy.as_str()]);
        assert_eq!(
            done.outputs[0].facets.version.as_ref().map(|v| v.size),
            Some(5)
        );
        assert!(
            done.outputs[1].facets.version.is_none(),
            "a destination not there has no version"
        );
        let failed = run.event(EventType::Fail, at, "file://n1", Some("why".into()));
        assert!(
            failed.outputs.is_empty(),
            "a failed attempt published nothing"
        );
    }

    #[test]
    fn each_outcome_is_its_spec_event() {
        let failed = Outcome::Failed(Failure::Exit {
            step: 1,
            status: "exited with status 1".into(),
        });
        assert_eq!(
            end_of(&failed, false),
            (
                EventType::Fail,
                Some("step 1 exited with status 1".to_string())
            )
        );
        let done = Outcome::Succeeded { published: None };
        assert_eq!(end_of(&done, false), (EventType::Complete, None));
        assert_eq!(end_of(&Outcome::Cancelled, false).0, EventType::Abort);
        assert!(
            end_of(&Outcome::Cancelled, true)
                .1
                .is_some_and(|why| why.contains("stop"))
        );
    }

    #[test]
    fn an_attempt_keeps_one_run_id_from_start_to_end() {
        let lineage = Lineage::default();
        let mut run = LineageRun::of(&spec(Path::new("/nowhere"), true)).expect("a run");
        lineage.start(&mut run);
        let first = run.run_id().map(str::to_string).expect("an id");
        lineage.start(&mut run);
        assert_eq!(
            run.run_id(),
            Some(first.as_str()),
            "a later step sends no START"
        );
        assert_eq!(&first[14..15], "7");
        lineage.finish(Duration::ZERO);
    }
}
