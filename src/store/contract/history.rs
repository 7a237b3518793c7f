//! Contract cases for the operations side: counts, filters, details, files found by their
//! absolute path through the registered roots, and `rerun` generations.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use super::super::history::JobFilter;
use super::super::queue::{Answer, Ending, Write};
use super::super::{JobId, Status};
use super::{Backend, at, claimed, enqueue, enqueued, finish, new_job, one, queued_ids, version};

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
        run: None,
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
    // Every listing is checked against its count too.
    let ids = |filter: JobFilter<'_>| -> Vec<JobId> {
        let rows = h.jobs(&filter).expect("jobs");
        assert_eq!(
            h.count_jobs(&filter).expect("count"),
            rows.len(),
            "{filter:?}"
        );
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
    let after_waiting = JobFilter {
        before: Some(waiting.id),
        ..all.clone()
    };
    assert_eq!(ids(after_waiting), [running.id, failed.id, done.id]);
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
    let mut counts: Vec<(String, &str, u64)> = h
        .counts_by_rule_and_status()
        .expect("counts")
        .into_iter()
        .map(|(rule, status, n)| (rule, status.as_str(), n))
        .collect();
    counts.sort();
    let want = [
        ("avid", "queued", 1),
        ("review", "claimed", 1),
        ("review", "done", 1),
        ("review", "failed", 1),
        ("review", "running", 1),
    ];
    let want: Vec<(String, &str, u64)> = want
        .into_iter()
        .map(|(r, s, n)| (r.to_string(), s, n))
        .collect();
    assert_eq!(counts, want);
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

/// A file renamed within the tree (same inode, size and mtime) whose version succeeded for the
/// rule is followed: its record and history move to the new name and nothing is queued. A
/// rule that asks for renames, a version that failed, or another rule still get a job.
pub(crate) fn a_renamed_file_is_followed_not_run_again(b: &dyn Backend) {
    let mut q = b.queue("a");
    let shots = b.scratch().join("shots");
    q.register_roots(&[("shots".into(), shots.clone())])
        .expect("roots");
    let claim = claimed(&mut *q, "sh010/a.tif", version(7, 10));
    assert_eq!(finish(&mut *q, claim, Ending::Done), Answer::Ok);
    assert_eq!(
        one(
            &mut *q,
            enqueue("review", "sh020/a.tif", version(7, 10), false)
        ),
        Answer::Moved {
            from: at("sh010/a.tif")
        }
    );
    let h = b.history();
    let moved = h
        .file(&shots.join("sh020/a.tif"))
        .expect("q")
        .expect("known");
    assert_eq!(moved.jobs.len(), 1, "the history moved with the file");
    assert_eq!(moved.jobs[0].id, claim.id);
    assert!(h.file(&shots.join("sh010/a.tif")).expect("q").is_none());
    // Another rule never ran on it: it gets its job.
    let (_, _) = enqueued(one(
        &mut *q,
        enqueue("proxy", "sh020/a.tif", version(7, 10), false),
    ));
    // A rule that asks for renames runs again.
    let mut job = new_job("review", "sh030/a.tif", version(7, 10));
    job.follow_moves = false;
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: false,
    };
    let (_, _) = enqueued(one(&mut *q, write));
    // A file whose other rule still has a job running there is not moved under it.
    let done = claimed(&mut *q, "sh010/c.tif", version(9, 10));
    assert_eq!(finish(&mut *q, done, Ending::Done), Answer::Ok);
    let (_, busy) = enqueued(one(
        &mut *q,
        enqueue("proxy", "sh010/c.tif", version(9, 10), true),
    ));
    assert!(busy.is_some());
    let (_, _) = enqueued(one(
        &mut *q,
        enqueue("review", "sh020/c.tif", version(9, 10), false),
    ));
    // A version that failed is not followed.
    let failed = claimed(&mut *q, "sh010/b.tif", version(8, 10));
    let ending = Ending::Failed {
        reason: "exited with status 1".into(),
    };
    assert_eq!(finish(&mut *q, failed, ending), Answer::Ok);
    let (_, _) = enqueued(one(
        &mut *q,
        enqueue("review", "sh020/b.tif", version(8, 10), false),
    ));
}

/// `notify` records files under a registered root for the daemon, which takes each once, in
/// order; a path under no root is refused and recorded nowhere.
pub(crate) fn notices_reach_the_daemon_once(b: &dyn Backend) {
    let mut q = b.queue("a");
    let shots = b.scratch().join("shots");
    q.register_roots(&[("shots".into(), shots.clone())])
        .expect("roots");
    assert!(q.take_notices().expect("take").is_empty());
    let mut h = b.history();
    let paths = [
        shots.join("sh010/b.mxf"),
        b.scratch().join("elsewhere/x.mxf"),
        shots.join("sh010/a b\n.mxf"),
    ];
    assert_eq!(h.notify(&paths).expect("notify"), [true, false, true]);
    assert!(q.take_notices().expect("take").is_empty(), "all or nothing");
    let paths = [paths[0].clone(), paths[2].clone()];
    assert_eq!(h.notify(&paths).expect("notify"), [true, true]);
    assert_eq!(
        q.take_notices().expect("take"),
        [at("sh010/b.mxf"), at("sh010/a b\n.mxf")]
    );
    assert!(q.take_notices().expect("take").is_empty(), "each once");

    // With several watchers on one store, a notice goes to the watcher of its root only.
    let mut other = b.queue("b");
    other
        .register_roots(&[("plates".into(), b.scratch().join("plates"))])
        .expect("roots");
    let plate = b.scratch().join("plates/p.dpx");
    assert_eq!(
        h.notify(&[plate, shots.join("sh020/c.mxf")])
            .expect("notify"),
        [true, true]
    );
    assert_eq!(q.take_notices().expect("take"), [at("sh020/c.mxf")]);
    let theirs = other.take_notices().expect("take");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].root, "plates");
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

/// The argv a claim ran (a worker's mapped paths) is shown beside the planned one, with its
/// node and every byte, while that claim is the job's last; a stale claim cannot record one.
pub(crate) fn the_argv_a_claim_ran_is_shown_beside_the_planned_one(b: &dyn Backend) {
    let mut q = b.queue("w1");
    let q = &mut *q;
    let claim = claimed(q, "a.tif", version(1, 10));
    let h = b.history();
    let planned = h.job(claim.id).expect("read").expect("job").raw_steps;
    let as_planned: Vec<Vec<OsString>> = planned
        .iter()
        .map(|s| s.iter().map(|a| OsString::from_vec(a.clone())).collect())
        .collect();
    let ran = Write::Ran {
        claim,
        steps: as_planned,
    };
    assert_eq!(one(q, ran), Answer::Ok);
    assert_eq!(
        h.job(claim.id).expect("read").expect("job").ran,
        None,
        "the planned argv ran: nothing beside it"
    );
    let mapped = vec![vec![
        OsString::from("cp"),
        OsString::from_vec(b"/farm/a b\xff.tif".to_vec()),
    ]];
    let ran = Write::Ran {
        claim,
        steps: mapped,
    };
    assert_eq!(one(q, ran), Answer::Ok);
    let detail = h.job(claim.id).expect("read").expect("job");
    let ran = detail.ran.expect("shown");
    assert_eq!(ran.node.as_deref(), Some("w1"));
    assert_eq!(
        ran.raw_steps,
        [vec![b"cp".to_vec(), b"/farm/a b\xff.tif".to_vec()]],
        "bytes that are not UTF-8 survive"
    );
    assert_eq!(ran.steps, [["cp", "/farm/a b\u{fffd}.tif"]]);
    assert_eq!(detail.raw_steps, planned, "the planned argv stays");

    // Queued again and claimed anew: the next claim has run nothing yet, and the old one
    // can record nothing more.
    let again = Ending::Retry {
        reason: "exited with status 1".into(),
        not_before: 0,
    };
    assert_eq!(finish(q, claim, again), Answer::Ok);
    let Answer::Claimed(next) = one(q, Write::Claim { id: claim.id }) else {
        panic!("claimable again");
    };
    assert_eq!(h.job(claim.id).expect("read").expect("job").ran, None);
    let stale = Write::Ran {
        claim,
        steps: vec![vec![OsString::from("late")]],
    };
    assert!(matches!(one(q, stale), Answer::Stale { .. }));
    assert!(next.token > claim.token);
}
