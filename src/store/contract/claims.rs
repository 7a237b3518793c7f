//! Contract cases for claims: fencing tokens, cancels, attempt endings, the queue cursor, and
//! the two ways a lost claim is taken back (`recover` by its own node, `expire` by anyone).

use super::super::queue::{Answer, Claim, Delivered, Ending, Write};
use super::super::{JobId, StoreError};
use super::{
    Backend, at, claimed, enqueue, enqueued, finish, new_job, one, queued_ids, status_of, version,
};
use crate::os::version::FileVersion;

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
        run: None,
        temp_output: None,
    };
    assert_eq!(one(&mut *a, started(old)), stale);
    assert_eq!(finish(&mut *a, old, Ending::Done), stale);
    let product = b.scratch().join("a.mov");
    std::fs::write(&product, b"the movie").expect("product");
    let v = FileVersion::of(&product).expect("file");
    match a.publishing(old, "review", &product, v, Delivered::Product) {
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
        .publishing(new, "review", &product, v, Delivered::Product)
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
        run: None,
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

/// A new version of an input cancels the rule's unfinished jobs on older versions (queued or
/// running): the old attempt can neither publish nor record an end. Other rules, other files
/// and a rerun of the same version are untouched.
pub(crate) fn a_newer_version_supersedes_unfinished_jobs(b: &dyn Backend) {
    let mut q = b.queue("a");
    let running = claimed(&mut *q, "a.tif", version(7, 10));
    let (other_rule, _) = enqueued(one(
        &mut *q,
        enqueue("proxy", "a.tif", version(7, 10), false),
    ));
    let (other_file, _) = enqueued(one(
        &mut *q,
        enqueue("review", "b.tif", version(9, 10), false),
    ));
    let answer = one(&mut *q, enqueue("review", "a.tif", version(7, 20), false));
    let Answer::Enqueued { id, superseded, .. } = answer else {
        panic!("expected Enqueued, got {answer:?}");
    };
    assert_eq!(superseded, vec![running.id]);
    let product = b.scratch().join("a.mov");
    std::fs::write(&product, b"old content").expect("product");
    let product_version = FileVersion::of(&product).expect("exists");
    assert!(matches!(
        q.publishing(
            running,
            "review",
            &product,
            product_version,
            Delivered::Product
        ),
        Err(crate::store::StoreError::Stale { .. })
    ));
    assert_eq!(finish(&mut *q, running, Ending::Done), Answer::Cancelled);
    let h = b.history();
    let row = h.job(running.id).expect("read").expect("exists").row;
    assert_eq!(row.status, "cancelled");
    assert!(
        row.result
            .as_deref()
            .is_some_and(|r| r.contains(&format!("superseded by job {id}"))),
        "{row:?}"
    );
    for untouched in [other_rule, other_file, id] {
        assert_eq!(status_of(&*h, untouched), "queued");
    }
    // The newest version's job supersedes the queued one in turn.
    let answer = one(&mut *q, enqueue("review", "a.tif", version(7, 30), false));
    let Answer::Enqueued { superseded, .. } = answer else {
        panic!("expected Enqueued, got {answer:?}");
    };
    assert_eq!(superseded, vec![id]);
    assert_eq!(one(&mut *q, Write::Claim { id }), Answer::NotClaimable);
}

/// The record a commit makes for a new path is the one its later enqueues find: a second
/// version of a new file in the same commit supersedes the first. A file renamed over
/// another's path is not followed as a move (the path has a record): it supersedes the job
/// queued there.
pub(crate) fn a_new_record_and_a_rename_over_one_supersede(b: &dyn Backend) {
    let mut q = b.queue("a");
    let answers = q
        .commit(&[
            enqueue("review", "n.tif", version(20, 10), false),
            enqueue("review", "n.tif", version(20, 20), false),
        ])
        .expect("commit");
    let (first, _) = enqueued(answers[0].clone());
    let Answer::Enqueued { superseded, .. } = answers[1].clone() else {
        panic!("expected Enqueued, got {:?}", answers[1]);
    };
    assert_eq!(superseded, vec![first]);
    let done = claimed(&mut *q, "x.tif", version(30, 10));
    assert_eq!(finish(&mut *q, done, Ending::Done), Answer::Ok);
    let (waiting, _) = enqueued(one(
        &mut *q,
        enqueue("review", "y.tif", version(31, 10), false),
    ));
    let answer = one(&mut *q, enqueue("review", "y.tif", version(30, 10), false));
    let Answer::Enqueued { superseded, .. } = answer else {
        panic!("x.tif renamed over y.tif is a job, not a move; got {answer:?}");
    };
    assert_eq!(superseded, vec![waiting]);
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

/// A job the rule's `frames:` leaves out is recorded skipped with its reason at once: never
/// claimed, never queued, found by `--status skipped`, and not retried as a failure.
pub(crate) fn a_skipped_job_is_recorded_and_never_runs(b: &dyn Backend) {
    let mut q = b.queue("a");
    let mut job = new_job("review", "sh010.1003.exr", version(8, 10));
    let reason = "frame 1003 of `sh010` is a handle (cut 1009-1056, cut `reel1` rev 2)";
    job.skipped = Some(reason.into());
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: true,
    };
    let (id, claim) = enqueued(one(&mut *q, write));
    assert_eq!(claim, None);
    assert!(queued_ids(&*q, -1).is_empty());
    let h = b.history();
    let row = h.job(id).expect("read").expect("exists").row;
    assert_eq!(
        (row.status.as_str(), row.result.as_deref()),
        ("skipped", Some(reason))
    );
    assert!(row.finished_at.is_some());
    let skipped = crate::store::history::JobFilter {
        status: Some(crate::store::Status::Skipped),
        limit: 10,
        ..Default::default()
    };
    let found: Vec<_> = h
        .jobs(&skipped)
        .expect("jobs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, [id]);
    let status = h.status().expect("status");
    assert_eq!((status.failed_24h, status.skipped_24h), (0, 1));
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
    assert_eq!(
        (queued[0].attempts, queued[0].not_before),
        (1, 0),
        "the interrupted attempt is not counted"
    );
    assert_eq!(
        finish(q, second, Ending::Done),
        Answer::Stale { current: 2 }
    );
}

/// An attempt a graceful stop cut short (`Interrupted`) gives its count back; one a crash cut
/// short (found by `recover`) keeps it.
pub(crate) fn an_interrupted_attempt_is_not_counted(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let claim = claimed(q, "a.tif", version(7, 10));
    let started = Write::Started {
        claim,
        run: None,
        temp_output: Some(b.scratch().join(".a.sr1-1.mov")),
    };
    assert_eq!(one(q, started), Answer::Ok);
    assert_eq!(finish(q, claim, Ending::Interrupted), Answer::Ok);
    let queued = q.queued_since(-1).expect("queued");
    assert_eq!((queued[0].id, queued[0].attempts), (claim.id, 0));
    let Answer::Claimed(again) = one(q, Write::Claim { id: claim.id }) else {
        panic!("claimable again");
    };
    assert_eq!(
        (again.token, again.attempt),
        (2, 1),
        "still the first attempt"
    );
    let mut restarted = b.queue("a");
    let found = restarted.recover().expect("recover");
    assert_eq!(found.len(), 1);
    let queued = q.queued_since(-1).expect("queued");
    assert_eq!(queued[0].attempts, 1, "a crash's attempt counts");
    assert_eq!(
        finish(q, again, Ending::Interrupted),
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

/// `recover` queues this node's claims again, and only its own; one whose product is in place
/// says so, and its product's version stays recorded (not a copy's published after it), for
/// the next attempt to deliver it without running its commands.
pub(crate) fn recovery_takes_only_this_nodes_claims(b: &dyn Backend) {
    let (mut a, mut other) = (b.queue("a"), b.queue("b"));
    let interrupted = claimed(&mut *a, "a.tif", version(7, 10));
    let temp = b.scratch().join(".a.sr-1.mov");
    let started = Write::Started {
        claim: interrupted,
        run: None,
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
    a.publishing(published, "review", &product, v, Delivered::Product)
        .expect("publishing");
    let copy = b.scratch().join("san-p.mov");
    std::fs::write(&copy, b"the movie, copied").expect("copy");
    let copied = FileVersion::of(&copy).expect("file");
    a.publishing(published, "review", &copy, copied, Delivered::Copy)
        .expect("the copy's publishing");
    assert_eq!(
        a.published_product(published)
            .expect("read")
            .map(|r| r.product.is_same_as(&v)),
        Some(true),
        "the product's version is the job's, not the copy's"
    );
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
    assert_eq!(status_of(&*h, published.id), "queued");
    assert_eq!(status_of(&*h, theirs.id), "claimed");
    assert_eq!(
        queued_ids(&*restarted, 0),
        [interrupted.id, published.id],
        "queued for everyone"
    );
    let Answer::Claimed(next) = one(&mut *restarted, Write::Claim { id: published.id }) else {
        panic!("the published job is claimable");
    };
    assert_eq!(
        restarted
            .published_product(next)
            .expect("read")
            .map(|r| r.product.is_same_as(&v)),
        Some(true),
        "its next attempt finds the product recorded"
    );
    finish(&mut *restarted, next, Ending::Done);
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
    alive
        .heartbeat(Some("inotify watches: 3 folders are not watched"))
        .expect("heartbeat");
    let nodes = b.history().status().expect("status").nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "alive");
    assert!(nodes[0].last_seen_s < 60);
    assert_eq!(
        nodes[0].health.as_deref(),
        Some("inotify watches: 3 folders are not watched")
    );
    alive.heartbeat(None).expect("heartbeat");
    assert_eq!(b.history().status().expect("status").nodes[0].health, None);
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

/// Two nodes racing for the same queued jobs: each job is granted to exactly one of them.
pub(crate) fn racing_claims_grant_each_job_once(b: &dyn Backend) {
    let mut q = b.queue("a");
    let writes: Vec<Write> = (0..20)
        .map(|i| enqueue("review", &format!("f{i}.tif"), version(i, 10), false))
        .collect();
    let ids: Vec<JobId> = q
        .commit(&writes)
        .expect("commit")
        .into_iter()
        .map(|a| enqueued(a).0)
        .collect();
    let racers = [b.queue("x"), b.queue("y")];
    let won: Vec<Vec<JobId>> = std::thread::scope(|s| {
        let handles: Vec<_> = racers
            .into_iter()
            .map(|mut racer| {
                let ids = ids.clone();
                s.spawn(move || {
                    let mut won = Vec::new();
                    for id in ids {
                        if let Answer::Claimed(c) = one(&mut *racer, Write::Claim { id }) {
                            won.push(c.id);
                        }
                    }
                    won
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    });
    let mut all: Vec<JobId> = won.concat();
    all.sort_unstable();
    assert_eq!(all, ids, "every job once, none twice");
}

/// `Replan` and `Drop` change only jobs that have not started; later writes see the drop.
pub(crate) fn replan_and_drop_touch_only_waiting_jobs(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let (id, _) = enqueued(one(q, enqueue("review", "a.tif", version(7, 10), false)));
    let replan = |id| Write::Replan {
        id,
        rule_hash: "h2".into(),
        steps: vec![vec!["ffmpeg".into(), "-y".into()]],
        output: Some(b.scratch().join("a.mov")),
        plan: "{\"replanned\":true}".into(),
    };
    assert_eq!(one(q, replan(id)), Answer::Ok);
    let h = b.history();
    let detail = h.job(id).expect("read").expect("exists");
    assert_eq!(detail.rule_hash, "h2");
    assert_eq!(detail.raw_steps, [vec![b"ffmpeg".to_vec(), b"-y".to_vec()]]);
    let drop = Write::Drop {
        id,
        reason: "rule `review` left the rules".into(),
    };
    assert_eq!(one(q, drop.clone()), Answer::Ok);
    let row = h.job(id).expect("read").expect("exists").row;
    assert_eq!(
        (row.status.as_str(), row.result.as_deref()),
        ("cancelled", Some("rule `review` left the rules"))
    );
    assert_eq!(one(q, drop), Answer::NotClaimable);
    assert_eq!(one(q, replan(id)), Answer::NotClaimable);
    assert_eq!(one(q, Write::Claim { id }), Answer::NotClaimable);
}

/// The handle an attempt's run was recorded with comes back whole, local process group or
/// remote id, to whoever must stop or re-attach to it: `cancel` and this node's `recover`.
pub(crate) fn a_runs_handle_comes_back_to_stop_it(b: &dyn Backend) {
    use crate::os::process::GroupId;
    use crate::store::RunHandle;
    let mut q = b.queue("a");
    let local = RunHandle::Local(GroupId {
        pgid: 4242,
        leader_start: 99,
        boot_id: "boot".into(),
    });
    let remote = RunHandle::Remote {
        executor: "slurm".into(),
        id: "1234_7".into(),
    };
    let mut claims = Vec::new();
    for (rel, run) in [("a.tif", &local), ("b.tif", &remote)] {
        let claim = claimed(&mut *q, rel, version(claims.len() as u64 + 7, 10));
        let started = Write::Started {
            claim,
            run: Some(run.clone()),
            temp_output: None,
        };
        assert_eq!(one(&mut *q, started), Answer::Ok);
        claims.push(claim);
    }
    let mut h = b.history();
    assert_eq!(
        h.cancel(&[claims[0].id]).expect("cancel"),
        vec![(claims[0].id, Some(local))]
    );
    drop(q);
    let mut again = b.queue("a");
    let abandoned = again.recover().expect("recover");
    let found: Vec<_> = abandoned.iter().map(|a| (a.id, a.run.clone())).collect();
    assert_eq!(found, vec![(claims[1].id, Some(remote))]);
}
