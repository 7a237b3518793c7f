//! Contract cases for what people change about when queued jobs start: priorities, bumps and
//! pauses.

use super::super::control::{Bump, PauseTarget};
use super::super::queue::{ClaimFilter, ClaimedJob, NewJob, Write};
use super::*;

fn prioritised(rel: &str, ino: u64, priority: i32) -> Write {
    let mut job: NewJob = new_job("review", rel, version(ino, 10));
    job.plan = format!("{{\"rel\":\"{rel}\"}}");
    job.priority = priority;
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

/// Claims take higher priorities first, in id order within one; a bump changes a queued
/// job's place (`--top`: above every queued job), shows in the poll of queued jobs, and leaves
/// jobs that are not queued alone.
pub(crate) fn claims_follow_priority_and_bumps(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let answers = watcher
        .commit(&[
            prioritised("low.tif", 1, -5),
            prioritised("a.tif", 2, 0),
            prioritised("b.tif", 3, 0),
            prioritised("high.tif", 4, 10),
        ])
        .expect("commit");
    let ids: Vec<JobId> = answers.into_iter().map(|a| enqueued(a).0).collect();
    let mut worker = b.queue("worker");
    let first = worker
        .claim_next(&ClaimFilter::default(), 2)
        .expect("claim");
    assert_eq!(rels(&first), ["high.tif", "a.tif"]);

    let mut h = b.history();
    let cursor = watcher
        .queued_since(-1)
        .expect("queued")
        .iter()
        .map(|j| j.cursor)
        .max()
        .unwrap_or(0);
    let bumped = h
        .bump(&[ids[0], ids[0], first[0].claim.id], Bump::Top)
        .expect("bump");
    assert_eq!(
        bumped,
        [(ids[0], 1)],
        "once, queued jobs only, above the queued ones (the 10 is claimed)"
    );
    let seen = watcher.queued_since(cursor).expect("poll");
    assert_eq!(
        seen.iter().map(|j| (j.id, j.priority)).collect::<Vec<_>>(),
        [(ids[0], 1)],
        "the watcher's poll sees the bump"
    );
    assert_eq!(
        h.bump(&[ids[2]], Bump::To(-10)).expect("bump"),
        [(ids[2], -10)]
    );
    assert_eq!(
        h.job(ids[2]).expect("job").expect("there").row.priority,
        -10,
        "`job` and `jobs` show a job's priority"
    );
    let next = worker
        .claim_next(&ClaimFilter::default(), 5)
        .expect("claim");
    assert_eq!(rels(&next), ["low.tif", "b.tif"]);
    assert!(
        h.bump(&[ids[1]], Bump::To(1)).expect("bump").is_empty(),
        "a claimed job is not queued"
    );
}

/// A paused node claims nothing; a paused rule's jobs are claimed by no node; both are listed
/// (by `status` and for the watcher) until resumed, and pausing twice changes nothing.
pub(crate) fn pauses_hold_claims_until_resumed(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let answers = watcher
        .commit(&[prioritised("a.tif", 1, 0), prioritised("b.tif", 2, 0)])
        .expect("commit");
    assert!(answers.iter().all(|a| matches!(a, Answer::Enqueued { .. })));
    let mut archive: NewJob = new_job("archive", "c.tif", version(3, 10));
    archive.plan = "{}".into();
    let (archived, _) = enqueued(one(
        &mut *watcher,
        Write::Enqueue {
            job: Box::new(archive),
            claim: false,
        },
    ));
    let mut h = b.history();
    let node = PauseTarget::Node("render07".into());
    let rule = PauseTarget::Rule("review".into());
    assert!(h.set_paused(&node, true).expect("pause"));
    assert!(!h.set_paused(&node, true).expect("again"), "already paused");
    assert!(h.set_paused(&rule, true).expect("pause"));
    let listed = watcher.paused().expect("paused");
    assert!(
        listed.contains(&node) && listed.contains(&rule),
        "{listed:?}"
    );
    // `jobs` and `job` say why: the paused rule's jobs, not the others.
    let queued = h
        .jobs(&crate::store::history::JobFilter {
            status: Some(crate::store::Status::Queued),
            limit: 10,
            ..Default::default()
        })
        .expect("jobs");
    let why: Vec<(&str, Option<&str>)> = queued
        .iter()
        .map(|r| (r.rule.as_str(), r.result.as_deref()))
        .collect();
    let reason = super::super::control::paused_reason("review");
    assert_eq!(
        why,
        [
            ("archive", None),
            ("review", Some(reason.as_str())),
            ("review", Some(reason.as_str()))
        ]
    );
    let detail = h.job(archived).expect("job").expect("there");
    assert_eq!((detail.row.result, detail.row.priority), (None, 0));
    let status = h.status().expect("status");
    assert_eq!(
        status
            .paused
            .iter()
            .map(|p| p.target.clone())
            .collect::<Vec<_>>(),
        [node.clone(), rule.clone()]
    );
    let mut paused = b.queue("render07");
    assert!(
        paused
            .claim_next(&ClaimFilter::default(), 10)
            .expect("claim")
            .is_empty()
    );
    let mut other = b.queue("render08");
    paused.register_node("worker", 30_000, &[]).expect("role");
    other.register_node("worker", 30_000, &[]).expect("role");
    let flags = |h: &dyn JobHistory| {
        let mut flags: Vec<(String, bool)> = h
            .status()
            .expect("status")
            .nodes
            .into_iter()
            .map(|n| (n.name, n.paused))
            .collect();
        flags.sort();
        flags
    };
    assert_eq!(
        flags(&*h),
        [("render07".into(), true), ("render08".into(), false)],
        "each node says whether it is paused"
    );
    let got = other
        .claim_next(&ClaimFilter::default(), 10)
        .expect("claim");
    assert_eq!(
        got.iter().map(|c| c.claim.id).collect::<Vec<_>>(),
        [archived],
        "the paused rule's jobs stay queued"
    );
    assert!(h.set_paused(&rule, false).expect("resume"));
    assert!(!h.set_paused(&rule, false).expect("again"), "not paused");
    assert!(
        paused
            .claim_next(&ClaimFilter::default(), 10)
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        rels(
            &other
                .claim_next(&ClaimFilter::default(), 10)
                .expect("claim")
        ),
        ["a.tif", "b.tif"]
    );
    assert!(h.set_paused(&node, false).expect("resume"));
    assert!(h.status().expect("status").paused.is_empty());
    assert_eq!(
        flags(&*h),
        [("render07".into(), false), ("render08".into(), false)]
    );
}

/// `run_now` marks queued jobs only, once, and the watcher's poll sees the mark.
pub(crate) fn run_now_marks_queued_jobs_for_the_watcher(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let answers = watcher
        .commit(&[prioritised("a.tif", 1, 0), prioritised("b.tif", 2, 0)])
        .expect("commit");
    let ids: Vec<JobId> = answers.into_iter().map(|a| enqueued(a).0).collect();
    let mut worker = b.queue("worker");
    let claimed = worker
        .claim_next(&ClaimFilter::default(), 1)
        .expect("claim");
    assert_eq!(rels(&claimed), ["a.tif"]);
    let mut h = b.history();
    assert_eq!(
        h.run_now(&[ids[1], ids[1], ids[0]]).expect("run now"),
        [ids[1]],
        "once, and not the claimed job"
    );
    // The engine's own jobs are at 0 in the poll; the mark moves the job past it.
    let seen = watcher.queued_since(0).expect("poll");
    assert_eq!(
        seen.iter().map(|j| (j.id, j.run_now)).collect::<Vec<_>>(),
        [(ids[1], true)]
    );
}

/// `status` lists queued jobs whose tags no live node holds, until a node with them registers.
pub(crate) fn jobs_no_live_node_can_take_are_listed(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    watcher.register_node("watcher", 30_000, &[]).expect("role");
    let mut gpu: NewJob = new_job("grade", "a.exr", version(1, 10));
    gpu.tags = vec!["gpu".into(), "linux".into()];
    gpu.plan = "{}".into();
    let mut plain: NewJob = new_job("copy", "b.exr", version(2, 10));
    plain.plan = "{}".into();
    for job in [gpu.clone(), plain] {
        let write = Write::Enqueue {
            job: Box::new(job),
            claim: false,
        };
        assert!(matches!(one(&mut *watcher, write), Answer::Enqueued { .. }));
    }
    let h = b.history();
    let waits = h.status().expect("status").waiting_for_tags;
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(
        (waits[0].jobs, waits[0].reason.as_str()),
        (1, "waiting for a node with tags gpu, linux")
    );
    assert_eq!(waits[0].ids.len(), 1);
    let row = h.job(waits[0].ids[0]).expect("job").expect("exists").row;
    assert_eq!(
        (row.rule.as_str(), row.result.as_deref()),
        ("grade", Some("waiting for a node with tags gpu, linux")),
        "the job says why it waits"
    );
    let listed = h
        .jobs(&crate::store::history::JobFilter {
            limit: 10,
            ..Default::default()
        })
        .expect("jobs");
    let results: Vec<_> = listed.iter().map(|r| r.result.as_deref()).collect();
    assert_eq!(
        results,
        [None, Some("waiting for a node with tags gpu, linux")],
        "newest first; the untagged job has no reason"
    );
    let mut half = b.queue("half");
    half.register_node("worker", 30_000, &["gpu".into()])
        .expect("role");
    assert_eq!(h.status().expect("status").waiting_for_tags.len(), 1);
    let mut full = b.queue("full");
    full.register_node(
        "worker",
        30_000,
        &["linux".into(), "gpu".into(), "x".into()],
    )
    .expect("role");
    assert!(h.status().expect("status").waiting_for_tags.is_empty());
}

/// A reason the watcher holds a queued job with shows in `jobs`; one that names a window is
/// counted per rule by `status`; a cleared one is gone.
pub(crate) fn held_jobs_say_why_and_status_counts_windows(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let answers = watcher
        .commit(&[prioritised("a.tif", 1, 0), prioritised("b.tif", 2, 0)])
        .expect("commit");
    let ids: Vec<JobId> = answers.into_iter().map(|a| enqueued(a).0).collect();
    let reason = format!("{}19:00–07:00", super::super::control::WINDOW_REASON);
    let hold = |id: JobId, reason: Option<&str>| Write::Hold {
        id,
        reason: reason.map(str::to_string),
    };
    watcher
        .commit(&[hold(ids[0], Some(&reason)), hold(ids[1], Some(&reason))])
        .expect("hold");
    let h = b.history();
    let status = h.status().expect("status");
    assert_eq!(
        status
            .waiting_for_window
            .iter()
            .map(|w| (w.rule.as_str(), w.jobs, w.reason.as_str()))
            .collect::<Vec<_>>(),
        [("review", 2, reason.as_str())]
    );
    watcher.commit(&[hold(ids[1], None)]).expect("clear");
    let job = h.job(ids[1]).expect("job").expect("there");
    assert_eq!(job.row.result, None, "a cleared reason is gone");
    let job = h.job(ids[0]).expect("job").expect("there");
    assert_eq!(job.row.result.as_deref(), Some(reason.as_str()));
    assert_eq!(h.status().expect("status").waiting_for_window[0].jobs, 1);
    // A whole rule at once: every queued job but those run now; cleared, only that reason goes.
    let mut h = b.history();
    assert_eq!(h.run_now(&[ids[1]]).expect("run now"), [ids[1]]);
    let rule = |reason: Option<&str>| Write::HoldRule {
        rule: "review".into(),
        reason: reason.map(str::to_string),
    };
    watcher.commit(&[hold(ids[0], None)]).expect("clear");
    watcher
        .commit(&[rule(Some(&reason))])
        .expect("hold the rule");
    let result = |id: JobId| h.job(id).expect("job").expect("there").row.result;
    assert_eq!(result(ids[0]).as_deref(), Some(reason.as_str()));
    assert_eq!(result(ids[1]), None, "run now: not held");
    watcher
        .commit(&[hold(ids[1], Some("another reason"))])
        .expect("hold");
    watcher.commit(&[rule(None)]).expect("clear the rule");
    assert_eq!(result(ids[0]), None);
    assert_eq!(result(ids[1]).as_deref(), Some("another reason"));
}

/// The windows a watcher records beside each rule's work hash read back for workers, and a
/// claim skips the jobs of the rules it is told are closed, except those marked run-now.
pub(crate) fn closed_windows_hold_claims_but_run_now(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let defs = vec![
        super::lineage::def("review", "w1", "19:00-07:00,12:00-13:00"),
        super::lineage::def("copy", "w1", ""),
    ];
    assert_eq!(one(&mut *watcher, Write::RuleDefs { defs }), Answer::Ok);
    assert_eq!(
        watcher.rule_windows().expect("windows"),
        [("review".to_string(), "19:00-07:00,12:00-13:00".to_string())],
        "only windowed rules"
    );
    let defs = vec![super::lineage::def("review", "w1", "19:00-07:00")];
    assert_eq!(one(&mut *watcher, Write::RuleDefs { defs }), Answer::Ok);
    assert_eq!(
        watcher.rule_windows().expect("windows"),
        [("review".to_string(), "19:00-07:00".to_string())],
        "a reload's windows replace the old"
    );

    let answers = watcher
        .commit(&[prioritised("a.tif", 1, 0), prioritised("b.tif", 2, 0)])
        .expect("commit");
    let ids: Vec<JobId> = answers.into_iter().map(|a| enqueued(a).0).collect();
    let mut copy: NewJob = new_job("copy", "c.tif", version(3, 10));
    copy.plan = "{}".into();
    let write = Write::Enqueue {
        job: Box::new(copy),
        claim: false,
    };
    assert!(matches!(one(&mut *watcher, write), Answer::Enqueued { .. }));
    let closed = ClaimFilter {
        closed_rules: vec!["review".into()],
        ..ClaimFilter::default()
    };
    let mut worker = b.queue("worker");
    assert_eq!(
        rels(&worker.claim_next(&closed, 10).expect("claim")),
        ["c.tif"],
        "the closed rule's jobs stay queued"
    );
    assert!(worker.claim_next(&closed, 10).expect("claim").is_empty());
    let mut h = b.history();
    assert_eq!(h.run_now(&[ids[1]]).expect("run now"), [ids[1]]);
    assert_eq!(
        rels(&worker.claim_next(&closed, 10).expect("claim")),
        ["b.tif"],
        "run-now lets one through"
    );
    assert!(worker.claim_next(&closed, 10).expect("claim").is_empty());
    assert_eq!(
        rels(
            &worker
                .claim_next(&ClaimFilter::default(), 10)
                .expect("claim")
        ),
        ["a.tif"],
        "claimed once its window opens"
    );
    assert_eq!(status_of(&*h, ids[0]), "claimed");
}

/// A job of `rule` at `priority` needing `tags`.
fn ranked(rule: &str, rel: &str, ino: u64, priority: i32, tags: &[&str]) -> Write {
    let mut job: NewJob = new_job(rule, rel, version(ino, 10));
    job.plan = format!("{{\"rel\":\"{rel}\"}}");
    job.priority = priority;
    job.tags = tags.iter().map(|t| t.to_string()).collect();
    Write::Enqueue {
        job: Box::new(job),
        claim: false,
    }
}

/// A claim reads the queue in pages: past more than a page of jobs it may not take (a closed
/// rule's, tags it lacks) within one priority and across priorities, it still takes higher
/// priorities first and ids in order within one, and a closed rule's run-now job.
pub(crate) fn claim_pages_keep_priority_order_past_jobs_not_taken(b: &dyn Backend) {
    let mut watcher = b.queue("watcher");
    let mut writes = vec![ranked("review", "a0.tif", 1, 0, &[])];
    writes.extend((0..600).map(|i| ranked("night", &format!("n{i}.tif"), 10 + i, 5, &[])));
    writes.extend((0..600).map(|i| ranked("gpu", &format!("g{i}.exr"), 1_000 + i, 5, &["gpu"])));
    writes.push(ranked("review", "h5.tif", 2, 5, &[]));
    let run_at = writes.len();
    writes.push(ranked("night", "run.tif", 3, 5, &[]));
    writes.push(ranked("review", "low.tif", 4, -3, &[]));
    writes.extend((0..600).map(|i| ranked("gpu", &format!("z{i}.exr"), 2_000 + i, 0, &["gpu"])));
    writes.push(ranked("review", "b0.tif", 5, 0, &[]));
    let answers = watcher.commit(&writes).expect("commit");
    let run = enqueued(answers[run_at].clone()).0;
    assert_eq!(b.history().run_now(&[run]).expect("run now"), [run]);
    let closed = ClaimFilter {
        closed_rules: vec!["night".into()],
        ..ClaimFilter::default()
    };
    let mut worker = b.queue("worker");
    assert_eq!(
        rels(&worker.claim_next(&closed, 3).expect("claim")),
        ["h5.tif", "run.tif", "a0.tif"]
    );
    assert_eq!(
        rels(&worker.claim_next(&closed, 10).expect("claim")),
        ["b0.tif", "low.tif"]
    );
    assert!(worker.claim_next(&closed, 10).expect("claim").is_empty());
}
