//! The store's side of scale-out, on a real PostgreSQL server this bench starts and on the
//! SQLite store, in the same run; nothing is asserted (speed targets never go in tests).
//!
//! - **Trivial jobs**: one worker's claim-to-finish throughput (`claim_next` of one job, then
//!   its `Finish`), PostgreSQL against SQLite.
//! - **Coordination overhead**: W workers (threads, a connection each) whose jobs take 200 ms
//!   (a sleep: the work is waiting, so the two cores do not cap it): jobs/s against the ideal
//!   W × 5/s.
//! - **Enqueue-to-claim latency** on an idle worker: from the watcher's commit to the worker
//!   holding the claim, p50 and p99 (PostgreSQL wakes on `NOTIFY`; SQLite polls its file).
//! - **Looking past**: one claim over 100,000 queued jobs the worker may not take (another
//!   root; a rule whose window is closed), the time it holds its transaction.
//!
//! `cargo bench --bench store_claims` runs 2,000 trivial jobs, 200 latency samples and
//! 100,000 jobs to look past; `cargo bench --bench store_claims -- 500 50 10000` picks other
//! counts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shotrouter::os::version::FileVersion;
use shotrouter::store::queue::{ClaimFilter, Ending, JobQueue, NewJob, RootedPath, Write};
use shotrouter::store::{Location, open_queue};

#[path = "../src/store/postgres/test_server.rs"]
mod test_server;

/// A job a worker may run (it has a plan), on its own file.
fn job(i: u64) -> Write {
    job_of("review", i)
}

/// A job of `rule` a worker may run, on its own file.
fn job_of(rule: &str, i: u64) -> Write {
    Write::Enqueue {
        job: Box::new(NewJob {
            rule: rule.into(),
            rule_hash: "h".into(),
            input: RootedPath {
                root: "shots".into(),
                rel: PathBuf::from(format!("sh{:04}/plate.{i:06}.exr", i % 100)),
            },
            version: FileVersion {
                dev: 1,
                ino: i + 1,
                size: 10,
                mtime_ns: 1_000,
            },
            steps: vec![vec!["true".into()]],
            output: None,
            unplannable: None,
            skipped: None,
            follow_moves: false,
            baseline_runs: false,
            tags: Vec::new(),
            concurrency: None,
            priority: 0,
            plan: "{}".into(),
            waiting: None,
        }),
        claim: false,
    }
}

fn enqueue(q: &mut dyn JobQueue, from: u64, n: u64) {
    enqueue_of(q, "review", from, n);
}

fn enqueue_of(q: &mut dyn JobQueue, rule: &str, from: u64, n: u64) {
    let writes: Vec<Write> = (from..from + n).map(|i| job_of(rule, i)).collect();
    for batch in writes.chunks(200) {
        q.commit(batch).expect("enqueue");
    }
}

/// Claims one job at a time and finishes it, until none is left; returns how many.
fn drain(q: &mut dyn JobQueue, work: Duration) -> usize {
    let mut done = 0;
    let mut idle = 0;
    while idle < 2 {
        let got = q.claim_next(&ClaimFilter::default(), 1).expect("claim");
        if got.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        for claimed in got {
            if !work.is_zero() {
                std::thread::sleep(work);
            }
            let finish = Write::Finish {
                claim: claimed.claim,
                ending: Ending::Done,
            };
            q.commit(&[finish]).expect("finish");
            done += 1;
        }
    }
    done
}

/// A fresh store of each kind: (name, location); the temp dir and server live as long as
/// the bench.
fn stores(server: &test_server::TestServer, dir: &tempfile::TempDir) -> [(String, Location); 2] {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let pg = Location::parse(&server.admin_url(&server.fresh_database())).expect("a URL");
    let sqlite = Location::Folder(dir.path().join(format!("state-{n}")));
    [("postgres".into(), pg), ("sqlite".into(), sqlite)]
}

fn trivial(server: &test_server::TestServer, dir: &tempfile::TempDir, n: u64) {
    println!("trivial jobs, one worker, {n} jobs:");
    let mut rates = Vec::new();
    for (name, loc) in stores(server, dir) {
        let mut watcher = open_queue(&loc, "watcher").expect("opens");
        enqueue(&mut *watcher, 0, n);
        let mut worker = open_queue(&loc, "worker").expect("opens");
        let start = Instant::now();
        let done = drain(&mut *worker, Duration::ZERO);
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!("  {name:8} {rate:8.0} jobs/s");
        rates.push(rate);
    }
    println!("  postgres / sqlite: {:.2}", rates[0] / rates[1]);
}

fn coordination(server: &test_server::TestServer, dir: &tempfile::TempDir) {
    const WORK: Duration = Duration::from_millis(200);
    println!("coordination overhead, jobs of 200 ms, 10 per worker (ideal: workers x 5/s):");
    for (name, loc) in stores(server, dir) {
        let mut watcher = open_queue(&loc, "watcher").expect("opens");
        let mut next = 0;
        for workers in [1u64, 2, 4, 8] {
            enqueue(&mut *watcher, next, workers * 10);
            next += workers * 10;
            let loc = &loc;
            let start = Instant::now();
            let done: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|w| {
                        s.spawn(move || {
                            let mut q = open_queue(loc, &format!("w{w}")).expect("opens");
                            drain(&mut *q, WORK)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("worker")).sum()
            });
            let rate = done as f64 / start.elapsed().as_secs_f64();
            let ideal = workers as f64 * 5.0;
            println!(
                "  {name:8} {workers} workers: {rate:6.1} jobs/s = {:5.1}% of ideal",
                100.0 * rate / ideal
            );
        }
    }
}

fn latency(server: &test_server::TestServer, dir: &tempfile::TempDir, samples: u64) {
    println!("enqueue-to-claim latency on an idle worker, {samples} samples:");
    let mut p50s = Vec::new();
    for (name, loc) in stores(server, dir) {
        let mut watcher = open_queue(&loc, "watcher").expect("opens");
        let (claimed_tx, claimed_rx) = std::sync::mpsc::channel::<Instant>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let worker_loc = loc.clone();
        let worker = std::thread::spawn(move || {
            let mut q = open_queue(&worker_loc, "worker").expect("opens");
            while stop_rx.try_recv().is_err() {
                let got = q.claim_next(&ClaimFilter::default(), 1).expect("claim");
                if got.is_empty() {
                    q.wait_for_work(Duration::from_millis(500)).expect("wait");
                    continue;
                }
                let at = Instant::now();
                for claimed in got {
                    let finish = Write::Finish {
                        claim: claimed.claim,
                        ending: Ending::Done,
                    };
                    q.commit(&[finish]).expect("finish");
                }
                let _ = claimed_tx.send(at);
            }
        });
        let mut waits = Vec::new();
        for i in 0..samples {
            // Let the worker go idle (waiting) before the next job arrives.
            std::thread::sleep(Duration::from_millis(30 + (i * 7) % 20));
            let start = Instant::now();
            watcher.commit(&[job(1_000_000 + i)]).expect("enqueue");
            let at = claimed_rx.recv().expect("claimed");
            waits.push(at.duration_since(start));
        }
        let _ = stop_tx.send(());
        worker.join().expect("worker");
        waits.sort_unstable();
        let p = |q: f64| waits[((waits.len() as f64 * q) as usize).min(waits.len() - 1)];
        println!(
            "  {name:8} p50 {:7.2} ms   p99 {:7.2} ms",
            p(0.5).as_secs_f64() * 1e3,
            p(0.99).as_secs_f64() * 1e3
        );
        p50s.push(p(0.5));
    }
    println!(
        "  postgres / sqlite p50: {:.2}",
        p50s[0].as_secs_f64() / p50s[1].as_secs_f64()
    );
}

/// One claim that reads past `n` queued jobs it may not take: of another root (filtered in
/// Rust on SQLite), then of a closed rule, with one job it may take behind them.
fn look_past(server: &test_server::TestServer, dir: &tempfile::TempDir, n: u64) {
    println!("one claim looking past {n} queued jobs it may not take:");
    for (name, loc) in stores(server, dir) {
        let mut watcher = open_queue(&loc, "watcher").expect("opens");
        enqueue_of(&mut *watcher, "night", 0, n);
        enqueue(&mut *watcher, n, 1);
        let mut worker = open_queue(&loc, "worker").expect("opens");
        let elsewhere = ClaimFilter {
            roots: vec!["elsewhere".into()],
            ..ClaimFilter::default()
        };
        let start = Instant::now();
        let got = worker.claim_next(&elsewhere, 1).expect("claim");
        let other_root = start.elapsed();
        assert!(got.is_empty());
        let closed = ClaimFilter {
            closed_rules: vec!["night".into()],
            ..ClaimFilter::default()
        };
        let start = Instant::now();
        let got = worker.claim_next(&closed, 1).expect("claim");
        let closed_rule = start.elapsed();
        assert_eq!(got.len(), 1);
        println!(
            "  {name:8} another root {:8.1} ms   a closed rule {:8.1} ms",
            other_root.as_secs_f64() * 1e3,
            closed_rule.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let trivial_jobs = args.first().copied().unwrap_or(2_000);
    let samples = args.get(1).copied().unwrap_or(200);
    let look_past_jobs = args.get(2).copied().unwrap_or(100_000);
    let server = test_server::TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    trivial(&server, &dir, trivial_jobs);
    coordination(&server, &dir);
    latency(&server, &dir, samples);
    look_past(&server, &dir, look_past_jobs);
}
