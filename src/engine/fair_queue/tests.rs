use super::*;
use std::time::Duration;

fn pending(rule: &str, n: u32) -> Pending {
    Pending {
        id: None,
        spec: JobSpec {
            id: format!("{rule}-{n}"),
            rule: rule.into(),
            path: format!("/x/{n}").into(),
            plan: crate::exec::plan::JobPlan::default(),
            allowed_roots: Vec::new(),
            log_path: "/dev/null".into(),
            attempt: 1,
            claim: None,
        },
    }
}

fn ids(picked: &[Pending]) -> Vec<&str> {
    picked.iter().map(|p| p.spec.id.as_str()).collect()
}

#[test]
fn rules_take_turns_within_the_slots() {
    let mut queue = FairQueue::new(2, HashMap::new());
    for n in 0..3 {
        queue.push(pending("frames", n));
    }
    queue.push(pending("san", 0));
    let now = Instant::now();
    let picked: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    // Four slots: two workers and two claimed jobs ready.
    assert_eq!(ids(&picked), ["frames-0", "san-0", "frames-1", "frames-2"]);
    assert!(queue.pick(now).is_none(), "slots are full");
    queue.release("frames");
    assert!(queue.pick(now).is_none(), "nothing left to pick");
}

#[test]
fn a_rule_limit_holds_and_a_release_frees_a_slot() {
    let mut queue = FairQueue::new(4, HashMap::from([("encode".to_string(), 1)]));
    queue.push(pending("encode", 0));
    queue.push(pending("encode", 1));
    let now = Instant::now();
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("encode-0")
    );
    assert!(queue.pick(now).is_none(), "concurrency: 1");
    assert!(!queue.has_slot_now("encode"));
    queue.release("encode");
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("encode-1")
    );
}

#[test]
fn prefetch_is_at_least_one_per_worker_and_bounded() {
    let mut queue = FairQueue::new(2, HashMap::new());
    for n in 0..400 {
        queue.push(pending("r", n));
    }
    let now = Instant::now();
    queue.set_prefetch(0);
    assert_eq!(std::iter::from_fn(|| queue.pick(now)).count(), 4);
    queue.set_prefetch(30);
    assert_eq!(std::iter::from_fn(|| queue.pick(now)).count(), 28);
    queue.set_prefetch(10_000);
    assert_eq!(
        std::iter::from_fn(|| queue.pick(now)).count(),
        2 + MAX_PREFETCH - 32
    );
}

#[test]
fn delayed_jobs_wait_for_their_time() {
    let mut queue = FairQueue::new(1, HashMap::new());
    let now = Instant::now();
    queue.delay(pending("r", 0), now + Duration::from_secs(5));
    assert_eq!(queue.next_delayed(), Some(now + Duration::from_secs(5)));
    assert!(queue.pick(now).is_none());
    assert!(queue.pick(now + Duration::from_secs(5)).is_some());
}

#[test]
fn held_jobs_are_those_only_a_pause_or_a_closed_window_keeps() {
    let mut queue = FairQueue::new(1, HashMap::new());
    for (rule, n, id) in [
        ("night", 0, 1),
        ("night", 1, 2),
        ("copy", 2, 3),
        ("any", 3, 4),
    ] {
        let mut job = pending(rule, n);
        job.id = Some(id);
        queue.push(job);
    }
    queue.delay(pending("night", 9), Instant::now() + Duration::from_secs(5));
    assert!(queue.held().is_empty());
    queue.set_closed(["night".to_string()].into());
    queue.set_paused(false, ["copy".to_string()].into());
    assert!(queue.run_now(2));
    assert_eq!(
        queue.held(),
        [("copy", true, 1), ("night", false, 1)],
        "the job run now and the retry are not held"
    );
    queue.set_paused(true, HashSet::new());
    assert_eq!(
        queue.held(),
        [("any", true, 1), ("copy", true, 1), ("night", true, 2)],
        "a paused node holds everything"
    );
}

#[test]
fn a_new_job_takes_a_slot_at_once_only_when_none_of_its_rule_waits() {
    let mut queue = FairQueue::new(1, HashMap::new());
    assert!(queue.has_slot_now("r"));
    queue.push(pending("r", 0));
    assert!(
        !queue.has_slot_now("r"),
        "it would overtake the waiting one"
    );
    assert!(queue.has_slot_now("other"));
}

#[test]
fn farm_jobs_take_the_farms_slots_not_this_nodes() {
    let mut queue = FairQueue::new(1, HashMap::new());
    queue.set_farm(HashSet::from(["render".to_string()]), 3);
    for n in 0..5 {
        queue.push(pending("render", n));
        queue.push(pending("local", n));
    }
    let now = Instant::now();
    let picked: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    let farm = picked.iter().filter(|p| p.spec.rule == "render").count();
    let local = picked.len() - farm;
    // Three in flight on the farm; this node's one worker plus one ready.
    assert_eq!((farm, local), (3, 2), "{:?}", ids(&picked));
    // A reload moves the rule off the farm: its slots still go back to the farm's lane.
    queue.set_farm(HashSet::new(), 3);
    for _ in 0..3 {
        queue.release("render");
    }
    queue.set_farm(HashSet::from(["render".to_string()]), 3);
    let again: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    assert_eq!(
        again.iter().filter(|p| p.spec.rule == "render").count(),
        2,
        "{:?}",
        ids(&again)
    );
}

#[test]
fn a_higher_priority_starts_first_and_rules_of_one_priority_take_turns() {
    let mut queue = FairQueue::new(3, HashMap::new());
    queue.set_priorities(HashMap::from([("urgent".to_string(), 10)]));
    for n in 0..2 {
        queue.push(pending("frames", n));
        queue.push(pending("san", n));
    }
    for n in 0..2 {
        queue.push(pending("urgent", n));
    }
    let now = Instant::now();
    let picked: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    assert_eq!(
        ids(&picked),
        [
            "urgent-0", "urgent-1", "frames-0", "san-0", "frames-1", "san-1"
        ]
    );
}

#[test]
fn a_bumped_job_goes_ahead_of_its_rule_and_of_others() {
    let mut queue = FairQueue::new(1, HashMap::new());
    let with_id = |rule: &str, n: u32, id: JobId| Pending {
        id: Some(id),
        ..pending(rule, n)
    };
    queue.push(with_id("frames", 0, 1));
    queue.push(with_id("frames", 1, 2));
    queue.push(with_id("san", 0, 3));
    assert!(queue.set_priority(2, 5), "held here");
    assert!(!queue.set_priority(99, 5), "not held here");
    let now = Instant::now();
    let picked: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    // Two slots (one worker, one ready); after the bumped job, the rules take turns again.
    assert_eq!(ids(&picked), ["frames-1", "san-0"]);
    queue.release("frames");
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("frames-0")
    );
}

#[test]
fn a_closed_rule_waits_except_the_jobs_run_now_and_a_paused_one_waits_for_all() {
    let mut queue = FairQueue::new(4, HashMap::new());
    let with_id = |rule: &str, n: u32, id: JobId| Pending {
        id: Some(id),
        ..pending(rule, n)
    };
    for n in 0..3 {
        queue.push(with_id("night", n, JobId::from(n + 1)));
    }
    queue.push(with_id("san", 0, 10));
    assert!(queue.set_closed(HashSet::from(["night".to_string()])));
    assert!(
        !queue.has_slot_now("night"),
        "a closed rule's new job waits"
    );
    let now = Instant::now();
    assert_eq!(queue.pick(now).map(|p| p.spec.id).as_deref(), Some("san-0"));
    assert!(queue.pick(now).is_none(), "the closed rule's jobs wait");
    assert!(queue.run_now(2));
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("night-1")
    );
    assert!(queue.pick(now).is_none(), "only the job run now went");
    assert!(queue.set_paused(false, HashSet::from(["night".to_string()])));
    assert!(queue.set_closed(HashSet::new()));
    assert!(queue.pick(now).is_none(), "a paused rule's jobs wait");
    assert!(queue.set_paused(false, HashSet::new()));
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("night-0")
    );
}

#[test]
fn a_job_whose_farm_task_still_runs_is_taken_first_though_paused_closed_or_the_lane_full() {
    let mut queue = FairQueue::new(1, HashMap::new());
    queue.set_farm(
        HashSet::from(["render".to_string(), "urgent".to_string()]),
        1,
    );
    queue.set_priorities(HashMap::from([("urgent".to_string(), 10)]));
    let with_id = |rule: &str, n: u32, id: JobId| Pending {
        id: Some(id),
        ..pending(rule, n)
    };
    queue.push(with_id("urgent", 0, 1));
    for n in 0..3 {
        queue.push(with_id("render", n, JobId::from(n + 10)));
    }
    // After a restart: two of render's tasks are still on the farm, the rule is paused and
    // outside its window, and a higher priority waits.
    queue.follow([11, 12]);
    assert!(queue.set_paused(false, HashSet::from(["render".to_string()])));
    assert!(queue.set_closed(HashSet::from(["render".to_string()])));
    let now = Instant::now();
    let picked: Vec<Pending> = std::iter::from_fn(|| queue.pick(now)).collect();
    assert_eq!(
        ids(&picked),
        ["render-1", "render-2"],
        "adopted, nothing new"
    );
    queue.release("render");
    queue.release("render");
    assert_eq!(
        queue.pick(now).map(|p| p.spec.id).as_deref(),
        Some("urgent-0")
    );
    assert!(
        queue.pick(now).is_none(),
        "the paused rule's other job waits"
    );
}
