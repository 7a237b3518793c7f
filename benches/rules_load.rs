//! Loading time against file size: `rules::load` on generated rules files of N and 10·N rules
//! (the larger about 50 MB), reported as seconds per MB for each and their ratio. A ratio near 1
//! means loading is linear in the file's size; a ratio near 10 means quadratic. Nothing is
//! asserted: speed targets never go in tests.
//!
//! `cargo bench --bench rules_load` runs N = 20,000 (10·N ≈ 50 MB);
//! `cargo bench --bench rules_load -- 2000` picks another N.

use std::path::Path;
use std::time::{Duration, Instant};

use shotrouter::rules;

const LAYERS: [&str; 5] = ["beauty", "diffuse", "spec", "crypto", "volume"];

/// `n` rules in the style of a large show's rules.yaml: globs, regexes with captures, template
/// variables in every argv, a setting shared through an alias, outputs and sequences.
fn rules_yaml(n: usize) -> String {
    let mut text = String::from(
        "version: 1\nwatch: [shots]\njobs: 4\nvars:\n  show: demo\n  tools: /opt/tools\nrules:\n\
         \x20 - name: base\n    match: \"base/*.x\"\n    run: [\"true\"]\n    timeout: &timeout 10m\n",
    );
    for i in 0..n {
        let shot = 10 * (1 + i % 120);
        let layer = LAYERS[i % LAYERS.len()];
        let body = match i % 4 {
            0 => format!(
                "    match: \"*/sh{shot:04}/renders/{layer}/**/*.exr\"\n    \
                 run: [\"{{tools}}/exr-check\", --show, \"{{show}}\", \"{{path}}\", \"{{dir}}/{{stem}}.json\"]\n"
            ),
            1 => format!(
                "    match: [\"*/sh{shot:04}/comp/**/*.tif\", \"*/sh{shot:04}/comp/**/*.tiff\"]\n    \
                 output: \"{{dir}}/review/{{stem}}.mov\"\n    \
                 run: [ffmpeg, -y, -i, \"{{path}}\", -metadata, \"comment={{rule}} {{name}}\", \"{{out}}\"]\n"
            ),
            2 => format!(
                "    regex: '^(?P<seq>sq\\d+)/sh{shot:04}/plates/(?P<plate>[^/]+)/'\n    \
                 steps:\n      - [mkdir, -p, \"{{root}}/{{seq}}/ingest/{{plate}}\"]\n      \
                 - [cp, \"{{path}}\", \"{{root}}/{{seq}}/ingest/{{plate}}/{{name}}\"]\n"
            ),
            _ => format!(
                "    match: \"*/sh{shot:04}/renders/{layer}/**/*.####.exr\"\n    \
                 sequence: {{}}\n    \
                 run: [\"{{tools}}/make-proxy\", \"{{seq.pattern}}\", \"{{seq.first}}\", \"{{seq.last}}\"]\n"
            ),
        };
        text.push_str(&format!(
            "  - name: sh{shot:04}_{layer}_{i}\n    retries: 2\n    timeout: *timeout\n{body}"
        ));
    }
    text
}

/// Writes `n` rules to a file and times one load; returns (MB, seconds).
fn measure(dir: &Path, n: usize) -> (f64, f64) {
    let path = dir.join(format!("rules-{n}.yaml"));
    let text = rules_yaml(n);
    std::fs::write(&path, &text).expect("write the rules file");
    let started = Instant::now();
    // Far past the limits a real load runs under: this times the loader, not the limits.
    let file = rules::load_within(&path, rules::Limits::NONE)
        .unwrap_or_else(|e| panic!("generated rules load:\n{e}"));
    let elapsed = started.elapsed();
    assert_eq!(file.rules.len(), n + 1);
    (
        text.len() as f64 / 1e6,
        elapsed.max(Duration::from_micros(1)).as_secs_f64(),
    )
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // Warm up the allocator and page cache on a small file first.
    let _ = measure(dir.path(), n / 10 + 1);
    let (small_mb, small_s) = measure(dir.path(), n);
    let (large_mb, large_s) = measure(dir.path(), 10 * n);
    let per_mb = |mb: f64, s: f64| s / mb;
    println!("rules      size      load      per MB");
    println!(
        "{n:>8}  {small_mb:6.1} MB  {small_s:7.3} s  {:7.4} s/MB",
        per_mb(small_mb, small_s)
    );
    println!(
        "{:>8}  {large_mb:6.1} MB  {large_s:7.3} s  {:7.4} s/MB",
        10 * n,
        per_mb(large_mb, large_s)
    );
    println!(
        "ratio (per MB, 10·N over N): {:.2}  (1 = linear, 10 = quadratic)",
        per_mb(large_mb, large_s) / per_mb(small_mb, small_s)
    );
}
