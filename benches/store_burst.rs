//! What the store costs a watcher per job in a burst, in-process and single-threaded: the
//! writes `benches/watch-latency` makes a watcher commit, without the inotify, spawning and
//! scheduling around them that make whole-daemon figures noisy on a shared 2-core machine.
//! Nothing is asserted (speed targets never go in tests).
//!
//! The watcher records a burst's files as they come (`Enqueue` without a claim: the backlog),
//! claims them as slots free up, and records each end with what the run used (`Used` then
//! `Finish`, folded into one statement), a group commit every few jobs. This replays that
//! pattern on a fresh SQLite store: `BATCH` new jobs, `BATCH` claims of earlier ones and `BATCH`
//! ends per commit, with a plan as large as a real one. It prints microseconds per job, split
//! by kind of write (each kind timed in commits of its own) and for the mixed commits the
//! watcher makes.
//!
//! `cargo bench --bench store_burst` runs 10,000 jobs in commits of 15 of each (what a burst of
//! trivial jobs averaged); `cargo bench --bench store_burst -- 20000 30` picks other counts. Run
//! under `valgrind --tool=callgrind` for instruction counts that do not move with the load.

use std::path::PathBuf;
use std::time::Instant;

use shotrouter::os::version::FileVersion;
use shotrouter::store::lineage::{RunUse, UsedProgram};
use shotrouter::store::queue::{Answer, Claim, Ending, JobQueue, NewJob, RootedPath, Write};
use shotrouter::store::{Location, open_queue};

/// A plan the size of one `route` writes for a one-step rule on a local root (~500 bytes).
fn plan(i: u64) -> String {
    format!(
        concat!(
            r#"{{"format":5,"roots":[["shots","/srv/shots"]],"outputs":[],"mounts":[{{"path":"/srv/shots","#,
            r#""mount_point":"/","depth":3,"fs_type":"ext4","source":"/dev/vda","root":"/","#,
            r#""machine":"machine:3d1219c7c4c5404aaa1f6d2a48adfda4","dev":"254:0","#,
            r#""boot":"4f1f5ec7-302a-491f-b85b-c4db5c3c2a1b"}}],"steps":[["/usr/local/bin/stamp","#,
            r#""/srv/log/stamps.log","/srv/shots/d{:03}/f{:04}.exr"]],"inputs":[],"#,
            r#""log":"/var/lib/shotrouter/logs/stamp/{}.log"}}"#
        ),
        i % 100,
        i,
        i
    )
}

/// A new file's job, recorded without a claim (the backlog of a burst).
fn enqueue(i: u64) -> Write {
    Write::Enqueue {
        job: Box::new(NewJob {
            rule: "stamp".into(),
            rule_hash: "8fbbcdaf103f19b9".into(),
            input: RootedPath {
                root: "shots".into(),
                rel: PathBuf::from(format!("d{:03}/f{i:04}.exr", i % 100)),
            },
            version: FileVersion {
                dev: 1,
                ino: 10_000_000 + i,
                size: 1,
                mtime_ns: 1_796_548_449_396_488_135 + i128::from(i),
            },
            steps: vec![vec![
                "/usr/local/bin/stamp".into(),
                "/srv/log/stamps.log".into(),
                format!("/srv/shots/d{:03}/f{i:04}.exr", i % 100).into(),
            ]],
            output: None,
            unplannable: None,
            skipped: None,
            follow_moves: true,
            baseline_runs: false,
            tags: Vec::new(),
            concurrency: None,
            priority: 0,
            plan: plan(i),
            waiting: None,
        }),
        claim: false,
    }
}

/// A successful end, as the engine writes it: what the run used, then the end.
fn ended(claim: Claim) -> [Write; 2] {
    [
        Write::Used {
            claim,
            used: Box::new(RunUse {
                inputs: Vec::new(),
                programs: vec![UsedProgram {
                    path: "/usr/local/bin/stamp".into(),
                    version: Some("xxh3:860118f376efa98e".into()),
                }],
                work_hash: "dcd6294bd88de6c4".into(),
            }),
        },
        Write::Finish {
            claim,
            ending: Ending::Done,
        },
    ]
}

fn ids(answers: &[Answer]) -> Vec<i64> {
    answers
        .iter()
        .filter_map(|a| match a {
            Answer::Enqueued { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn claims(answers: &[Answer]) -> Vec<Claim> {
    answers
        .iter()
        .filter_map(|a| match a {
            Answer::Claimed(claim) => Some(*claim),
            _ => None,
        })
        .collect()
}

fn fresh(dir: &tempfile::TempDir, name: &str) -> Box<dyn JobQueue> {
    let mut q =
        open_queue(&Location::Folder(dir.path().join(name)), "watcher").expect("opens a store");
    q.register_roots(&[("shots".into(), PathBuf::from("/srv/shots"))])
        .expect("roots");
    q
}

/// Each kind of write in commits of its own: enqueues, then claims, then ends.
#[inline(never)]
fn by_kind(q: &mut dyn JobQueue, n: u64, batch: usize) -> [f64; 3] {
    let writes: Vec<Write> = (0..n).map(enqueue).collect();
    let start = Instant::now();
    let mut queued = Vec::new();
    for chunk in writes.chunks(batch) {
        queued.extend(ids(&q.commit(chunk).expect("enqueue")));
    }
    let enqueue_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let start = Instant::now();
    let mut claimed = Vec::new();
    for chunk in queued.chunks(batch) {
        let writes: Vec<Write> = chunk.iter().map(|&id| Write::Claim { id }).collect();
        claimed.extend(claims(&q.commit(&writes).expect("claim")));
    }
    let claim_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let start = Instant::now();
    for chunk in claimed.chunks(batch) {
        let writes: Vec<Write> = chunk.iter().flat_map(|&c| ended(c)).collect();
        q.commit(&writes).expect("finish");
    }
    let end_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    [enqueue_us, claim_us, end_us]
}

/// The watcher's mixed commits: each holds `batch` new jobs, `batch` claims of jobs queued
/// earlier and `batch` ends of jobs claimed earlier. Answers microseconds per job.
#[inline(never)]
fn mixed(q: &mut dyn JobQueue, n: u64, batch: usize) -> f64 {
    let mut queued: std::collections::VecDeque<i64> = Default::default();
    let mut running: std::collections::VecDeque<Claim> = Default::default();
    let mut next = 0u64;
    let mut done = 0u64;
    let start = Instant::now();
    while done < n {
        let mut writes = Vec::new();
        for _ in 0..batch {
            if next < n {
                writes.push(enqueue(1_000_000 + next));
                next += 1;
            }
        }
        for _ in 0..batch {
            if let Some(claim) = running.pop_front() {
                writes.extend(ended(claim));
                done += 1;
            }
        }
        for _ in 0..batch {
            if let Some(id) = queued.pop_front() {
                writes.push(Write::Claim { id });
            }
        }
        let answers = q.commit(&writes).expect("commit");
        queued.extend(ids(&answers));
        running.extend(claims(&answers));
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let batch = args.get(1).copied().unwrap_or(15).max(1) as usize;
    let dir = tempfile::tempdir().expect("a temp dir");
    println!(
        "store cost per job of a burst on SQLite, {n} jobs, {batch} of each write per commit:"
    );
    let [enqueue_us, claim_us, end_us] = by_kind(&mut *fresh(&dir, "by-kind"), n, batch);
    println!("  enqueue (new file, queued)   {enqueue_us:7.1} us");
    println!("  claim                        {claim_us:7.1} us");
    println!("  end (used + finish)          {end_us:7.1} us");
    println!(
        "  sum                          {:7.1} us",
        enqueue_us + claim_us + end_us
    );
    let mixed_us = mixed(&mut *fresh(&dir, "mixed"), n, batch);
    println!("  mixed commits, as a watcher  {mixed_us:7.1} us");
}
