//! Matching throughput: the compiled `RuleSet` against a naive loop that tries each rule's globs
//! and regex one by one, at 1, 100 and 1,000 rules, over realistic shot-tree paths.
//! Target at 1,000 rules: ≥ 10x the naive loop and ≥ 1,000,000 paths/s.

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use globset::GlobMatcher;
use shotrouter::route::matcher::{RuleSet, Scratch};
use shotrouter::rules::{self, EventKind};

const LAYERS: [&str; 5] = ["beauty", "diffuse", "spec", "crypto", "volume"];

/// 100,000 paths of the kind a render night produces: frames, plates, media, temp files.
fn shot_tree_paths(count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let seq = 10 * (1 + i % 12);
            let shot = 10 * (1 + (i / 7) % 120);
            let frame = 1001 + i % 96;
            let layer = LAYERS[i % LAYERS.len()];
            let text = match i % 10 {
                0..=5 => format!("sq{seq:03}/sh{shot:04}/renders/{layer}/v003/sh{shot:04}_{layer}_v003.{frame}.exr"),
                6 => format!("sq{seq:03}/sh{shot:04}/comp/v012/sh{shot:04}_comp_v012.{frame}.tif"),
                7 => format!("sq{seq:03}/sh{shot:04}/plates/main/sh{shot:04}_plate.{frame:07}.dpx"),
                8 => format!("sq{seq:03}/sh{shot:04}/editorial/sh{shot:04}_v012.mxf"),
                _ => format!("sq{seq:03}/sh{shot:04}/renders/{layer}/v003/.sh{shot:04}_{layer}.{frame}.exr.tmp"),
            };
            PathBuf::from(text)
        })
        .collect()
}

/// `n` rules in the style of a show's rules.yaml: per-shot and per-layer globs, some regexes.
fn rules_yaml(n: usize) -> String {
    let mut text = String::from("version: 1\nwatch: [/show/shots]\nrules:\n");
    for i in 0..n {
        let shot = 10 * (1 + i % 120);
        let layer = LAYERS[i % LAYERS.len()];
        let body = match i % 4 {
            0 => format!("match: \"*/sh{shot:04}/renders/{layer}/**/*.exr\""),
            1 => format!(
                "match: [\"*/sh{shot:04}/comp/**/*.tif\", \"*/sh{shot:04}/comp/**/*.tiff\"]"
            ),
            2 => format!("regex: '^sq\\d+/sh{shot:04}/plates/(?P<plate>[^/]+)/'"),
            _ => {
                format!("match: \"**/*.mxf\"\n    regex: '^(?P<seq>sq\\d+)/sh{shot:04}/editorial/'")
            }
        };
        text.push_str(&format!(
            "  - name: rule{i}\n    {body}\n    run: [true, \"{{path}}\"]\n"
        ));
    }
    text
}

/// The obvious implementation: for each rule, try its globs, then its regex.
struct NaiveRules {
    ignore: Vec<GlobMatcher>,
    rules: Vec<(Vec<GlobMatcher>, Option<regex::bytes::Regex>, bool)>,
}

impl NaiveRules {
    fn new(file: &rules::RuleFile) -> NaiveRules {
        let compile = |g: &String| rules::compile_glob(g).expect("valid").compile_matcher();
        NaiveRules {
            ignore: file.ignore.iter().map(compile).collect(),
            rules: file
                .rules
                .iter()
                .map(|r| {
                    (
                        r.globs.iter().map(compile).collect(),
                        r.regex.clone(),
                        r.stop,
                    )
                })
                .collect(),
        }
    }

    fn route(&self, rel: &Path, out: &mut Vec<usize>) {
        use std::os::unix::ffi::OsStrExt;
        out.clear();
        if self.ignore.iter().any(|g| g.is_match(rel)) {
            return;
        }
        for (i, (globs, regex, stop)) in self.rules.iter().enumerate() {
            let glob_ok = globs.is_empty() || globs.iter().any(|g| g.is_match(rel));
            let regex_ok = glob_ok
                && regex
                    .as_ref()
                    .is_none_or(|r| r.is_match(rel.as_os_str().as_bytes()));
            if glob_ok && regex_ok {
                out.push(i);
                if *stop {
                    break;
                }
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let paths = shot_tree_paths(100_000);
    let mut group = c.benchmark_group("route");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    for n in [1usize, 100, 1000] {
        let file = rules::parse(Path::new("bench.yaml"), &rules_yaml(n), Path::new("/"))
            .expect("valid rules");
        let naive = NaiveRules::new(&file);
        let set = RuleSet::compile(file).expect("compiles");
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        // Both must agree before either is timed.
        for p in paths.iter().step_by(97) {
            let mut want = Vec::new();
            naive.route(p, &mut want);
            set.route_into(p, EventKind::CloseWrite, &mut scratch, &mut out);
            assert_eq!(out, want, "{}", p.display());
        }
        group.throughput(Throughput::Elements(paths.len() as u64));
        group.bench_with_input(BenchmarkId::new("ruleset", n), &n, |b, _| {
            b.iter(|| {
                let mut hits = 0;
                for p in &paths {
                    set.route_into(p, EventKind::CloseWrite, &mut scratch, &mut out);
                    hits += out.len();
                }
                black_box(hits)
            })
        });
        // The naive loop at 1,000 rules is slow; a tenth of the paths gives the same rate.
        let naive_paths = if n >= 1000 {
            &paths[..10_000]
        } else {
            &paths[..]
        };
        group.throughput(Throughput::Elements(naive_paths.len() as u64));
        group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
            b.iter(|| {
                let mut hits = 0;
                for p in naive_paths {
                    naive.route(p, &mut out);
                    hits += out.len();
                }
                black_box(hits)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
