//! Routing by the cut: 1,000,000 frame arrivals against a 500-shot cut with `frames: in_cut`,
//! against the same arrivals and rules without `frames:` and without cuts, same run: each routed
//! and planned as the engine plans a job. Of each shot's frames 995-1070, 28 of 76 are outside
//! the cut and skipped after the look-up (their planning saved); the rest pay the look-up.
//! Target (issue 22): ≤ 2% more per arrival.
//!
//! The machine it runs on is noisy, so before criterion's own (sequential) groups it prints
//! allocations per arrival and an interleaved comparison: rounds of both cases over all
//! arrivals, alternating which runs first, and the median of the rounds' ratios.

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]
// The allocation counter is a `GlobalAlloc`, which only `unsafe` can implement.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use shotrouter::route::cut::CutIndex;
use shotrouter::route::matcher::RuleSet;
use shotrouter::route::plan;
use shotrouter::rules::{self, EventKind};
use shotrouter::store::cuts::{CutRevision, CutShot, CutShotItem, ShotChange};

const SHOTS: usize = 500;

/// Counts allocations while `COUNTING` is set (off while timing: one relaxed load each).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed straight to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Arrivals over 500 shots, frames 995-1070 (some outside, some handles, most in the cut).
fn arrivals(count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let shot = 10 * (1 + i % SHOTS);
            let frame = 995 + (i / SHOTS) % 76;
            PathBuf::from(format!(
                "sh{shot:05}/renders/beauty/sh{shot:05}_beauty_v003.{frame}.exr"
            ))
        })
        .collect()
}

/// The latest revision of one cut showing every shot: cut 1009-1056, handles 1001-1064.
fn cut() -> CutRevision {
    let shots = (0..SHOTS)
        .map(|i| CutShot {
            shot: format!("sh{:05}", 10 * (1 + i)),
            change: ShotChange::New,
            head_in: 1001,
            cut_in: 1009,
            cut_out: 1056,
            tail_out: 1064,
            source_in: 0,
            items: vec![CutShotItem {
                event: i as u32 + 1,
                clip: None,
                reel: None,
                record_in: String::new(),
                record_out: String::new(),
                first: 1009,
                last: 1056,
                speed: 1.0,
            }],
        })
        .collect();
    CutRevision {
        name: "reel1".into(),
        revision: 1,
        imported_at: 0,
        source: "reel1.edl".into(),
        hash: String::new(),
        fps: "24".into(),
        shots,
        unmatched: Vec::new(),
    }
}

/// The rule routed by the cut; the baseline is the same rule without its `frames:` line.
const RULES: &str = "version: 1\nwatch: [/show/shots]\nrules:\n  - name: beauty\n    regex: '^(?P<shot>sh[0-9]+)/renders/'\n    frames: in_cut\n    run: [true, \"{path}\"]\n";

fn compile(text: &str) -> RuleSet {
    let file = rules::parse(Path::new("bench.yaml"), text, Path::new("/")).expect("valid rules");
    RuleSet::compile(file).expect("compiles")
}

/// Both cases: (name, rules, cuts).
fn cases() -> [(&'static str, RuleSet, CutIndex); 2] {
    [
        (
            "without cuts",
            compile(&RULES.replace("    frames: in_cut\n", "")),
            CutIndex::default(),
        ),
        (
            "with a 500-shot cut",
            compile(RULES),
            CutIndex::of(&[cut()]),
        ),
    ]
}

/// Routes and plans every arrival as the engine does; returns how many were skipped.
fn run(set: &RuleSet, cuts: &CutIndex, paths: &[PathBuf]) -> usize {
    let root = Path::new("/show/shots");
    let mut skipped = 0usize;
    for rel in paths {
        for i in set.route(rel, EventKind::CloseWrite) {
            match plan::plan(set, i, root, rel, "t", None, cuts) {
                Err(plan::PlanError::Skipped(_)) => skipped += 1,
                other => {
                    black_box(other.is_ok());
                }
            }
        }
    }
    skipped
}

/// Allocations per arrival of each case over one of each shot and frame.
fn allocations(paths: &[PathBuf]) {
    let sample = &paths[..SHOTS * 76];
    for (name, set, cuts) in &cases() {
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        let skipped = run(set, cuts, sample);
        COUNTING.store(false, Ordering::Relaxed);
        let per = ALLOCATIONS.load(Ordering::Relaxed) as f64 / sample.len() as f64;
        println!(
            "{name}: {per:.2} allocations per arrival, {skipped} of {} skipped",
            sample.len()
        );
    }
}

/// Interleaved rounds of both cases over `paths`: each round goes through the arrivals in
/// chunks of one of each shot and frame, timing both cases on each chunk (alternating which
/// runs first), so both see the same load. The median time per arrival of each case and the
/// median of the rounds' ratios with/without.
fn interleaved(what: &str, paths: &[PathBuf]) {
    let rounds: usize = std::env::var("CUT_CLASSIFY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    let cases = cases();
    let mut times = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let mut t = [0.0f64; 2];
        for (n, chunk) in paths.chunks(SHOTS * 76).enumerate() {
            for k in 0..2 {
                let which = if n % 2 == 0 { k } else { 1 - k };
                let (_, set, cuts) = &cases[which];
                let start = Instant::now();
                black_box(run(set, cuts, chunk));
                t[which] += start.elapsed().as_secs_f64();
            }
        }
        let per = |t: f64| t * 1e9 / paths.len() as f64;
        times[0].push(per(t[0]));
        times[1].push(per(t[1]));
        ratios.push(t[1] / t[0]);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rounds_text: Vec<String> = ratios
        .iter()
        .map(|r| format!("{:+.1}%", (r - 1.0) * 100.0))
        .collect();
    println!(
        "{what}, {rounds} interleaved rounds of {} arrivals: without cuts {:.0} ns, with a 500-shot cut {:.0} ns per arrival (medians); with/without {:+.1}% (median of rounds: {})",
        paths.len(),
        median(&times[0]),
        median(&times[1]),
        (median(&ratios) - 1.0) * 100.0,
        rounds_text.join(" ")
    );
}

fn bench(c: &mut Criterion) {
    let paths = arrivals(1_000_000);
    let cases = cases();
    let mut group = c.benchmark_group("arrivals");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(paths.len() as u64));
    // Each arrival routed and planned as the engine plans a job; with the cut, a frame outside
    // `frames: in_cut` ends at the look-up (recorded skipped), the others are planned too.
    for (name, set, cuts) in &cases {
        group.bench_function(*name, |b| b.iter(|| black_box(run(set, cuts, &paths))));
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    let paths = arrivals(1_000_000);
    allocations(&paths);
    interleaved("all arrivals", &paths);
    // The look-up's cost where it saves nothing: only frames the cut shows, all planned.
    let kept: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| shotrouter::route::cut::frame_of(p).is_some_and(|f| (1009..=1056).contains(&f)))
        .collect();
    interleaved("frames in the cut only", &kept);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
