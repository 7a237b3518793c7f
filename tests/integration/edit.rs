//! The cut readers (`shotrouter::edit`) against OpenTimelineIO's own: for every fixture under
//! tests/data/edit/, tests/tools/read_cut.py reads the EDL with the otio-cmx3600-adapter (or the
//! .otio with OTIO's JSON reader) and the source and record range of every video clip must be
//! what shotrouter reads, except where OTIO's EDL reader is known to be wrong (said where).
//! Then a revision series (tests/data/edit/rev1..3.edl) that extends, trims, omits and
//! reinstates shots, through ranges and diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use shotrouter::edit::{Change, Cut, FrameClass, ShotNaming, ShotRanges, cmx3600, diff, otio};
use shotrouter::media::timecode::Rate;

/// A video clip as read: (name, source in, source out, record in, record out).
pub(crate) type Clip = (String, i64, i64, i64, i64);

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/edit")
        .join(name)
}

/// `scripts/deps test`'s venv python with OpenTimelineIO and its EDL adapter. Missing, the
/// test fails, unless `SHOTROUTER_ALLOW_SKIP=1` (then `None`).
pub(crate) fn otio_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/editorial-venv/bin/python3");
    let works = Command::new(&venv)
        .args(["-c", "import opentimelineio, otio_cmx3600_adapter"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(venv);
    }
    crate::helpers::require::cannot_run(
        &format!(
            "OpenTimelineIO with otio-cmx3600-adapter is missing from {}",
            venv.display()
        ),
        crate::helpers::require::DEPS,
    );
    None
}

/// What OpenTimelineIO reads from `cut` at `rate`: (name, source in, source out, record in,
/// record out) of every video clip in record order (see tests/tools/read_cut.py).
pub(crate) fn otio_reads(python: &Path, cut: &Path, rate: &str) -> Vec<Clip> {
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/read_cut.py"))
        .arg(cut)
        .arg(rate)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "OpenTimelineIO cannot read {}: {}",
        cut.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("read_cut.py JSON");
    json["clips"]
        .as_array()
        .expect("clips")
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_i64().expect("whole frames");
            (
                c["name"].as_str().expect("name").to_string(),
                n("source_in"),
                n("source_out"),
                n("record_in"),
                n("record_out"),
            )
        })
        .collect()
}

/// The same rows from shotrouter's reading; a clip without a name takes OTIO's (EDL event
/// numbers: OTIO names a black slug `009`).
fn our_reads(cut: &Cut, theirs: &[Clip]) -> Vec<Clip> {
    cut.video_items()
        .zip(theirs)
        .map(|((_, i), t)| {
            (
                i.name.clone().unwrap_or_else(|| t.0.clone()),
                i.source_in,
                i.source_out,
                i.record_in,
                i.record_out,
            )
        })
        .collect()
}

fn read(name: &str, rate: &str) -> Cut {
    let text = std::fs::read_to_string(data(name)).expect("fixture");
    let rate = Rate::parse(rate).expect("rate");
    let cut = if name.ends_with(".otio") {
        otio::parse(&text, rate)
    } else {
        cmx3600::parse(&text, rate)
    };
    cut.unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_reads_as_opentimelineio_reads_it() {
    let Some(python) = otio_python() else { return };
    for (name, rate, otio_rate) in [
        ("reel_24.edl", "24", "24"),
        ("drop_2997.edl", "29.97", "30000/1001"),
        ("rev1.edl", "24", "24"),
        ("rev2.edl", "24", "24"),
        ("rev3.edl", "24", "24"),
        ("promo.otio", "24", "24"),
    ] {
        let mut theirs = otio_reads(&python, &data(name), otio_rate);
        let cut = read(name, rate);
        assert_eq!(
            cut.video_items().count(),
            theirs.len(),
            "{name}: clip count"
        );
        let ours = our_reads(&cut, &theirs);
        if name == "reel_24.edl" {
            // Known OTIO error: event 005 writes source and record with the same length (24
            // frames) beside `M2 048.0`. OTIO reads an M2 only when the lengths differ, so it
            // plays 24 source frames at normal speed; the edit plays 48 at double speed.
            let at = theirs
                .iter()
                .position(|c| c.0 == "sh050_retime")
                .expect("sh050_retime");
            assert_eq!(
                theirs[at].2 - theirs[at].1,
                24,
                "OTIO fixed its M2 reading?"
            );
            assert_eq!(ours[at].2 - ours[at].1, 48);
            theirs[at].2 = theirs[at].1 + 48;
        }
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn drop_frame_record_timecode_lands_where_opentimelineio_puts_it() {
    let Some(python) = otio_python() else { return };
    let theirs = otio_reads(&python, &data("drop_2997.edl"), "30000/1001");
    // 00:01:00;02 is frame 1800 (two labels skipped at minute 1); 00:01:03;12 is 1900.
    assert_eq!((theirs[1].3, theirs[3].4), (1800, 1900));
    let cut = read("drop_2997.edl", "29.97");
    assert_eq!(
        (cut.items[1].record_in, cut.items[3].record_out),
        (1800, 1900)
    );
    assert_eq!(cut.record_timecodes(&cut.items[3]).1, "00:01:03;12");
}

#[test]
fn a_revision_series_extends_trims_omits_and_reinstates_shots() {
    let naming = ShotNaming::new(r"^(?P<shot>sh[0-9]{3})_").expect("pattern");
    let mut history: Vec<ShotRanges> = Vec::new();
    let mut changes = Vec::new();
    for name in ["rev1.edl", "rev2.edl", "rev3.edl"] {
        let cut = read(name, "24");
        let ranges = ShotRanges::compute(&cut, &naming, &history);
        changes.push(diff(&history, &ranges));
        if name == "rev3.edl" {
            let unmatched: Vec<_> = ranges
                .unmatched
                .iter()
                .map(|&i| cut.items[i].name.as_deref())
                .collect();
            assert_eq!(unmatched, vec![Some("temp_title")]);
        }
        history.push(ranges);
    }
    let frames = |rev: usize, shot: &str| {
        let r = &history[rev].shots[shot];
        (r.head_in, r.cut_in, r.cut_out, r.tail_out)
    };
    let list = |rev: usize| -> Vec<(&str, Change)> {
        changes[rev].iter().map(|(s, c)| (s.as_str(), *c)).collect()
    };
    assert!(changes[0].values().all(|c| *c == Change::New));
    assert_eq!(frames(0, "sh010"), (1001, 1009, 1056, 1064));
    assert_eq!(frames(0, "sh030"), (1001, 1009, 1032, 1040));
    assert_eq!(
        list(1),
        vec![
            // 12 frames longer: 1068 is past tail_out 1064.
            ("sh010", Change::Extended),
            // Six frames off the head, six off the tail.
            ("sh020", Change::CutChange),
            ("sh030", Change::Omitted),
            ("sh040", Change::NoChange),
            ("sh050", Change::New),
        ]
    );
    assert_eq!(frames(1, "sh010"), (1001, 1009, 1068, 1076));
    assert_eq!(frames(1, "sh020"), (1007, 1015, 1050, 1058));
    assert_eq!(
        list(2),
        vec![
            ("sh010", Change::NoChange),
            // Eight frames back at the head: down to rev2's head_in, no further.
            ("sh020", Change::CutChange),
            ("sh030", Change::Reinstated),
            ("sh040", Change::Omitted),
            ("sh050", Change::NoChange),
            ("sh060", Change::New),
        ]
    );
    assert_eq!(frames(2, "sh020"), (999, 1007, 1050, 1058));
    // Reinstated where rev1 numbered it.
    assert_eq!(frames(2, "sh030"), (1001, 1009, 1032, 1040));
    assert_eq!(history[2].classify("sh020", 1007), FrameClass::InCut);
    assert_eq!(history[2].classify("sh020", 1051), FrameClass::Handle);
    assert_eq!(history[2].classify("sh040", 1009), FrameClass::Outside);
}
