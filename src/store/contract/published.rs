//! Contract cases for a product an attempt published: which later attempts of the job may take
//! it as theirs (an interrupted or retried attempt under the same plan) and which may not (a
//! retry or a replan that changed the plan, after which the commands must run again).

use super::super::queue::{Answer, Claim, Delivered, Ending, JobQueue, Write};
use super::{Backend, enqueued, finish, new_job, one, version};
use crate::os::version::FileVersion;

/// Enqueues and claims a job whose product is `name` in the scratch folder, and publishes it.
fn published(b: &dyn Backend, q: &mut dyn JobQueue, rel: &str, name: &str) -> Claim {
    let mut job = new_job("review", rel, version(rel.len() as u64 + 40, 10));
    let product = b.scratch().join(name);
    job.output = Some(product.clone());
    let write = Write::Enqueue {
        job: Box::new(job),
        claim: true,
    };
    let claim = enqueued(one(q, write)).1.expect("claimed");
    std::fs::write(&product, name).expect("product");
    let v = FileVersion::of(&product).expect("file");
    q.publishing(claim, "review", &product, v, Delivered::Product)
        .expect("publishing");
    claim
}

/// The plan `new_job` gave the job with `name` as its product (its steps' temp names aside,
/// which differ from one daemon to the next), or the plan of a fixed rule.
fn replan(b: &dyn Backend, id: i64, name: &str, fixed: bool) -> Write {
    let mut job = new_job("review", "unused", version(1, 1));
    job.steps = vec![vec!["cp".into(), "-another-temp-name".into()]];
    if fixed {
        job.rule_hash = "h2".into();
    }
    Write::Replan {
        id,
        rule_hash: job.rule_hash,
        steps: job.steps,
        output: Some(b.scratch().join(name)),
        plan: job.plan,
    }
}

fn claim(q: &mut dyn JobQueue, id: i64) -> Claim {
    match one(q, Write::Claim { id }) {
        Answer::Claimed(claim) => claim,
        other => panic!("expected a claim of job {id}, got {other:?}"),
    }
}

/// `shotrouter retry` and a replan that changed the plan forget the product an earlier attempt
/// published, so the next attempt runs the (fixed) commands instead of only copying the old
/// product; an attempt queued again under the same plan (interrupted, retried after a failed
/// copy) still finds it.
pub(crate) fn only_the_same_plan_keeps_a_published_product(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let mut h = b.history();

    let retried = published(b, q, "a.tif", "a.mov");
    let failed = Ending::Failed {
        reason: "copy failed".into(),
    };
    assert_eq!(finish(q, retried, failed), Answer::Ok);
    assert_eq!(h.retry(&[retried.id], None).expect("retry"), [retried.id]);
    let next = claim(q, retried.id);
    assert_eq!(one(q, replan(b, retried.id, "a.mov", false)), Answer::Ok);
    assert_eq!(
        q.published_product(next).expect("read"),
        None,
        "a job `shotrouter retry` queued again runs its commands again"
    );

    let kept = published(b, q, "b.tif", "b.mov");
    let again = Ending::Retry {
        reason: "copy failed".into(),
        not_before: 0,
    };
    assert_eq!(finish(q, kept, again), Answer::Ok);
    let next = claim(q, kept.id);
    assert_eq!(one(q, replan(b, kept.id, "b.mov", false)), Answer::Ok);
    assert!(
        q.published_product(next).expect("read").is_some(),
        "the same plan keeps its product"
    );

    let fixed = published(b, q, "c.tif", "c.mov");
    assert_eq!(finish(q, fixed, Ending::Interrupted), Answer::Ok);
    let next = claim(q, fixed.id);
    assert_eq!(one(q, replan(b, fixed.id, "c.mov", true)), Answer::Ok);
    assert_eq!(
        q.published_product(next).expect("read"),
        None,
        "a changed plan runs its commands again"
    );
}

/// A copy's version is recorded as the job's delivery beside its product, until a product is
/// published again: after a `move:` the product is gone and the delivery tells it was made.
pub(crate) fn a_delivery_is_recorded_until_the_next_product(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let claim = published(b, q, "a.tif", "a.mov");
    let product = FileVersion::of(&b.scratch().join("a.mov")).expect("product");
    let copy = b.scratch().join("san-a.mov");
    std::fs::write(&copy, b"the movie, moved").expect("copy");
    let copied = FileVersion::of(&copy).expect("file");
    q.publishing(claim, "review", &copy, copied, Delivered::Copy)
        .expect("the copy's publishing");
    let recorded = q
        .published_product(claim)
        .expect("read")
        .expect("published");
    assert!(recorded.product.is_same_as(&product), "{recorded:?}");
    assert!(
        recorded.delivered.is_some_and(|d| d.is_same_as(&copied)),
        "the copy is the job's delivery: {recorded:?}"
    );
    q.publishing(
        claim,
        "review",
        &b.scratch().join("a.mov"),
        product,
        Delivered::Product,
    )
    .expect("published again");
    let recorded = q
        .published_product(claim)
        .expect("read")
        .expect("published");
    assert_eq!(recorded.delivered, None, "a new product, not yet delivered");
}
