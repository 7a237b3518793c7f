//! The contract every store backend keeps, as test cases written only against `dyn JobQueue`,
//! `dyn JobHistory` and `dyn CutStore`. A backend instantiates all of them with [`contract_tests!`] and a
//! [`Backend`] that opens several handles (each a node, or the CLI) on one fresh store. The
//! cases use no clock but the store's, no sleeps, and real files only in the backend's scratch.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::JobId;
use super::history::JobHistory;
use super::queue::{Answer, Claim, Delivered, Ending, JobQueue, NewJob, RootedPath, Write};
use crate::os::version::FileVersion;

mod claims;
mod cluster;
mod control;
mod cuts;
mod history;
mod lineage;
mod published;

pub(crate) use claims::*;
pub(crate) use cluster::*;
pub(crate) use control::*;
pub(crate) use cuts::*;
pub(crate) use history::*;
pub(crate) use lineage::*;
pub(crate) use published::*;

/// One fresh, empty store of the backend under test, with as many handles as a case asks for.
pub(crate) trait Backend {
    /// A queue handle on this store for node `node` (a second call is another connection).
    fn queue(&self, node: &str) -> Box<dyn JobQueue>;
    /// A history handle on this store, as the operations CLI opens it.
    fn history(&self) -> Box<dyn JobHistory>;
    /// A cuts handle on this store, as `shotrouter cut` opens it (the store exists).
    fn cuts(&self) -> Box<dyn super::cuts::CutStore>;
    /// A local folder for the files a case makes (products, their versions).
    fn scratch(&self) -> &Path;
}

/// Makes one `#[test]` per contract case for the backend that `$backend` builds.
macro_rules! contract_tests {
    ($backend:expr) => {
        $crate::store::contract::contract_tests!($backend;
            enqueue_is_idempotent,
            claim_comes_before_running,
            a_stale_token_is_refused,
            a_cancel_while_claimed_stops_the_attempt,
            a_runs_handle_comes_back_to_stop_it,
            a_newer_version_supersedes_unfinished_jobs,
            a_new_record_and_a_rename_over_one_supersede,
            a_finish_without_a_start_records_the_end,
            retry_and_interruption_queue_again,
            an_interrupted_attempt_is_not_counted,
            the_cursor_sees_what_others_queued,
            recovery_takes_only_this_nodes_claims,
            expiry_spares_nodes_with_a_fresh_heartbeat,
            racing_claims_grant_each_job_once,
            replan_and_drop_touch_only_waiting_jobs,
            baseline_and_catch_up,
            producer_knows_published_versions,
            history_reports_and_filters,
            history_finds_files_by_absolute_path,
            a_renamed_file_is_followed_not_run_again,
            notices_reach_the_daemon_once,
            rerun_adds_a_generation,
            claim_next_keeps_tags_roots_and_concurrency,
            a_declined_job_waits_and_keeps_its_count,
            lost_claims_name_cancelled_and_taken_over_jobs,
            nodes_report_their_role_and_jobs,
            a_saturated_backlog_starves_nothing_behind_it,
            claims_a_node_does_not_hold_are_released,
            a_replanned_job_carries_its_new_plan,
            the_argv_a_claim_ran_is_shown_beside_the_planned_one,
            only_the_same_plan_keeps_a_published_product,
            a_delivery_is_recorded_until_the_next_product,
            stuck_reads_due_jobs_of_its_rules_under_its_own_roots,
            cut_revisions_read_back_in_order,
            a_racing_cut_import_is_refused,
            a_skipped_job_is_recorded_and_never_runs,
            waiting_jobs_are_released_or_given_up,
            used_inputs_and_their_new_versions,
            used_and_its_end_in_one_commit,
            lineage_walks_up_and_down,
            stale_products_and_their_reruns,
            claims_follow_priority_and_bumps,
            pauses_hold_claims_until_resumed,
            run_now_marks_queued_jobs_for_the_watcher,
            jobs_no_live_node_can_take_are_listed,
            held_jobs_say_why_and_status_counts_windows,
            closed_windows_hold_claims_but_run_now,
            claim_pages_keep_priority_order_past_jobs_not_taken,
        );
    };
    ($backend:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let backend = $backend;
                $crate::store::contract::$case(&backend);
            }
        )+
    };
}
pub(crate) use contract_tests;

fn version(ino: u64, size: u64) -> FileVersion {
    FileVersion {
        dev: 1,
        ino,
        size,
        mtime_ns: 1_767_323_045_123_456_789,
    }
}

fn at(rel: &str) -> RootedPath {
    RootedPath {
        root: "shots".into(),
        rel: PathBuf::from(rel),
    }
}

fn new_job(rule: &str, rel: &str, v: FileVersion) -> NewJob {
    NewJob {
        rule: rule.into(),
        rule_hash: "h1".into(),
        input: at(rel),
        version: v,
        steps: vec![vec![
            OsString::from("cp"),
            OsString::from_vec(b"a b\xff.tif".to_vec()),
        ]],
        output: None,
        unplannable: None,
        skipped: None,
        follow_moves: true,
        baseline_runs: false,
        tags: Vec::new(),
        concurrency: None,
        priority: 0,
        plan: String::new(),
        waiting: None,
    }
}

fn enqueue(rule: &str, rel: &str, v: FileVersion, claim: bool) -> Write {
    Write::Enqueue {
        job: Box::new(new_job(rule, rel, v)),
        claim,
    }
}

fn one(q: &mut dyn JobQueue, write: Write) -> Answer {
    let mut answers = q.commit(&[write]).expect("commit");
    assert_eq!(answers.len(), 1);
    answers.remove(0)
}

fn enqueued(answer: Answer) -> (JobId, Option<Claim>) {
    match answer {
        Answer::Enqueued { id, claim, .. } => (id, claim),
        other => panic!("expected Enqueued, got {other:?}"),
    }
}

/// Enqueues and claims in one write, as an engine with a free slot does.
fn claimed(q: &mut dyn JobQueue, rel: &str, v: FileVersion) -> Claim {
    let (_, claim) = enqueued(one(q, enqueue("review", rel, v, true)));
    claim.expect("claim granted")
}

fn finish(q: &mut dyn JobQueue, claim: Claim, ending: Ending) -> Answer {
    one(q, Write::Finish { claim, ending })
}

fn status_of(h: &dyn JobHistory, id: JobId) -> String {
    h.job(id).expect("read").expect("exists").row.status
}

fn queued_ids(q: &dyn JobQueue, cursor: i64) -> Vec<JobId> {
    let jobs = q.queued_since(cursor).expect("queued");
    jobs.iter().map(|j| j.id).collect()
}
/// Same (rule, input, version) twice, in one commit and across commits: one job.
pub(crate) fn enqueue_is_idempotent(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let answers = q
        .commit(&[
            enqueue("review", "a.tif", version(7, 10), false),
            enqueue("review", "a.tif", version(7, 10), false),
        ])
        .expect("commit");
    let (id, claim) = enqueued(answers[0].clone());
    assert_eq!((answers[1].clone(), claim), (Answer::Duplicate, None));
    assert_eq!(
        one(q, enqueue("review", "a.tif", version(7, 10), true)),
        Answer::Duplicate,
        "across commits, and no claim is granted for a duplicate"
    );
    let other_device = FileVersion {
        dev: 99,
        ..version(7, 10)
    };
    assert_eq!(
        one(q, enqueue("review", "a.tif", other_device, false)),
        Answer::Duplicate,
        "the device is no part of a version"
    );
    let (newer, _) = enqueued(one(q, enqueue("review", "a.tif", version(7, 11), false)));
    let (other_rule, _) = enqueued(one(q, enqueue("avid", "a.tif", version(7, 10), false)));
    let mut ids = vec![id, newer, other_rule];
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        queued_ids(q, -1),
        [newer, other_rule],
        "the newer version superseded the first"
    );
}

/// Baseline files are known and not run; new, changed and failed versions are caught up.
pub(crate) fn baseline_and_catch_up(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let files = vec![
        (at("old.tif"), version(5, 10)),
        (at("f.tif"), version(6, 10)),
    ];
    assert_eq!(one(q, Write::Baseline { files }), Answer::Ok);
    let wants = |q: &mut dyn JobQueue, rel: &str, v| q.wants_catch_up("review", &at(rel), v);
    assert!(
        !wants(q, "old.tif", version(5, 10)).expect("q"),
        "baseline, unchanged"
    );
    assert!(
        wants(q, "old.tif", version(5, 11)).expect("q"),
        "changed while down"
    );
    assert!(wants(q, "old.tif", version(4, 10)).expect("q"), "replaced");
    assert!(
        wants(q, "new.tif", version(1, 10)).expect("q"),
        "arrived while down"
    );
    assert_eq!(
        one(q, enqueue("review", "f.tif", version(6, 10), true)),
        Answer::Duplicate,
        "an event for a baseline version (a rescan) runs nothing"
    );
    let mut job = new_job("review", "f.tif", version(6, 10));
    job.baseline_runs = true;
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: true,
    };
    let (_, claim) = enqueued(one(q, write));
    let claim = claim.expect("`watch --once` runs the baseline");
    let failed = Ending::Failed {
        reason: "exited with status 1".into(),
    };
    assert_eq!(finish(q, claim, failed), Answer::Ok);
    assert!(
        wants(q, "f.tif", version(6, 10)).expect("q"),
        "its last job failed"
    );
    assert!(
        !q.wants_catch_up("avid", &at("f.tif"), version(6, 10))
            .expect("q"),
        "another rule's failure"
    );
    assert_eq!(
        one(q, enqueue("review", "f.tif", version(6, 10), false)),
        Answer::Duplicate,
        "a failed version is retried by the CLI, not by a fresh event"
    );
}

/// `producer` names the rule that published exactly this version of a product.
pub(crate) fn producer_knows_published_versions(b: &dyn Backend) {
    let mut q = b.queue("a");
    q.register_roots(&[("shots".into(), b.scratch().join("shots"))])
        .expect("roots");
    let claim = claimed(&mut *q, "a.tif", version(7, 10));
    let inside = b.scratch().join("shots/review/a.mov");
    let outside = b.scratch().join("san/a.mov");
    let v = version(40, 100);
    q.publishing(claim, "review", &inside, v, Delivered::Product)
        .expect("inside a root");
    q.publishing(claim, "review", &outside, v, Delivered::Product)
        .expect("outside");
    assert_eq!(
        q.producer(&inside, v).expect("q").as_deref(),
        Some("review")
    );
    assert_eq!(
        q.producer(&outside, v).expect("q").as_deref(),
        Some("review")
    );
    assert_eq!(q.producer(&inside, version(41, 100)).expect("q"), None);
    assert_eq!(q.producer(&b.scratch().join("x.mov"), v).expect("q"), None);
    let h = b.history();
    let record = h.file(&inside).expect("q").expect("known as a product");
    assert_eq!(record.produced_by, Some(("review".into(), claim.id)));
}
