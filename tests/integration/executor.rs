//! The contract every executor keeps (`shotrouter::exec::executor::Executor`), written against
//! `dyn Executor` and a [`Bench`] only, with real processes: a job that succeeds, fails, times
//! out, is cancelled mid-run, is handed back after its node was SIGKILLed, and publishes nothing
//! when its claim is stale. [`Local`] runs them on the local process-group executor; a farm
//! executor adds a bench of its own and runs the same cases.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use shotrouter::deliver::publish::OutputPaths;
use shotrouter::exec::executor::{Executor, Finished, Reattach, Report};
use shotrouter::exec::local::{LocalExecutor, QueueFactory};
use shotrouter::exec::plan::JobPlan;
use shotrouter::exec::runner::{Failure, JobSpec, Outcome};
use shotrouter::exec::slurm::SlurmExecutor;
use shotrouter::exec::slurm::client::Client;
use shotrouter::os::version::FileVersion;
use shotrouter::rules::farm::SlurmRequest;
use shotrouter::store::RunHandle;
use shotrouter::store::queue::{Answer, Claim, JobQueue, NewJob, RootedPath, Write};
use shotrouter::store::sqlite::SqliteStore;

use crate::daemon::Daemon;
use crate::env::{Env, wait_until};

/// What the cases need of an executor under test.
trait Bench {
    /// A fresh executor with `slots` slots, reporting to `reports`; attempts check their claim
    /// in the store `store` opens before they publish.
    fn executor(
        &self,
        slots: usize,
        store: Option<QueueFactory>,
        reports: Sender<Report>,
    ) -> Box<dyn Executor>;
    /// Whether nothing of the run is alive any more.
    fn run_is_over(&self, run: &RunHandle) -> bool;
    /// Rule keys that send a rule's jobs to this executor (none for the local one).
    fn rule_keys(&self) -> &'static str;
    /// Top-level keys the rules file needs for it (none for the local one).
    fn file_keys(&self, _dir: &Path) -> String {
        String::new()
    }
    /// Environment a daemon needs to reach it.
    fn daemon_vars(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Makes a planned attempt one this executor runs (a farm request).
    fn adapt(&self, _spec: &mut JobSpec) {}
    /// Longest a case waits for a start or an end.
    fn limit(&self) -> Duration {
        LIMIT
    }
    /// Stops a run a case leaves going (one the executor follows).
    fn clean_up(&self, _run: &RunHandle) {}
}

/// The local executor: process groups on this machine.
struct Local;

impl Bench for Local {
    fn executor(
        &self,
        slots: usize,
        store: Option<QueueFactory>,
        reports: Sender<Report>,
    ) -> Box<dyn Executor> {
        Box::new(LocalExecutor::new(slots, Arc::default(), store, reports))
    }

    fn run_is_over(&self, run: &RunHandle) -> bool {
        run.group().is_some_and(|g| g.live_members().is_empty())
    }

    fn rule_keys(&self) -> &'static str {
        ""
    }
}

const LIMIT: Duration = Duration::from_secs(30);

fn spec(dir: &Path, id: i64, steps: &[&[&str]]) -> JobSpec {
    JobSpec {
        id: id.to_string(),
        rule: "contract".into(),
        path: dir.join("input.dat"),
        plan: JobPlan {
            steps: steps
                .iter()
                .map(|argv| argv.iter().map(OsString::from).collect())
                .collect(),
            ..JobPlan::default()
        },
        allowed_roots: vec![dir.to_path_buf()],
        log_path: dir.join(format!("job-{id}.log")),
        attempt: 1,
        claim: Some(Claim {
            id,
            token: 1,
            attempt: 1,
        }),
    }
}

/// The reports of one attempt up to its end: the run it started as, and how it ended.
fn follow(reports: &Receiver<Report>, limit: Duration) -> (Option<RunHandle>, Finished) {
    let deadline = Instant::now() + limit;
    let mut run = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(Report::Started { run: started, .. }) => run = run.or(started),
            Ok(Report::Progress { .. }) => {}
            Ok(Report::Finished(finished)) => return (run, *finished),
            Err(e) => panic!("no end within {limit:?}: {e}"),
        }
    }
}

/// Waits for the attempt's start; answers its attempt number and run.
fn started(reports: &Receiver<Report>) -> (u64, RunHandle) {
    match reports.recv_timeout(LIMIT) {
        Ok(Report::Started {
            job,
            run: Some(run),
            ..
        }) => (job, run),
        other => panic!("expected a start with a run, got {other:?}"),
    }
}

fn succeeds(bench: &dyn Bench) {
    let dir = tempfile::tempdir().expect("temp");
    let (tx, rx) = unbounded();
    let executor = bench.executor(1, None, tx);
    let marker = dir.path().join("ran");
    // Past 1 ms (`exec::step::QUICK_STEP`): a step over sooner may go unreported, its end
    // saying all there is.
    let mut job = spec(
        dir.path(),
        1,
        &[&[
            "sh",
            "-c",
            "touch \"$1\" && sleep 0.05",
            "sh",
            marker.to_str().expect("utf-8"),
        ]],
    );
    bench.adapt(&mut job);
    executor.submit(job);
    let (run, finished) = follow(&rx, bench.limit());
    assert_eq!(finished.outcome, Outcome::Succeeded { published: None });
    assert!(run.is_some(), "a run past 1 ms is reported before the end");
    assert!(marker.exists(), "the command ran");
    executor.shutdown();
}

fn fails_with_its_status_and_log(bench: &dyn Bench) {
    let dir = tempfile::tempdir().expect("temp");
    let (tx, rx) = unbounded();
    let executor = bench.executor(1, None, tx);
    let mut job = spec(
        dir.path(),
        2,
        &[&["sh", "-c", "echo 'no such lut' >&2; exit 3"]],
    );
    bench.adapt(&mut job);
    executor.submit(job);
    let (_, finished) = follow(&rx, bench.limit());
    match &finished.outcome {
        Outcome::Failed(Failure::Exit { step: 1, status }) => {
            assert!(status.contains('3'), "{status}");
        }
        other => panic!("expected a failed exit, got {other:?}"),
    }
    let log = std::fs::read_to_string(&finished.spec.log_path).expect("job log");
    assert!(
        log.contains("no such lut"),
        "the job's stderr is in its log: {log}"
    );
    executor.shutdown();
}

fn times_out_and_leaves_nothing_running(bench: &dyn Bench) {
    let dir = tempfile::tempdir().expect("temp");
    let (tx, rx) = unbounded();
    let executor = bench.executor(1, None, tx);
    let mut job = spec(dir.path(), 3, &[&["sleep", "300"]]);
    job.plan.timeout = Some(Duration::from_millis(300));
    bench.adapt(&mut job);
    executor.submit(job);
    let (run, finished) = follow(&rx, bench.limit());
    assert!(
        matches!(
            finished.outcome,
            Outcome::Failed(Failure::TimedOut { step: 1, .. })
        ),
        "{:?}",
        finished.outcome
    );
    let run = run.expect("started");
    wait_until("the timed-out run to be gone", bench.limit(), || {
        bench.run_is_over(&run)
    });
    executor.shutdown();
}

fn is_cancelled_mid_run(bench: &dyn Bench) {
    let dir = tempfile::tempdir().expect("temp");
    let (tx, rx) = unbounded();
    let executor = bench.executor(1, None, tx);
    let mut job = spec(dir.path(), 4, &[&["sleep", "300"]]);
    bench.adapt(&mut job);
    executor.submit(job);
    let (attempt, run) = started(&rx);
    assert!(!bench.run_is_over(&run), "running");
    executor.cancel(attempt);
    let (_, finished) = follow(&rx, bench.limit());
    assert_eq!(finished.outcome, Outcome::Cancelled);
    wait_until("the cancelled run to be gone", bench.limit(), || {
        bench.run_is_over(&run)
    });
    executor.shutdown();
}

/// A node runs a job, is SIGKILLed mid-run; its run, as the store recorded it, is handed to a
/// fresh executor on the restarted node, which leaves nothing of it running.
fn is_handed_back_after_its_node_is_killed(bench: &dyn Bench) {
    let env = Env::new();
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\n{}rules:\n  - name: long\n    match: \"*.dat\"\n{}    run: [sleep, \"300\"]\n",
            bench.file_keys(env.root()),
            bench.rule_keys()
        ),
    );
    std::fs::create_dir_all(env.path("shots")).expect("mkdir");
    let vars = bench.daemon_vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start(&env, &[], &vars);
    env.write("shots/a.dat", "frame");
    let state = env.path(".shotrouter");
    let node = shotrouter::store::sqlite::node_name();
    wait_until("the job's run to be recorded", LIMIT, || {
        let out = env.run(&["jobs", "--json", "--state", state.to_str().expect("utf-8")]);
        String::from_utf8_lossy(&out.stdout).contains("\"running\"")
    });
    daemon.kill_hard();
    let mut store = SqliteStore::open(&state, &node).expect("the store");
    let abandoned = store.recover().expect("recover");
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    let run = abandoned[0].run.clone().expect("the run was recorded");
    assert!(!bench.run_is_over(&run), "the run outlived its node");
    let (tx, _rx) = unbounded();
    let executor = bench.executor(1, None, tx);
    match executor.reattach(&abandoned[0]) {
        Reattach::Stopped { processes } => {
            assert!(processes >= 1, "the orphaned run was stopped");
            wait_until("the orphaned run to be gone", bench.limit(), || {
                bench.run_is_over(&run)
            });
        }
        Reattach::Following => {
            // A farm task goes on, to be adopted when the job is claimed again.
            assert!(!bench.run_is_over(&run), "the followed run goes on");
            bench.clean_up(&run);
        }
        Reattach::NotMine => panic!("the executor disowned its own run {run}"),
    }
    executor.shutdown();
}

/// An attempt whose claim was superseded (its node's lease lapsed, another took the job) runs
/// but publishes nothing: the product stays out of place.
fn publishes_nothing_for_a_stale_claim(bench: &dyn Bench) {
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let input = dir.path().join("input.dat");
    std::fs::write(&input, "frame").expect("input");
    let mut a = SqliteStore::open(&state, "a").expect("store");
    a.register_roots(&[("shots".into(), dir.path().to_path_buf())])
        .expect("roots");
    let job = NewJob {
        rule: "contract".into(),
        rule_hash: "h".into(),
        input: RootedPath {
            root: "shots".into(),
            rel: PathBuf::from("input.dat"),
        },
        version: FileVersion::of(&input).expect("version"),
        steps: Vec::new(),
        output: None,
        unplannable: None,
        skipped: None,
        follow_moves: false,
        baseline_runs: false,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan: String::new(),
        waiting: None,
    };
    let answers = a
        .commit(&[Write::Enqueue {
            job: Box::new(job),
            claim: true,
        }])
        .expect("enqueue");
    let Some(Answer::Enqueued {
        claim: Some(old), ..
    }) = answers.first().cloned()
    else {
        panic!("claimed at enqueue: {answers:?}");
    };
    let mut b = SqliteStore::open(&state, "b").expect("store");
    assert_eq!(b.expire(0).expect("expire").len(), 1, "a's claim lapses");
    let answers = b.commit(&[Write::Claim { id: old.id }]).expect("claim");
    assert!(matches!(answers[..], [Answer::Claimed(_)]), "{answers:?}");

    let (tx, rx) = unbounded();
    let opener: QueueFactory = {
        let state = state.clone();
        Arc::new(move || {
            SqliteStore::open_for_worker(&state, "a").map(|s| Box::new(s) as Box<dyn JobQueue>)
        })
    };
    let executor = bench.executor(1, Some(opener), tx);
    let product = dir.path().join("out.mov");
    let temp = dir.path().join(".out.planned.mov");
    let mut attempt = spec(
        dir.path(),
        old.id,
        &[&[
            "cp",
            input.to_str().expect("utf-8"),
            temp.to_str().expect("utf-8"),
        ]],
    );
    attempt.claim = Some(old);
    attempt.plan.output = Some(OutputPaths {
        final_path: product.clone(),
        temp_path: temp,
        ale: None,
    });
    bench.adapt(&mut attempt);
    executor.submit(attempt);
    let (_, finished) = follow(&rx, bench.limit());
    assert!(
        !matches!(finished.outcome, Outcome::Succeeded { .. }),
        "{:?}",
        finished.outcome
    );
    assert!(!product.exists(), "nothing published for a stale claim");
    executor.shutdown();
}

/// Makes one `#[test]` per contract case for the bench `$bench`.
macro_rules! executor_contract {
    ($module:ident, $bench:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn a_job_that_succeeds_reports_its_run_then_its_end() {
                succeeds(&$bench);
            }
            #[test]
            fn a_job_that_fails_is_recorded_with_its_status_and_log() {
                fails_with_its_status_and_log(&$bench);
            }
            #[test]
            fn a_job_that_times_out_leaves_nothing_running() {
                times_out_and_leaves_nothing_running(&$bench);
            }
            #[test]
            fn a_job_cancelled_mid_run_ends_cancelled_and_leaves_nothing_running() {
                is_cancelled_mid_run(&$bench);
            }
            #[test]
            fn a_run_whose_node_was_sigkilled_is_handed_back() {
                is_handed_back_after_its_node_is_killed(&$bench);
            }
            #[test]
            fn an_attempt_with_a_stale_claim_publishes_nothing() {
                publishes_nothing_for_a_stale_claim(&$bench);
            }
        }
    };
}

executor_contract!(local, Local);

/// A step over within 1 ms is not reported started (its end says all there is), but a job
/// whose steps leave a product is reported running before its delivery begins, quick steps or
/// not: a verify or a copy to the SAN may take long, and until then the job would look claimed
/// and not started (no cancel button, a false `stuck`). Twenty jobs, so that some steps are
/// quick even on a busy machine.
#[test]
fn a_job_with_a_product_is_reported_running_before_its_delivery() {
    let dir = tempfile::tempdir().expect("temp");
    let input = dir.path().join("input.dat");
    std::fs::write(&input, "frame").expect("input");
    let (tx, rx) = unbounded();
    let executor = Local.executor(1, None, tx);
    for id in 1..=20 {
        let temp = dir.path().join(format!(".out{id}.planned.mov"));
        let mut job = spec(
            dir.path(),
            id,
            &[&[
                "cp",
                input.to_str().expect("utf-8"),
                temp.to_str().expect("utf-8"),
            ]],
        );
        job.plan.output = Some(OutputPaths {
            final_path: dir.path().join(format!("out{id}.mov")),
            temp_path: temp,
            ale: None,
        });
        executor.submit(job);
    }
    let deadline = Instant::now() + LIMIT;
    let mut started = std::collections::HashSet::new();
    let mut ended = 0;
    while ended < 20 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Report::Started { claim, .. }) => {
                started.insert(claim.id);
            }
            Ok(Report::Progress { .. }) => {}
            Ok(Report::Finished(finished)) => {
                assert!(
                    matches!(finished.outcome, Outcome::Succeeded { .. }),
                    "{:?}",
                    finished.outcome
                );
                let id = finished.spec.claim.expect("claimed").id;
                assert!(
                    started.contains(&id),
                    "job {id} reported running before its end"
                );
                ended += 1;
            }
            Err(e) => panic!("not every end within {LIMIT:?}: {e}"),
        }
    }
    assert_eq!(
        std::fs::read(dir.path().join("out20.mov")).expect("published"),
        b"frame"
    );
    executor.shutdown();
}

/// The Slurm executor, on a real one-node cluster of its own.
struct Slurm {
    cluster: crate::helpers::slurm::Cluster,
}

impl Slurm {
    /// A bench with a running cluster; `None` (only with `SHOTROUTER_ALLOW_SKIP=1`) when
    /// Slurm is not installed.
    fn start() -> Option<Slurm> {
        crate::helpers::slurm::Cluster::start().map(|cluster| Slurm { cluster })
    }
}

impl Bench for Slurm {
    fn executor(
        &self,
        _slots: usize,
        store: Option<QueueFactory>,
        reports: Sender<Report>,
    ) -> Box<dyn Executor> {
        Box::new(SlurmExecutor::new(
            Client::with_conf(self.cluster.conf()),
            Arc::default(),
            store,
            reports,
        ))
    }

    fn run_is_over(&self, run: &RunHandle) -> bool {
        let RunHandle::Remote { id, .. } = run else {
            return true;
        };
        let id = id.split('#').next().unwrap_or_default();
        let array = id.split('_').next().unwrap_or_default();
        let out = self
            .cluster
            .command("squeue")
            .args(["-r", "--noheader", "--states=all", "--format=%F_%K|%T"])
            .arg(format!("--jobs={array}"))
            .output()
            .expect("squeue");
        let text = String::from_utf8_lossy(&out.stdout);
        let state = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{id}|")).map(str::to_string));
        !matches!(
            state.as_deref(),
            Some("PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING" | "SUSPENDED")
        )
    }

    fn rule_keys(&self) -> &'static str {
        "    executor: slurm\n"
    }

    fn file_keys(&self, dir: &Path) -> String {
        format!(
            "slurm: {{spool: {}, poll: 300ms}}\n",
            dir.join("spool").display()
        )
    }

    fn daemon_vars(&self) -> Vec<(&'static str, String)> {
        vec![(
            "SLURM_CONF",
            self.cluster.conf().to_str().expect("utf-8").to_string(),
        )]
    }

    fn adapt(&self, spec: &mut JobSpec) {
        let spool = spec.allowed_roots[0].join("spool");
        spec.plan.slurm = Some(SlurmRequest {
            // Slurm's shortest limit is a minute; a planned timeout becomes one.
            time_minutes: spec.plan.timeout.map(|_| 1),
            spool,
            poll_ms: 300,
            ..SlurmRequest::default()
        });
    }

    fn limit(&self) -> Duration {
        // A task past its one-minute limit is ended by Slurm's own timer.
        Duration::from_secs(240)
    }

    fn clean_up(&self, run: &RunHandle) {
        if let RunHandle::Remote { id, .. } = run {
            let task = id.split('#').next().unwrap_or_default();
            let _ = self.cluster.command("scancel").arg(task).status();
        }
    }
}

/// The Slurm bench, or a skipped case (only with `SHOTROUTER_ALLOW_SKIP=1`).
macro_rules! slurm_or_skip {
    () => {
        match Slurm::start() {
            Some(bench) => bench,
            None => return,
        }
    };
}

mod slurm {
    use super::*;
    #[test]
    fn a_job_that_succeeds_reports_its_run_then_its_end() {
        succeeds(&slurm_or_skip!());
    }
    #[test]
    fn a_job_that_fails_is_recorded_with_its_status_and_log() {
        fails_with_its_status_and_log(&slurm_or_skip!());
    }
    #[test]
    fn a_job_that_times_out_leaves_nothing_running() {
        times_out_and_leaves_nothing_running(&slurm_or_skip!());
    }
    #[test]
    fn a_job_cancelled_mid_run_ends_cancelled_and_leaves_nothing_running() {
        is_cancelled_mid_run(&slurm_or_skip!());
    }
    #[test]
    fn a_run_whose_node_was_sigkilled_is_handed_back() {
        is_handed_back_after_its_node_is_killed(&slurm_or_skip!());
    }
    #[test]
    fn an_attempt_with_a_stale_claim_publishes_nothing() {
        publishes_nothing_for_a_stale_claim(&slurm_or_skip!());
    }
}
