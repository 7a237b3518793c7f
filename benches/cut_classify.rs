//! Routing by the cut: 1,000,000 frame arrivals against a 500-shot cut with `frames: in_cut`,
//! against the same arrivals without cuts, same run: each routed and planned as the engine
//! plans a job. Of each shot's frames 995-1070, 28 of 76 are outside the cut and skipped after
//! the look-up (their planning saved); the rest pay the look-up and `{cut.*}` on top.
//! Target: ≤ 2% more per kept arrival.

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shotrouter::route::cut::CutIndex;
use shotrouter::route::matcher::RuleSet;
use shotrouter::route::plan;
use shotrouter::rules::{self, EventKind};
use shotrouter::store::cuts::{CutRevision, CutShot, CutShotItem, ShotChange};

const SHOTS: usize = 500;

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

const RULES: &str = "version: 1\nwatch: [/show/shots]\nrules:\n  - name: beauty\n    regex: '^(?P<shot>sh[0-9]+)/renders/'\n    frames: in_cut\n    run: [true, \"{path}\"]\n";

fn bench(c: &mut Criterion) {
    let paths = arrivals(1_000_000);
    let file = rules::parse(Path::new("bench.yaml"), RULES, Path::new("/")).expect("valid rules");
    let set = RuleSet::compile(file).expect("compiles");
    let root = Path::new("/show/shots");
    let none = CutIndex::default();
    let index = CutIndex::of(&[cut()]);
    let mut group = c.benchmark_group("arrivals");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(paths.len() as u64));
    // Each arrival routed and planned as the engine plans a job; with the cut, a frame outside
    // `frames: in_cut` ends at the look-up (recorded skipped), the others are planned too.
    for (name, cuts) in [("without cuts", &none), ("with a 500-shot cut", &index)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut skipped = 0usize;
                for rel in &paths {
                    for i in set.route(rel, EventKind::CloseWrite) {
                        match plan::plan(&set, i, root, rel, "t", None, cuts) {
                            Err(plan::PlanError::Skipped(_)) => skipped += 1,
                            other => {
                                black_box(other.is_ok());
                            }
                        }
                    }
                }
                black_box(skipped)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
