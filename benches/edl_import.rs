//! Reading a reel-sized EDL: `edit::cmx3600::parse` plus shot ranges on a generated 2,000-event
//! EDL (comments, dissolves, speed changes, 29.97 drop-frame), against a baseline measured in the
//! same run: splitting the same text into lines and fields, the least any reader must do.
//! Nothing is asserted; the ratio says how much the reader adds to touching the text.

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shotrouter::edit::{ShotNaming, ShotRanges, cmx3600};
use shotrouter::media::timecode::{Counting, Rate};

/// `events` events of 1 to 4 seconds each, one in 10 a dissolve, one in 25 a speed change.
fn edl(events: usize, rate: Rate) -> String {
    let tc = Counting { rate, drop: true };
    let mut text = String::from("TITLE: bench reel\nFCM: DROP FRAME\n\n");
    let mut record = tc.frame_of("01:00:00;00").expect("valid label");
    for i in 0..events {
        let n = i + 1;
        let length = 30 + (i as i64 * 7) % 90;
        let source = 300_000 + (i as i64) * 500;
        let shot = 10 * (1 + i % 400);
        let (ri, ro) = (tc.label(record), tc.label(record + length));
        let (si, so) = (tc.label(source), tc.label(source + length));
        if i % 10 == 5 {
            text.push_str(&format!(
                "{n:03}  AX       V     C        {si} {si} {ri} {ri}\n"
            ));
            text.push_str(&format!(
                "{n:03}  A{i:03}C001 V     D    015 {si} {so} {ri} {ro}\n"
            ));
            text.push_str(&format!(
                "* FROM CLIP NAME: previous\n* TO CLIP NAME: sh{shot:04}_comp_v003\n"
            ));
        } else {
            text.push_str(&format!(
                "{n:03}  A{i:03}C001 V     C        {si} {so} {ri} {ro}\n"
            ));
            if i % 25 == 3 {
                text.push_str(&format!(
                    "M2   A{i:03}C001       059.9                {si}\n"
                ));
            }
            text.push_str(&format!("* FROM CLIP NAME: sh{shot:04}_comp_v003\n"));
        }
        text.push_str(&format!("* LOC: {ri} RED     note {n}\n\n"));
        record += length;
    }
    text
}

fn bench(c: &mut Criterion) {
    let rate = Rate::parse("29.97").expect("rate");
    let text = edl(2000, rate);
    let naming = ShotNaming::new(r"^(?P<shot>sh[0-9]+)_").expect("pattern");
    let cut = cmx3600::parse(&text, rate).expect("generated EDL reads");
    assert_eq!(cut.items.len(), 2000);
    let mut group = c.benchmark_group("edl_import_2000_events");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("baseline: split into lines and fields", |b| {
        b.iter(|| {
            black_box(&text)
                .lines()
                .map(|l| l.split_whitespace().count())
                .sum::<usize>()
        });
    });
    group.bench_function("cmx3600::parse", |b| {
        b.iter(|| cmx3600::parse(black_box(&text), rate).expect("reads"));
    });
    group.bench_function("cmx3600::parse + ShotRanges::compute", |b| {
        b.iter(|| {
            let cut = cmx3600::parse(black_box(&text), rate).expect("reads");
            ShotRanges::compute(&cut, &naming, &[])
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
