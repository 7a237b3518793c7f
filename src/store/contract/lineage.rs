//! Contract cases for declared inputs and lineage: waiting jobs, their release and give-up,
//! what a run used, new versions of inputs and their users, reruns by job, rules' work
//! hashes; and the queries on them (`lineage`, `stale`, `rerun --stale`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::super::lineage::{Direction, LineageEdge, RunUse, UsedInput, UsedProgram, WaitFor};
use super::super::queue::{Answer, Claim, Delivered, Ending, JobQueue, RuleDef, Write};
use super::super::{JobId, history::JobFilter};
use super::{Backend, at, enqueue, enqueued, finish, new_job, one, queued_ids, status_of, version};
use crate::os::version::FileVersion;

fn waiting_job(rel: &str, v: FileVersion, input: &Path) -> Write {
    let mut job = new_job("review", rel, v);
    job.waiting = Some(WaitFor {
        inputs: vec![input.to_path_buf()],
        until_ms: 4_102_444_800_000,
    });
    Write::Enqueue {
        job: Box::new(job),
        claim: true,
    }
}

fn used(claim: Claim, inputs: &[(&Path, FileVersion)], work_hash: &str) -> Write {
    Write::Used {
        claim,
        used: Box::new(RunUse {
            inputs: inputs
                .iter()
                .map(|(path, v)| UsedInput {
                    path: path.to_path_buf(),
                    version: *v,
                    hash: Some("xxh64:0123456789abcdef".into()),
                })
                .collect(),
            programs: vec![UsedProgram {
                path: "/usr/bin/ffmpeg".into(),
                version: Some("ffmpeg version 5.1.6".into()),
            }],
            work_hash: work_hash.into(),
        }),
    }
}

/// Enqueues and claims a job of `rule` on `rel`.
fn claim(q: &mut dyn JobQueue, rule: &str, rel: &str, v: FileVersion) -> Claim {
    let (_, claim) = enqueued(one(q, enqueue(rule, rel, v, true)));
    claim.expect("claim granted")
}

/// A done run of `claim` that read `inputs` and published `product`.
fn ran(
    q: &mut dyn JobQueue,
    claim: Claim,
    rule: &str,
    inputs: &[(&Path, FileVersion)],
    product: &Path,
    v: FileVersion,
    what: Delivered,
) {
    assert_eq!(one(q, used(claim, inputs, "w1")), Answer::Ok);
    q.publishing(claim, rule, product, v, what)
        .expect("publishing");
    assert_eq!(finish(q, claim, Ending::Done), Answer::Ok);
}

/// A run's `Used` and its end in one commit, as the engine writes every successful end,
/// answer and record as they do in two; a stale claim records neither.
pub(crate) fn used_and_its_end_in_one_commit(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    q.register_roots(&[("shots".into(), b.scratch().join("shots"))])
        .expect("roots");
    let lut = b.scratch().join("shots/luts/show.cube");
    let done = claim(q, "review", "a.tif", version(1, 10));
    let answers = q
        .commit(&[
            used(done, &[(&lut, version(50, 100))], "w1"),
            Write::Finish {
                claim: done,
                ending: Ending::Done,
            },
        ])
        .expect("commit");
    assert_eq!(answers, [Answer::Ok, Answer::Ok]);
    let h = b.history();
    let detail = h.job(done.id).expect("read").expect("exists");
    assert_eq!(detail.row.status, "done");
    let record = detail.used.expect("a run record");
    assert_eq!(record.work_hash.as_deref(), Some("w1"));
    assert_eq!(record.programs.len(), 1);
    assert_eq!(record.inputs.len(), 1);
    assert!(record.inputs[0].path.ends_with("show.cube"));

    let stale = Claim {
        token: done.token + 1,
        ..claim(q, "review", "b.tif", version(2, 10))
    };
    let answers = q
        .commit(&[
            used(stale, &[(&lut, version(50, 100))], "w2"),
            Write::Finish {
                claim: stale,
                ending: Ending::Done,
            },
        ])
        .expect("commit");
    assert_eq!(answers[0], Answer::NotClaimable);
    assert!(matches!(answers[1], Answer::Stale { .. }), "{answers:?}");
    let detail = h.job(stale.id).expect("read").expect("exists");
    assert_eq!(detail.row.status, "claimed");
    let record = detail.used.unwrap_or_default();
    assert_eq!((record.work_hash, record.inputs.len()), (None, 0));
}

/// A waiting job is not claimable; released, it is queued where every node's poll sees it;
/// given up on, it fails saying why; a queued job planned again may wait.
pub(crate) fn waiting_jobs_are_released_or_given_up(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    let lut = b.scratch().join("shots/luts/show.cube");
    let (id, claim) = enqueued(one(q, waiting_job("a.tif", version(1, 10), &lut)));
    assert_eq!(claim, None, "a waiting job is not claimed with its enqueue");
    let h = b.history();
    assert_eq!(status_of(&*h, id), "waiting");
    assert_eq!(one(q, Write::Claim { id }), Answer::NotClaimable);
    assert!(!queued_ids(q, -1).contains(&id));
    let waiting = q.waiting_jobs().expect("waiting");
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].id, &waiting[0].input), (id, &at("a.tif")));
    assert_eq!(waiting[0].wait.inputs, std::slice::from_ref(&lut));
    assert_eq!(h.status().expect("status").waiting, 1);

    assert_eq!(one(q, Write::Release { id }), Answer::Ok);
    assert_eq!(
        queued_ids(q, 0),
        [id],
        "seen by queued_since, as others' jobs are"
    );
    assert_eq!(one(q, Write::Release { id }), Answer::NotClaimable);
    assert!(q.waiting_jobs().expect("waiting").is_empty());
    assert!(matches!(one(q, Write::Claim { id }), Answer::Claimed(_)));

    let (given_up, _) = enqueued(one(q, waiting_job("b.tif", version(2, 10), &lut)));
    let reason = "`show.cube` never came (waited 1h)".to_string();
    let give_up = Write::GiveUp {
        id: given_up,
        reason: reason.clone(),
    };
    assert_eq!(one(q, give_up.clone()), Answer::Ok);
    let detail = h.job(given_up).expect("read").expect("exists");
    assert_eq!(detail.row.status, "failed");
    assert_eq!(detail.row.result.as_deref(), Some(reason.as_str()));
    assert_eq!(one(q, give_up), Answer::NotClaimable, "only a waiting job");

    let (queued, _) = enqueued(one(q, enqueue("review", "c.tif", version(3, 10), false)));
    let wait = WaitFor {
        inputs: vec![lut],
        until_ms: 4_102_444_800_000,
    };
    let write = Write::Wait {
        id: queued,
        wait: wait.clone(),
    };
    assert_eq!(one(q, write.clone()), Answer::Ok);
    assert_eq!(status_of(&*h, queued), "waiting");
    let detail = h.job(queued).expect("read").expect("exists");
    assert_eq!(detail.row.result, Some(wait.describe()));
    assert_eq!(one(q, write), Answer::NotClaimable, "already waiting");
}

/// What a run used is recorded; a new version of an input names the jobs whose last done run
/// read another one, never the job that read this one; a rerun by job queues a new
/// generation unless one is unfinished.
pub(crate) fn used_inputs_and_their_new_versions(b: &dyn Backend) {
    let mut q = b.queue("a");
    let q = &mut *q;
    q.register_roots(&[("shots".into(), b.scratch().join("shots"))])
        .expect("roots");
    let lut = b.scratch().join("shots/luts/show.cube");
    let (v1, v2) = (version(50, 100), version(51, 100));
    let old = claim(q, "review", "a.tif", version(1, 10));
    ran(
        q,
        old,
        "review",
        &[(&lut, v1)],
        &b.scratch().join("shots/a.mov"),
        version(60, 1),
        Delivered::Product,
    );
    assert_eq!(q.declared_inputs().expect("inputs"), [at("luts/show.cube")]);
    let new = claim(q, "review", "b.tif", version(2, 10));
    ran(
        q,
        new,
        "review",
        &[(&lut, v2)],
        &b.scratch().join("shots/b.mov"),
        version(61, 1),
        Delivered::Product,
    );
    let seen = Write::InputSeen {
        path: lut.clone(),
        version: v2,
    };
    assert_eq!(
        one(q, seen),
        Answer::Users(vec![(old.id, "review".into())]),
        "the job that read v2 is not a user of an older version"
    );
    let h = b.history();
    let before = h
        .jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .expect("jobs")
        .len();
    assert_eq!(one(q, Write::Rerun { ids: vec![old.id] }), Answer::Ok);
    let jobs = h
        .jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .expect("jobs");
    assert_eq!(jobs.len(), before + 1);
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].rule.as_str()),
        ("queued", "review")
    );
    assert!(jobs[0].path.ends_with("a.tif"));
    assert_eq!(one(q, Write::Rerun { ids: vec![old.id] }), Answer::Ok);
    let again = h
        .jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .expect("jobs");
    assert_eq!(
        again.len(),
        before + 1,
        "an unfinished job is there already"
    );
}

/// A name no shell or terminal takes as it is.
fn hostile(dir: &Path) -> PathBuf {
    dir.join(OsString::from_vec(
        b"sh010 beauty 'v001' \"$(x)\"\n\xff.mov".to_vec(),
    ))
}

/// The chain of the example show: a render's frames and a LUT make a review movie, which a
/// second rule copies to the SAN (outside every root, under a hostile name).
struct Chain {
    frames: PathBuf,
    lut: PathBuf,
    movie: PathBuf,
    san: PathBuf,
    review: Claim,
    copy: Claim,
}

fn chain(b: &dyn Backend, q: &mut dyn JobQueue) -> Chain {
    let shots = b.scratch().join("shots");
    q.register_roots(&[("shots".into(), shots.clone())])
        .expect("roots");
    let frames_rel = "sh010/renders/beauty/sh010_beauty_v001.####.tif";
    let lut = shots.join("luts/show 'grade'.cube");
    let movie_rel = "sh010/review/sh010_beauty_v001.mov";
    let movie = shots.join(movie_rel);
    let san = hostile(&b.scratch().join("san"));
    let review = claim(q, "review", frames_rel, version(1, 10));
    ran(
        q,
        review,
        "review",
        &[(&lut, version(50, 100))],
        &movie,
        version(60, 1),
        Delivered::Product,
    );
    let copy = claim(q, "copy-to-san", movie_rel, version(60, 1));
    ran(
        q,
        copy,
        "copy-to-san",
        &[],
        &san,
        version(70, 1),
        Delivered::Copy,
    );
    Chain {
        frames: shots.join(frames_rel),
        lut,
        movie,
        san,
        review,
        copy,
    }
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// (depth, input, role, job, product, changed) of each edge, for comparing.
fn edges(found: &[LineageEdge]) -> Vec<(u32, String, &'static str, JobId, String, bool)> {
    let mut all: Vec<_> = found
        .iter()
        .map(|e| {
            (
                e.depth,
                e.input.clone(),
                e.role,
                e.job,
                e.product.clone(),
                e.input_changed,
            )
        })
        .collect();
    all.sort();
    all
}

/// Up from the SAN copy: the review movie, then its frames and its LUT; down from the LUT:
/// the movie, then its copy; a frame finds its sequence; `--depth` cuts the walk short.
pub(crate) fn lineage_walks_up_and_down(b: &dyn Backend) {
    let mut q = b.queue("a");
    let c = chain(b, &mut *q);
    let h = b.history();
    let up = h.lineage(&c.san, Direction::Up, 10).expect("lineage");
    assert_eq!(up.path, shown(&c.san));
    assert!(!up.truncated);
    let want_up = vec![
        (
            1,
            shown(&c.movie),
            "matched",
            c.copy.id,
            shown(&c.san),
            false,
        ),
        (
            2,
            shown(&c.frames),
            "matched",
            c.review.id,
            shown(&c.movie),
            false,
        ),
        (
            2,
            shown(&c.lut),
            "declared",
            c.review.id,
            shown(&c.movie),
            false,
        ),
    ];
    let mut want_sorted = want_up.clone();
    want_sorted.sort();
    assert_eq!(edges(&up.edges), want_sorted);
    let first = &up.edges[0];
    assert_eq!(
        (first.rule.as_str(), first.node.as_deref()),
        ("copy-to-san", Some("a"))
    );
    assert_eq!(
        first.input_version,
        Some((0, 60, 1, 1_767_323_045_123_456_789))
    );
    assert!(first.finished_at.is_some());

    let short = h.lineage(&c.san, Direction::Up, 1).expect("lineage");
    assert_eq!(short.edges.len(), 1);
    assert!(short.truncated, "the movie was made from more");

    let down = h.lineage(&c.lut, Direction::Down, 10).expect("lineage");
    assert!(!down.truncated);
    let mut want_down = vec![
        (
            1,
            shown(&c.lut),
            "declared",
            c.review.id,
            shown(&c.movie),
            false,
        ),
        (
            2,
            shown(&c.movie),
            "matched",
            c.copy.id,
            shown(&c.san),
            false,
        ),
    ];
    want_down.sort();
    assert_eq!(edges(&down.edges), want_down, "both products");

    let frame = c.frames.with_file_name("sh010_beauty_v001.1005.tif");
    let from_frame = h.lineage(&frame, Direction::Down, 10).expect("lineage");
    assert_eq!(from_frame.path, shown(&c.frames), "the frame's sequence");
    assert_eq!(from_frame.edges.len(), 2);
    assert_eq!(from_frame.edges[0].product, shown(&c.movie));
    let unknown = h
        .lineage(&b.scratch().join("shots/nothing.tif"), Direction::Up, 10)
        .expect("lineage");
    assert!(unknown.edges.is_empty() && !unknown.truncated);
    let json = serde_json::to_value(&up).expect("json");
    assert_eq!(json["direction"], "up");
    assert_eq!(json["edges"][0]["role"], "matched");
}

/// A new version of a declared input makes its users' products stale, as does a change of a
/// rule's work hash; `rerun --stale` queues the stale jobs of one rule, once.
pub(crate) fn stale_products_and_their_reruns(b: &dyn Backend) {
    let mut q = b.queue("a");
    let c = chain(b, &mut *q);
    let mut h = b.history();
    assert!(h.stale().expect("stale").is_empty());
    let defs = vec![def("review", "w1", ""), def("copy-to-san", "w1", "")];
    assert_eq!(one(&mut *q, Write::RuleDefs { defs }), Answer::Ok);
    assert!(h.stale().expect("stale").is_empty(), "same work hashes");

    let seen = Write::InputSeen {
        path: c.lut.clone(),
        version: version(51, 120),
    };
    assert_eq!(
        one(&mut *q, seen),
        Answer::Users(vec![(c.review.id, "review".into())])
    );
    let stale = h.stale().expect("stale");
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (
            stale[0].product.clone(),
            stale[0].job,
            stale[0].rule.as_str(),
            stale[0].rule_changed
        ),
        (shown(&c.movie), c.review.id, "review", false)
    );
    assert_eq!(stale[0].changed_inputs.len(), 1);
    let named = &stale[0].changed_inputs[0];
    assert!(named.starts_with(&shown(&c.lut)), "{named}");
    assert!(
        named.contains("100 B") && named.contains("→") && named.contains("120 B"),
        "{named}"
    );
    let up = h.lineage(&c.san, Direction::Up, 10).expect("lineage");
    let lut_edge = up.edges.iter().find(|e| e.role == "declared").expect("lut");
    assert!(lut_edge.input_changed, "the LUT has another version now");
    assert!(
        up.edges
            .iter()
            .filter(|e| e.role == "matched")
            .all(|e| !e.input_changed)
    );

    let defs = vec![def("copy-to-san", "w2", "")];
    assert_eq!(one(&mut *q, Write::RuleDefs { defs }), Answer::Ok);
    let stale = h.stale().expect("stale");
    let products: Vec<(&str, bool)> = stale
        .iter()
        .map(|s| (s.rule.as_str(), s.rule_changed))
        .collect();
    assert_eq!(products.len(), 2);
    assert!(products.contains(&("review", false)));
    assert!(products.contains(&("copy-to-san", true)));
    let san = stale
        .iter()
        .find(|s| s.rule == "copy-to-san")
        .expect("copy");
    assert_eq!(san.product, shown(&c.san));
    assert!(san.changed_inputs.is_empty());

    assert_eq!(h.rerun_stale("review").expect("rerun"), 1);
    assert_eq!(
        h.rerun_stale("review").expect("rerun"),
        0,
        "one is unfinished"
    );
    assert_eq!(h.rerun_stale("nothing").expect("rerun"), 0);
    let queued = q.queued_since(0).expect("queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].rule, "review");
    assert_eq!(
        queued[0].input,
        at("sh010/renders/beauty/sh010_beauty_v001.####.tif")
    );
    assert_eq!(h.rerun_stale("copy-to-san").expect("rerun"), 1);
}

/// A rule as a watcher records it.
pub(super) fn def(name: &str, work_hash: &str, windows: &str) -> RuleDef {
    RuleDef {
        name: name.into(),
        work_hash: work_hash.into(),
        windows: windows.into(),
    }
}
