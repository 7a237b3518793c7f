//! Contract cases for workers on a shared store: claiming the next jobs a node may run,
//! declining one, learning which claims were lost, and the nodes `status` lists.

use super::super::queue::{ClaimFilter, ClaimedJob, Ending, NewJob, Write};
use super::*;

fn portable(rule: &str, rel: &str, v: FileVersion, tags: &[&str], limit: Option<u32>) -> Write {
    let mut job: NewJob = new_job(rule, rel, v);
    job.tags = tags.iter().map(|t| t.to_string()).collect();
    job.concurrency = limit;
    job.plan = format!("{{\"rel\":\"{rel}\"}}");
    Write::Enqueue {
        job: Box::new(job),
        claim: false,
    }
}

fn rels(claimed: &[ClaimedJob]) -> Vec<String> {
    claimed
        .iter()
        .map(|c| c.input.rel.to_string_lossy().into_owned())
        .collect()
}

/// `claim_next` takes the oldest due jobs with a plan that the node's tags and roots allow,
/// keeps each rule's cluster-wide concurrency, and hands back everything a worker needs.
pub(crate) fn claim_next_keeps_tags_roots_and_concurrency(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let writes = vec![
        portable("review", "a.tif", version(1, 10), &[], None),
        portable("gpu", "b.tif", version(2, 10), &["gpu"], None),
        portable("dnx", "c.tif", version(3, 10), &[], Some(1)),
        portable("dnx", "d.tif", version(4, 10), &[], Some(1)),
        // Without a plan (an older watcher's job): only its own watcher runs it.
        enqueue("review", "e.tif", version(5, 10), false),
    ];
    let answers = watcher.commit(&writes).expect("commit");
    assert!(answers.iter().all(|a| matches!(a, Answer::Enqueued { .. })));

    let mut plain = b.queue("plain");
    let got = plain
        .claim_next(
            &ClaimFilter {
                roots: vec!["elsewhere".into()],
                ..ClaimFilter::default()
            },
            10,
        )
        .expect("claim");
    assert!(got.is_empty(), "no job of another root: {:?}", rels(&got));
    let got = plain
        .claim_next(&ClaimFilter::default(), 10)
        .expect("claim");
    assert_eq!(
        rels(&got),
        ["a.tif", "c.tif"],
        "untagged, one dnx at a time"
    );
    let dnx = got[1].claim;
    let first = &got[0];
    assert_eq!(first.rule, "review");
    assert_eq!(first.input.root, "shots");
    assert_eq!(first.claim.attempt, 1);
    assert_eq!(first.plan, "{\"rel\":\"a.tif\"}");
    assert_eq!(
        first.steps,
        new_job("review", "a.tif", version(1, 10)).steps
    );
    assert!(
        plain
            .claim_next(&ClaimFilter::default(), 10)
            .expect("again")
            .is_empty()
    );

    let mut gpu = b.queue("gpu-node");
    let got = gpu.claim_next(
        &ClaimFilter {
            tags: vec!["gpu".into(), "linux".into()],
            roots: vec!["shots".into()],
            ..ClaimFilter::default()
        },
        10,
    );
    assert_eq!(rels(&got.expect("claim")), ["b.tif"], "dnx is at its limit");
    assert_eq!(finish(&mut *plain, dnx, Ending::Done), Answer::Ok);
    let got = gpu
        .claim_next(
            &ClaimFilter {
                tags: vec!["gpu".into()],
                ..ClaimFilter::default()
            },
            1,
        )
        .expect("claim");
    assert_eq!(rels(&got), ["d.tif"], "the limit frees when a dnx job ends");
}

/// A declined job goes back to the queue without counting the attempt, and waits before any
/// node may claim it again, so the node that declined it does not take it back at once.
pub(crate) fn a_declined_job_waits_and_keeps_its_count(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    assert!(matches!(
        one(
            &mut *watcher,
            portable("review", "a.tif", version(1, 10), &[], None)
        ),
        Answer::Enqueued { .. }
    ));
    let mut worker = b.queue("w1");
    let got = worker
        .claim_next(&ClaimFilter::default(), 1)
        .expect("claim");
    assert_eq!(got.len(), 1);
    let claim = got[0].claim;
    let reason = "root `shots` is not mounted on this worker".to_string();
    assert_eq!(
        finish(
            &mut *worker,
            claim,
            Ending::Declined {
                reason: reason.clone()
            }
        ),
        Answer::Ok
    );
    let row = b
        .history()
        .job(claim.id)
        .expect("read")
        .expect("exists")
        .row;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.result.as_deref()),
        ("queued", 0, Some(reason.as_str()))
    );
    let mut other = b.queue("w2");
    assert!(
        other
            .claim_next(&ClaimFilter::default(), 1)
            .expect("claim")
            .is_empty(),
        "not claimable during the decline's wait"
    );
}

/// A worker learns which of its claims it lost: cancelled by a user, or queued again after its
/// lease expired and claimed by another node; the claims it still holds are not named.
pub(crate) fn lost_claims_name_cancelled_and_taken_over_jobs(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    for (i, rel) in ["a.tif", "b.tif", "c.tif"].iter().enumerate() {
        one(
            &mut *watcher,
            portable("review", rel, version(i as u64 + 1, 10), &[], None),
        );
    }
    let mut stalled = b.queue("stalled");
    let held: Vec<Claim> = stalled
        .claim_next(&ClaimFilter::default(), 3)
        .expect("claim")
        .iter()
        .map(|c| c.claim)
        .collect();
    assert_eq!(held.len(), 3);
    assert!(stalled.lost_claims(&held).expect("lost").is_empty());
    let mut h = b.history();
    let cancelled = h.cancel(&[held[0].id]).expect("cancel");
    assert_eq!(cancelled.len(), 1);
    let mut rescuer = b.queue("rescuer");
    rescuer.heartbeat(None).expect("heartbeat");
    stalled.heartbeat(None).expect("heartbeat");
    // `stalled` heartbeat just now: a lease of a minute spares it; none at all does not, and
    // a node's own registered lease wins over the caller's.
    assert!(rescuer.expire(60_000).expect("expire").is_empty());
    stalled
        .register_node("worker", 3_600_000, &[])
        .expect("role");
    assert!(rescuer.expire(-1).expect("expire").is_empty());
    stalled.register_node("worker", -1, &[]).expect("role");
    let expired = rescuer.expire(60_000).expect("expire");
    let mut ids: Vec<JobId> = expired.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [held[1].id, held[2].id]);
    let taken = rescuer
        .claim_next(&ClaimFilter::default(), 1)
        .expect("claim");
    assert_eq!(taken.len(), 1);
    assert!(
        taken[0].claim.token > held[1].token,
        "a new claim, a new token"
    );
    let mut lost = stalled.lost_claims(&held).expect("lost");
    lost.sort_unstable();
    assert_eq!(lost, [held[0].id, held[1].id, held[2].id]);
    assert!(matches!(
        finish(&mut *stalled, held[1], Ending::Done),
        Answer::Stale { .. }
    ));
}

/// `status` lists each node with its role and the jobs it holds.
pub(crate) fn nodes_report_their_role_and_jobs(b: &dyn Backend) {
    let mut watcher = b.queue("fs1");
    watcher.register_node("watcher", 30_000, &[]).expect("role");
    one(
        &mut *watcher,
        portable("review", "a.tif", version(1, 10), &[], None),
    );
    one(
        &mut *watcher,
        portable("review", "b.tif", version(2, 10), &[], None),
    );
    let mut worker = b.queue("farm7");
    worker.register_node("worker", 30_000, &[]).expect("role");
    assert_eq!(
        worker
            .claim_next(&ClaimFilter::default(), 2)
            .expect("claim")
            .len(),
        2
    );
    let nodes = b.history().status().expect("status").nodes;
    let find = |name: &str| {
        nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("node {name} in {nodes:?}"))
            .clone()
    };
    assert_eq!(
        (find("fs1").role.as_deref(), find("fs1").running),
        (Some("watcher"), 0)
    );
    assert_eq!(
        (find("farm7").role.as_deref(), find("farm7").running),
        (Some("worker"), 2)
    );
}

/// A backlog longer than one page of the queue, of a rule at its cluster-wide limit, does not
/// starve the jobs queued behind it, nor do jobs of tags this node lacks.
pub(crate) fn a_saturated_backlog_starves_nothing_behind_it(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let mut writes: Vec<Write> = (0..600)
        .map(|i| {
            portable(
                "plates",
                &format!("p{i}.dpx"),
                version(i + 1, 10),
                &[],
                Some(1),
            )
        })
        .collect();
    writes.extend((0..600).map(|i| {
        portable(
            "gpu",
            &format!("g{i}.exr"),
            version(i + 1_000, 10),
            &["gpu"],
            None,
        )
    }));
    writes.push(portable(
        "review",
        "late.mov",
        version(5_000, 10),
        &[],
        None,
    ));
    watcher.commit(&writes).expect("commit");
    let mut worker = b.queue("cpu-node");
    let got = worker
        .claim_next(&ClaimFilter::default(), 5)
        .expect("claim");
    assert_eq!(
        rels(&got),
        ["p0.dpx", "late.mov"],
        "one plate (its limit), then the review"
    );
}

/// Claims a node does not hold (their commit's answer was lost) go back to the queue, their
/// attempt given back; the ones it holds, and other nodes' claims, stay.
pub(crate) fn claims_a_node_does_not_hold_are_released(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    for (i, rel) in ["a.tif", "b.tif", "c.tif"].iter().enumerate() {
        one(
            &mut *watcher,
            portable("review", rel, version(i as u64 + 1, 10), &[], None),
        );
    }
    let mut worker = b.queue("w1");
    let mine = worker
        .claim_next(&ClaimFilter::default(), 2)
        .expect("claim");
    let mut other = b.queue("w2");
    let theirs = other.claim_next(&ClaimFilter::default(), 1).expect("claim");
    assert_eq!((mine.len(), theirs.len()), (2, 1));
    let released = worker.release_unheld(&[mine[0].claim.id]).expect("release");
    assert_eq!(released, [mine[1].claim.id]);
    let h = b.history();
    let row = |id| h.job(id).expect("read").expect("exists").row;
    assert_eq!(
        (
            row(mine[1].claim.id).status.as_str(),
            row(mine[1].claim.id).attempts
        ),
        ("queued", 0)
    );
    assert_eq!(row(mine[0].claim.id).status, "claimed");
    assert_eq!(row(theirs[0].claim.id).status, "claimed");
    assert!(
        worker
            .release_unheld(&[mine[0].claim.id])
            .expect("again")
            .is_empty()
    );
}

/// A job planned again (its watcher resumed it with new rules) carries its new plan, so a
/// worker claiming it meanwhile runs the new commands with their own product and checks.
pub(crate) fn a_replanned_job_carries_its_new_plan(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let (id, _) = enqueued(one(
        &mut *watcher,
        portable("review", "a.tif", version(1, 10), &[], None),
    ));
    let replan = Write::Replan {
        id,
        rule_hash: "h2".into(),
        steps: vec![vec!["ffmpeg".into(), "-y".into()]],
        output: None,
        plan: "{\"new\":1}".into(),
    };
    assert_eq!(one(&mut *watcher, replan), Answer::Ok);
    let got = b
        .queue("w")
        .claim_next(&ClaimFilter::default(), 1)
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].plan, "{\"new\":1}");
    assert_eq!(
        got[0].steps,
        [vec![OsString::from("ffmpeg"), OsString::from("-y")]]
    );
}

/// What a watcher reads for `stuck`: queued jobs of the rules named, due (not waiting out a
/// retry's backoff), under the roots it owns (of two nodes naming one root, its last
/// registrant), oldest first, at most the limit.
pub(crate) fn stuck_reads_due_jobs_of_its_rules_under_its_own_roots(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    q.register_roots(&[
        ("shots".into(), b.scratch().join("shots")),
        ("plates".into(), b.scratch().join("plates")),
    ])
    .expect("roots");
    let (first, _) = enqueued(one(q, enqueue("review", "a.tif", version(1, 1), false)));
    let (second, _) = enqueued(one(q, enqueue("review", "b.tif", version(2, 1), false)));
    enqueued(one(q, enqueue("other", "c.tif", version(3, 1), false)));
    let backing_off = claimed(q, "d.tif", version(4, 1));
    let retry = Ending::Retry {
        reason: "exited with status 1".into(),
        not_before: 4_102_444_800_000,
    };
    assert_eq!(finish(q, backing_off, retry), Answer::Ok);
    enqueued(one(q, enqueue("review", "e.tif", version(5, 1), true)));
    let mut plate = new_job("review", "p.dpx", version(6, 1));
    plate.input.root = "plates".into();
    let (on_plates, _) = enqueued(one(
        q,
        Write::Enqueue {
            job: Box::new(plate),
            claim: false,
        },
    ));
    let rules = ["review".to_string()];
    let now = crate::store::now_ms();
    let ids = |q: &dyn JobQueue, limit: usize| -> Vec<JobId> {
        let jobs = q.queued_due(&rules, now, limit).expect("queued");
        jobs.iter().map(|j| j.id).collect()
    };
    assert_eq!(
        ids(q, 100),
        [first, second, on_plates],
        "not another rule's, one backing off, nor a claimed one"
    );
    assert_eq!(ids(q, 2), [first, second], "the oldest, at most the limit");
    assert!(q.queued_due(&[], now, 100).expect("queued").is_empty());
    let due_later = q
        .queued_due(&rules, 4_102_444_800_000, 100)
        .expect("queued");
    assert_eq!(due_later.len(), 4, "due once its backoff is over");

    // Another watcher names its root `shots` too: those jobs are now its to report. It
    // registers in a later millisecond than `a` (its name, `b`, also wins a tie).
    let registered = crate::store::now_ms();
    while crate::store::now_ms() <= registered {
        std::thread::yield_now();
    }
    let mut other = b.queue("b");
    other
        .register_roots(&[("shots".into(), b.scratch().join("elsewhere"))])
        .expect("roots");
    assert_eq!(ids(q, 100), [on_plates]);
    assert_eq!(ids(&*other, 100), [first, second]);
}
