//! The contract every store backend keeps, as test cases written only against `dyn JobQueue`
//! and `dyn JobHistory`. A backend instantiates all of them with [`contract_tests!`] and a
//! [`Backend`] that opens several handles (each a node, or the CLI) on one fresh store. The
//! cases use no clock but the store's, no sleeps, and real files only in the backend's scratch.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::history::{JobFilter, JobHistory};
use super::queue::{Answer, Claim, Ending, JobQueue, NewJob, RootedPath, Write};
use super::{JobId, Status, StoreError};
use crate::os::version::FileVersion;

/// One fresh, empty store of the backend under test, with as many handles as a case asks for.
pub(crate) trait Backend {
    /// A queue handle on this store for node `node` (a second call is another connection).
    fn queue(&self, node: &str) -> Box<dyn JobQueue>;
    /// A history handle on this store, as the operations CLI opens it.
    fn history(&self) -> Box<dyn JobHistory>;
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
            a_finish_without_a_start_records_the_end,
            retry_and_interruption_queue_again,
            the_cursor_sees_what_others_queued,
            recovery_takes_only_this_nodes_claims,
            expiry_spares_nodes_with_a_fresh_heartbeat,
            baseline_and_catch_up,
            producer_knows_published_versions,
            history_reports_and_filters,
            history_finds_files_by_absolute_path,
            rerun_adds_a_generation,
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
        Answer::Enqueued { id, claim } => (id, claim),
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
    assert_eq!(queued_ids(q, -1), [id, newer, other_rule]);
}

/// A queued job is claimed once, with token 1 and attempt 1; a second claim is refused.
pub(crate) fn claim_comes_before_running(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let (id, _) = enqueued(one(q, enqueue("review", "a.tif", version(7, 10), false)));
    let claim = Claim {
        id,
        token: 1,
        attempt: 1,
    };
    assert_eq!(one(q, Write::Claim { id }), Answer::Claimed(claim));
    assert_eq!(one(q, Write::Claim { id }), Answer::NotClaimable);
    assert_eq!(one(q, Write::Claim { id: id + 1000 }), Answer::NotClaimable);
    let h = b.history();
    assert_eq!(status_of(&*h, id), "claimed");
    assert_eq!(
        h.job(id)
            .expect("read")
            .expect("exists")
            .row
            .node
            .as_deref(),
        Some("a")
    );
    let direct = claimed(q, "b.tif", version(8, 10));
    assert_eq!((direct.token, direct.attempt), (1, 1));
}

/// A claim superseded by another (after its node's lease lapsed) is refused everywhere.
pub(crate) fn a_stale_token_is_refused(b: &dyn Backend) {
    let (mut a, mut other) = (b.queue("a"), b.queue("b"));
    let old = claimed(&mut *a, "a.tif", version(7, 10));
    let expired = other.expire(0).expect("expire");
    assert_eq!(expired.len(), 1, "node a never sent a heartbeat");
    assert_eq!((expired[0].id, expired[0].published), (old.id, false));
    let Answer::Claimed(new) = one(&mut *other, Write::Claim { id: old.id }) else {
        panic!("claimable again");
    };
    assert_eq!((new.token, new.attempt), (old.token + 1, 2));
    let stale = Answer::Stale { current: new.token };
    let started = |claim| Write::Started {
        claim,
        group: None,
        temp_output: None,
    };
    assert_eq!(one(&mut *a, started(old)), stale);
    assert_eq!(finish(&mut *a, old, Ending::Done), stale);
    let product = b.scratch().join("a.mov");
    std::fs::write(&product, b"the movie").expect("product");
    let v = FileVersion::of(&product).expect("file");
    match a.publishing(old, "review", &product, v) {
        Err(StoreError::Stale { id, token }) => assert_eq!((id, token), (old.id, old.token)),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(
        a.producer(&product, v).expect("q"),
        None,
        "nothing recorded"
    );
    assert_eq!(one(&mut *other, started(new)), Answer::Ok);
    other
        .publishing(new, "review", &product, v)
        .expect("current token");
    assert_eq!(finish(&mut *other, new, Ending::Done), Answer::Ok);
    let h = b.history();
    let row = h.job(old.id).expect("read").expect("exists").row;
    assert_eq!(
        (row.status.as_str(), row.node.as_deref()),
        ("done", Some("b"))
    );
}

/// A user's cancel wins over the claim: the next write of the attempt hears `Cancelled`.
pub(crate) fn a_cancel_while_claimed_stops_the_attempt(b: &dyn Backend) {
    let mut q = b.queue("a");
    let claim = claimed(&mut *q, "a.tif", version(7, 10));
    let mut h = b.history();
    assert_eq!(
        h.cancel(&[claim.id]).expect("cancel"),
        vec![(claim.id, None)]
    );
    let started = Write::Started {
        claim,
        group: None,
        temp_output: Some(b.scratch().join(".a.sr-1.mov")),
    };
    assert_eq!(one(&mut *q, started), Answer::Cancelled);
    let failed = Ending::Failed {
        reason: "killed by signal 15".into(),
    };
    assert_eq!(finish(&mut *q, claim, failed), Answer::Cancelled);
    assert_eq!(status_of(&*h, claim.id), "cancelled");
    assert_eq!(h.cancel(&[claim.id]).expect("cancel"), vec![], "only once");
    assert_eq!(
        one(&mut *q, Write::Claim { id: claim.id }),
        Answer::NotClaimable
    );
}

/// An attempt may end without its start recorded; an unplannable job is failed at once.
pub(crate) fn a_finish_without_a_start_records_the_end(b: &dyn Backend) {
    let mut q = b.queue("a");
    let claim = claimed(&mut *q, "a.tif", version(7, 10));
    assert_eq!(finish(&mut *q, claim, Ending::Done), Answer::Ok);
    let h = b.history();
    let row = h.job(claim.id).expect("read").expect("exists").row;
    assert_eq!(row.status, "done");
    assert!(row.started_at.is_some() && row.finished_at.is_some());
    let mut job = new_job("review", "b.tif", version(8, 10));
    job.unplannable = Some("missing frames 1002-1003".into());
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: true,
    };
    let (id, claim) = enqueued(one(&mut *q, write));
    assert_eq!(claim, None);
    let row = h.job(id).expect("read").expect("exists").row;
    assert_eq!(
        (row.status.as_str(), row.result.as_deref()),
        ("failed", Some("missing frames 1002-1003"))
    );
}

/// `Retry` and `Interrupted` queue the job again for the engine itself (no new cursor).
pub(crate) fn retry_and_interruption_queue_again(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let claim = claimed(q, "a.tif", version(7, 10));
    let retry = Ending::Retry {
        reason: "exited with status 1".into(),
        not_before: 4_102_444_800_000,
    };
    assert_eq!(finish(q, claim, retry), Answer::Ok);
    let queued = q.queued_since(-1).expect("queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].id, queued[0].attempts, queued[0].not_before),
        (claim.id, 1, 4_102_444_800_000)
    );
    assert!(queued_ids(q, 0).is_empty(), "the engine's own retry");
    let h = b.history();
    assert_eq!(
        h.job(claim.id)
            .expect("read")
            .expect("exists")
            .row
            .result
            .as_deref(),
        Some("exited with status 1")
    );
    let Answer::Claimed(second) = one(q, Write::Claim { id: claim.id }) else {
        panic!("claimable again");
    };
    assert_eq!((second.token, second.attempt), (2, 2));
    assert_eq!(finish(q, second, Ending::Interrupted), Answer::Ok);
    let queued = q.queued_since(-1).expect("queued");
    assert_eq!((queued[0].attempts, queued[0].not_before), (2, 0));
    assert_eq!(
        finish(q, second, Ending::Done),
        Answer::Stale { current: 2 }
    );
}

/// A cursor ≥ 0 skips the engine's own enqueues and sees the CLI's retries and reruns.
pub(crate) fn the_cursor_sees_what_others_queued(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let failed = claimed(q, "a.tif", version(7, 10));
    let done = claimed(q, "b.tif", version(8, 10));
    let (own, _) = enqueued(one(q, enqueue("review", "c.tif", version(9, 10), false)));
    let reason = Ending::Failed {
        reason: "exited with status 2".into(),
    };
    assert_eq!(finish(q, failed, reason), Answer::Ok);
    assert_eq!(finish(q, done, Ending::Done), Answer::Ok);
    assert!(queued_ids(q, 0).is_empty());
    assert_eq!(queued_ids(q, -1), [own]);
    let mut h = b.history();
    assert_eq!(
        h.retry(&[failed.id, own], None).expect("retry"),
        [failed.id]
    );
    let retried = q.queued_since(0).expect("queued");
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (failed.id, 0));
    let cursor = retried[0].cursor;
    assert!(cursor > 0);
    assert!(queued_ids(q, cursor).is_empty());
    assert_eq!(h.rerun("review", None).expect("rerun"), 1, "b.tif only");
    let rerun = q.queued_since(cursor).expect("queued");
    assert_eq!(rerun.len(), 1);
    assert_eq!(rerun[0].input, at("b.tif"));
    assert!(rerun[0].cursor > cursor);
}

/// `recover` resolves this node's claims only: published ones done, the others queued again.
pub(crate) fn recovery_takes_only_this_nodes_claims(b: &dyn Backend) {
    let (mut a, mut other) = (b.queue("a"), b.queue("b"));
    let interrupted = claimed(&mut *a, "a.tif", version(7, 10));
    let temp = b.scratch().join(".a.sr-1.mov");
    let started = Write::Started {
        claim: interrupted,
        group: None,
        temp_output: Some(temp.clone()),
    };
    assert_eq!(one(&mut *a, started), Answer::Ok);
    let mut job = new_job("review", "p.tif", version(8, 10));
    let product = b.scratch().join("p.mov");
    job.output = Some(product.clone());
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: true,
    };
    let (_, published) = enqueued(one(&mut *a, write));
    let published = published.expect("claimed");
    std::fs::write(&product, b"the movie").expect("product");
    let v = FileVersion::of(&product).expect("file");
    a.publishing(published, "review", &product, v)
        .expect("publishing");
    let theirs = claimed(&mut *other, "b.tif", version(9, 10));
    drop(a);
    // ...node a died here; it starts again.
    let mut restarted = b.queue("a");
    let mut found = restarted.recover().expect("recover");
    found.sort_by_key(|x| x.id);
    let summary: Vec<_> = found
        .iter()
        .map(|x| (x.id, x.published, x.temp_output.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (interrupted.id, false, Some(temp)),
            (published.id, true, None)
        ]
    );
    let h = b.history();
    assert_eq!(status_of(&*h, interrupted.id), "queued");
    assert_eq!(status_of(&*h, published.id), "done");
    assert_eq!(status_of(&*h, theirs.id), "claimed");
    assert_eq!(
        queued_ids(&*restarted, 0),
        [interrupted.id],
        "queued for everyone"
    );
    assert_eq!(restarted.recover().expect("again").len(), 0);
    assert_eq!(
        finish(&mut *other, theirs, Ending::Done),
        Answer::Ok,
        "node b's claim is intact"
    );
}

/// `expire` requeues the claims of nodes whose heartbeat lapsed, and only those.
pub(crate) fn expiry_spares_nodes_with_a_fresh_heartbeat(b: &dyn Backend) {
    let (mut alive, mut silent) = (b.queue("alive"), b.queue("silent"));
    alive.heartbeat().expect("heartbeat");
    let kept = claimed(&mut *alive, "a.tif", version(7, 10));
    let lost = claimed(&mut *silent, "b.tif", version(8, 10));
    let mut watcher = b.queue("watcher");
    let expired = watcher.expire(60_000).expect("expire");
    let ids: Vec<JobId> = expired.iter().map(|x| x.id).collect();
    assert_eq!(ids, [lost.id]);
    assert_eq!(watcher.expire(60_000).expect("again").len(), 0);
    let h = b.history();
    assert_eq!(status_of(&*h, kept.id), "claimed");
    assert_eq!(
        h.job(lost.id).expect("read").expect("exists").row.attempts,
        1,
        "the lost attempt counts"
    );
    assert_eq!(queued_ids(&*watcher, 0), [lost.id]);
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
    let claim = claimed(q, "f.tif", version(6, 10));
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
    q.publishing(claim, "review", &inside, v)
        .expect("inside a root");
    q.publishing(claim, "review", &outside, v).expect("outside");
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

/// Counts, filters, details and rule names, as `status`, `jobs` and `job` show them.
pub(crate) fn history_reports_and_filters(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let done = claimed(q, "a.tif", version(1, 10));
    assert_eq!(finish(q, done, Ending::Done), Answer::Ok);
    let failed = claimed(q, "b.tif", version(2, 10));
    let reason = Ending::Failed {
        reason: "exited with status 2".into(),
    };
    assert_eq!(finish(q, failed, reason), Answer::Ok);
    let running = claimed(q, "c.tif", version(3, 10));
    let started = Write::Started {
        claim: running,
        group: None,
        temp_output: None,
    };
    assert_eq!(one(q, started), Answer::Ok);
    let waiting = claimed(q, "d.tif", version(4, 10));
    let (queued, _) = enqueued(one(q, enqueue("avid", "e.tif", version(5, 10), false)));
    let h = b.history();
    let s = h.status().expect("status");
    assert_eq!(
        (
            s.running,
            s.claimed,
            s.queued,
            s.failed_24h,
            s.done_1h,
            s.files
        ),
        (1, 1, 1, 1, 1, 5)
    );
    assert!(s.oldest_queued_s.is_some());
    let ids = |filter: JobFilter<'_>| -> Vec<JobId> {
        let rows = h.jobs(&filter).expect("jobs");
        rows.iter().map(|r| r.id).collect()
    };
    let all = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(
        ids(all.clone()),
        [queued, waiting.id, running.id, failed.id, done.id]
    );
    let failed_only = JobFilter {
        status: Some(Status::Failed),
        ..all.clone()
    };
    assert_eq!(ids(failed_only), [failed.id]);
    let avid = JobFilter {
        rule: Some("avid"),
        ..all.clone()
    };
    assert_eq!(ids(avid), [queued]);
    let future = JobFilter {
        since_ms: Some(4_102_444_800_000),
        ..all.clone()
    };
    assert!(ids(future).is_empty());
    assert_eq!(ids(JobFilter { limit: 2, ..all }), [queued, waiting.id]);
    let detail = h.job(failed.id).expect("read").expect("exists");
    assert_eq!(detail.rule_hash, "h1");
    assert_eq!(detail.input, Some((0, 2, 10, 1_767_323_045_123_456_789)));
    assert_eq!(
        detail.raw_steps,
        [vec![b"cp".to_vec(), b"a b\xff.tif".to_vec()]],
        "argv bytes survive"
    );
    assert_eq!(detail.row.result.as_deref(), Some("exited with status 2"));
    assert_eq!(detail.row.path, "shots:b.tif", "root not registered");
    assert!(h.job(queued + 1000).expect("read").is_none());
    assert_eq!(h.rule_names().expect("rules"), ["avid", "review"]);
}

/// Paths are stored under their root and found by the absolute path on this node.
pub(crate) fn history_finds_files_by_absolute_path(b: &dyn Backend) {
    let mut q = b.queue("a");
    let shots = b.scratch().join("shots");
    q.register_roots(&[("shots".into(), shots.clone())])
        .expect("roots");
    let claim = claimed(&mut *q, "sh010/a.tif", version(7, 10));
    assert_eq!(finish(&mut *q, claim, Ending::Done), Answer::Ok);
    let files = vec![(at("sh010/old.tif"), version(5, 10))];
    assert_eq!(one(&mut *q, Write::Baseline { files }), Answer::Ok);
    let h = b.history();
    let abs = shots.join("sh010/a.tif");
    let record = h.file(&abs).expect("q").expect("known");
    assert_eq!(record.path, abs.to_string_lossy());
    assert_eq!(record.version, Some((0, 7, 10, 1_767_323_045_123_456_789)));
    assert!(!record.baseline);
    assert_eq!(record.jobs.len(), 1);
    assert_eq!(record.jobs[0].path, abs.to_string_lossy(), "shown absolute");
    let old = h
        .file(&shots.join("sh010/old.tif"))
        .expect("q")
        .expect("known");
    assert!(old.baseline && old.jobs.is_empty());
    assert!(h.file(&shots.join("sh010/none.tif")).expect("q").is_none());
    assert!(
        h.file(Path::new("/elsewhere/sh010/a.tif"))
            .expect("q")
            .is_none()
    );
}

/// `rerun` queues a new generation of the latest version; the engine's enqueue of that version
/// is still a duplicate, and inputs with a job waiting are skipped.
pub(crate) fn rerun_adds_a_generation(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let first = claimed(q, "a.tif", version(7, 10));
    assert_eq!(finish(q, first, Ending::Done), Answer::Ok);
    let mut h = b.history();
    assert_eq!(h.rerun("review", None).expect("rerun"), 1);
    assert_eq!(h.rerun("review", None).expect("rerun"), 0, "already queued");
    assert_eq!(h.rerun("other", None).expect("rerun"), 0);
    let again = queued_ids(q, 0);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], first.id);
    assert_eq!(
        one(q, enqueue("review", "a.tif", version(7, 10), false)),
        Answer::Duplicate
    );
    let Answer::Claimed(second) = one(q, Write::Claim { id: again[0] }) else {
        panic!("claimable");
    };
    assert_eq!(finish(q, second, Ending::Done), Answer::Ok);
    assert_eq!(
        h.rerun("review", Some(4_102_444_800_000)).expect("rerun"),
        0
    );
    assert_eq!(
        h.rerun("review", None).expect("rerun"),
        1,
        "a third generation"
    );
    let all = JobFilter {
        limit: 10,
        ..JobFilter::default()
    };
    assert_eq!(h.jobs(&all).expect("jobs").len(), 3);
}
