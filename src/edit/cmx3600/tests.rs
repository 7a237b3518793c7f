use super::*;

const REEL_24: &str = include_str!("../../../tests/data/edit/reel_24.edl");
const DROP_2997: &str = include_str!("../../../tests/data/edit/drop_2997.edl");

fn fps(text: &str) -> Rate {
    Rate::parse(text).unwrap()
}

/// (event, name, source in, source out, record in, record out).
type Row<'a> = (u32, Option<&'a str>, i64, i64, i64, i64);

/// The rows of every item.
fn rows(cut: &Cut) -> Vec<Row<'_>> {
    cut.items
        .iter()
        .map(|i| {
            (
                i.event,
                i.name.as_deref(),
                i.source_in,
                i.source_out,
                i.record_in,
                i.record_out,
            )
        })
        .collect()
}

fn error(text: &str, rate: &str) -> String {
    parse(text, fps(rate)).unwrap_err().to_string()
}

#[test]
fn reads_every_event_of_a_24_fps_reel() {
    let cut = parse(REEL_24, fps("24")).unwrap();
    assert_eq!(cut.title.as_deref(), Some("REEL 1 v003"));
    let hour = 86400;
    let tc = |h: i64, m: i64, s: i64, f: i64| ((h * 60 + m) * 60 + s) * 24 + f;
    assert_eq!(
        rows(&cut),
        vec![
            (
                1,
                Some("sh010_plate_v001"),
                tc(14, 22, 10, 0),
                tc(14, 22, 12, 0),
                hour,
                hour + 48
            ),
            (8, Some("temp_music.wav"), 0, 228, hour, hour + 228),
            (
                2,
                Some("A001C007"),
                tc(14, 30, 0, 0),
                tc(14, 30, 1, 12),
                hour + 48,
                hour + 84
            ),
            (3, Some("sh030_anim_v002"), 120, 168, hour + 84, hour + 132),
            (
                4,
                Some("sh040_layout"),
                tc(10, 0, 0, 0),
                tc(10, 0, 1, 0),
                hour + 132,
                hour + 156
            ),
            // Source and record written with the same length: M2 048.0 at 24 fps plays 48.
            (
                5,
                Some("sh050_retime"),
                tc(10, 10, 0, 0),
                tc(10, 10, 2, 0),
                hour + 156,
                hour + 180
            ),
            (
                6,
                Some("sh060_retime"),
                tc(11, 0, 0, 0),
                tc(11, 0, 2, 0),
                hour + 180,
                hour + 204
            ),
            (
                7,
                Some("sh010_plate_v001"),
                tc(14, 22, 11, 12),
                tc(14, 22, 12, 12),
                hour + 204,
                hour + 228
            ),
            (9, None, 0, 24, hour + 228, hour + 252),
        ]
    );
    let by_event = |n| cut.items.iter().find(|i| i.event == n).unwrap();
    assert_eq!(by_event(3).transition, Transition::Dissolve { frames: 12 });
    assert_eq!(
        by_event(4).transition,
        Transition::Wipe {
            code: "W001".into(),
            frames: 10
        }
    );
    assert_eq!(by_event(5).speed, 2.0);
    assert_eq!(by_event(1).speed, 1.0);
    assert_eq!(by_event(8).track, Track::Audio("A".into()));
    assert_eq!(by_event(2).locators, vec!["GREEN   sh020".to_string()]);
    assert_eq!(
        by_event(1).locators,
        vec!["RED     sh010 roto fix".to_string()]
    );
    assert_eq!(by_event(9).reel.as_deref(), Some("BL"));
    assert_eq!(by_event(3).origin, Origin::Line(13));
    assert_eq!(
        cut.record_timecodes(by_event(3)),
        ("01:00:03:12".to_string(), "01:00:05:12".to_string())
    );
}

#[test]
fn drop_frame_record_timecode_counts_the_skipped_labels() {
    let cut = parse(DROP_2997, fps("29.97")).unwrap();
    assert!(cut.counting.drop);
    // 00:01:00;02 is frame 1800: labels ;00 and ;01 of minute 1 do not exist.
    assert_eq!(
        rows(&cut)
            .iter()
            .map(|r| (r.4, r.5, r.2, r.3))
            .collect::<Vec<_>>(),
        vec![
            (1740, 1800, 1740, 1800),
            (1800, 1830, 451_340, 451_370),
            // After `FCM: NON-DROP FRAME` the `:` source labels count every frame.
            (1830, 1860, 1_296_000, 1_296_030),
            (1860, 1900, 17_952, 17_992),
        ]
    );
    assert_eq!(cut.record_timecodes(&cut.items[1]).0, "00:01:00;02");
}

#[test]
fn drop_frame_labels_written_with_colons_read_as_drop_frame_under_fcm() {
    // Event 003 runs under `FCM: NON-DROP FRAME`: there a `:` would mean non-drop.
    let colons: String = DROP_2997
        .lines()
        .map(|l| {
            if l.starts_with("00") && !l.starts_with("003") {
                l.replace(';', ":")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(colons, DROP_2997);
    let a = parse(DROP_2997, fps("29.97")).unwrap();
    let b = parse(&colons, fps("29.97")).unwrap();
    assert_eq!(rows(&a), rows(&b));
}

#[test]
fn the_same_reel_at_25_and_30_fps_counts_frames_at_that_rate() {
    let edl = "001  R1 V C 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\n";
    for (rate, second) in [("25", 25), ("30", 30), ("29.97", 30), ("24", 24)] {
        let cut = parse(edl, fps(rate)).unwrap();
        assert_eq!(
            (cut.items[0].source_in, cut.items[0].duration()),
            (second, second),
            "{rate}"
        );
    }
}

#[test]
fn speed_changes_decide_the_source_played() {
    let edl = "\
001  R1 V C 00:00:10:00 00:00:11:00 01:00:00:00 01:00:01:00
M2   R1       012.0    00:00:10:00
002  R2 V C 00:00:20:00 00:00:21:00 01:00:01:00 01:00:02:00
M2   R2       -024.0    00:00:20:00
003  R3 V C 00:00:30:00 00:00:30:01 01:00:02:00 01:00:03:00
* FREEZE FRAME
";
    let cut = parse(edl, fps("24")).unwrap();
    let played: Vec<(f64, i64)> = cut
        .items
        .iter()
        .map(|i| (i.speed, i.source_out - i.source_in))
        .collect();
    assert_eq!(played, vec![(0.5, 12), (-1.0, 24), (0.0, 1)]);
}

#[test]
fn blank_lines_unknown_comments_and_frame_counts_are_tolerated() {
    let edl = "\n\nTITLE:   spaced  \n\n001  R1 V C 100 124 1000 1024\n\n* anything\n\n>>> SOURCE R1\nAUD 3\n";
    let cut = parse(edl, fps("24")).unwrap();
    assert_eq!(cut.title.as_deref(), Some("spaced"));
    assert_eq!(rows(&cut), vec![(1, None, 100, 124, 1000, 1024)]);
}

#[test]
fn a_transition_whose_outgoing_side_plays_is_two_items() {
    let edl = "\
001  R1 V C        00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00
001  R2 V D 012    00:00:05:00 00:00:06:00 01:00:01:00 01:00:02:00
* FROM CLIP NAME: out
* TO CLIP NAME: in
";
    let cut = parse(edl, fps("24")).unwrap();
    assert_eq!(
        cut.items
            .iter()
            .map(|i| (i.name.as_deref(), i.origin.clone()))
            .collect::<Vec<_>>(),
        vec![
            (Some("out"), Origin::Line(1)),
            (Some("in"), Origin::Line(2))
        ]
    );
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "TITLE: x\n001  R1 V C 00:00:01:00 00:00:02:00\n",
            "24",
            "line 2: `001  R1 V C 00:00:01:00 00:00:02:00` is not a CMX 3600 event; expected `NNN REEL V|A C|D nnn|Wnnn nnn SRC-IN SRC-OUT REC-IN REC-OUT`",
        ),
        (
            "\n\n001  R1 V C 00:00:01:00 00:00:02:12 01:00:00:00 01:00:01:00\n",
            "24",
            "line 3: event 1 plays 36 source frames in 24 record frames but has no `M2` speed change",
        ),
        (
            "001  R1 V C 00:00:01:00 00:00:01:24 01:00:00:00 01:00:01:00\n",
            "24",
            "line 1: `00:00:01:24`: frames must be 00–23 at 24 fps",
        ),
        (
            "FCM: DROP FRAME\n001  R1 V C 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\n",
            "25",
            "line 1: drop-frame timecode exists only at 29.97 and 59.94 fps, not at 25; is the EDL's rate 25?",
        ),
        (
            "FCM: DROP FRAME\n001  R1 V C 00:00:01:00 00:00:02:00 00:01:00:00 00:01:01:00\n",
            "29.97",
            "line 2: `00:01:00;00` does not exist in drop-frame counting: frames 00–01 of every minute not divisible by ten are skipped",
        ),
        (
            "FCM: SOMETIMES\n",
            "24",
            "line 1: unknown frame code mode `FCM: SOMETIMES`; write `FCM: DROP FRAME` or `FCM: NON-DROP FRAME`",
        ),
        (
            "001  R1 V KB 010 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\n",
            "24",
            "line 1: unsupported transition `KB`; shotrouter reads `C`, `D nnn` and `Wnnn nnn`",
        ),
        (
            "M2   R1       012.0    00:00:10:00\n",
            "24",
            "line 1: `M2   R1       012.0    00:00:10:00` is not an M2 speed change of an event; expected `M2 REEL FPS TIMECODE` after the event",
        ),
        (
            "001  R1 V C 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\nM2   R1  fast  00:00:10:00\n",
            "24",
            "line 2: `M2   R1  fast  00:00:10:00` is not an M2 speed change of an event; expected `M2 REEL FPS TIMECODE` after the event",
        ),
        (
            "001  R1 V C 00:00:01:00 00:00:02:00 01:00:01:00 01:00:00:00\n",
            "24",
            "line 1: event 1 ends before it starts (record out before record in)",
        ),
        (
            "001  R1 V C 0 0 0 0\n001  R1 V C 0 0 0 0\n001  R1 V C 0 0 0 0\n",
            "24",
            "line 3: event 1 has more than two lines",
        ),
        (
            "TITLE: x\nbogus line\n",
            "24",
            "line 2: unknown EDL line `bogus line`; comments start with `*`",
        ),
    ];
    for (edl, rate, want) in cases {
        assert_eq!(error(edl, rate), *want, "{edl}");
    }
}

#[test]
fn errors_keep_their_data() {
    let err = parse("\n001 R1 V C 0 0 0 0 0 0 0\n", fps("24")).unwrap_err();
    assert!(
        matches!(err, EditError::Event { line: 2, ref text } if text == "001 R1 V C 0 0 0 0 0 0 0")
    );
}

#[test]
fn a_non_ascii_timecode_is_an_error_naming_its_line() {
    // Under `FCM: DROP FRAME` a `:` label is rewritten at byte 9, here inside the `é`.
    let cases = [
        (
            "FCM: DROP FRAME\n001  R1 V C 01:00:00é0 01:00:01:00 01:00:00:00 01:00:01:00\n",
            "line 2: `01:00:00é0` is not a timecode; write HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)",
        ),
        (
            "FCM: DROP FRAME\n001  R1 V C 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\nM2   R1  060.0  01:00:00é0\n",
            "line 3: `01:00:00é0` is not a timecode; write HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)",
        ),
        (
            "001  R1 V C 01:00:00:0€ 01:00:01:00 01:00:00:00 01:00:01:00\n",
            "line 1: `01:00:00:0€` is not a timecode; write HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)",
        ),
    ];
    for (edl, want) in cases {
        assert_eq!(error(edl, "29.97"), want, "{edl}");
    }
}

/// xorshift64: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Reads `text` at every rate the fuzz uses: a panic fails the test, an error must name its line.
fn read_without_panic(text: &str) {
    for rate in ["24", "29.97", "23.976", "59.94"] {
        match parse(text, fps(rate)) {
            Ok(cut) => assert!(
                cut.items.iter().all(|i| i.source_out >= i.source_in),
                "{text:?}"
            ),
            Err(e) => assert!(e.to_string().starts_with("line "), "{e} for {text:?}"),
        }
    }
}

#[test]
fn garbage_truncated_lines_and_odd_timecodes_never_panic() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let headers = ["", "FCM: DROP FRAME\n", "FCM: NON-DROP FRAME\n"];
    // Every line of the fixtures cut at every character, after an event it may belong to.
    for fixture in [REEL_24, DROP_2997] {
        for line in fixture.lines() {
            for (at, _) in line.char_indices() {
                let header = rng.pick(&headers);
                read_without_panic(&format!("{header}001  R1 V C 0 24 0 24\n{}\n", &line[..at]));
            }
        }
    }
    // Event and M2 lines whose timecodes mix digits, separators and multi-byte characters.
    let tc_chars = [
        "0", "1", "2", "5", "9", ":", ":", ";", ".", "é", "€", "🎬", " ", "-",
    ];
    let speeds = [
        "048.0", "-024.0", "000.0", "999.9", "1e300", "-1e300", "inf", "NaN", "1e-300", "x",
    ];
    let timecode = |rng: &mut Rng| -> String {
        if rng.below(4) == 0 {
            return "01:00:00:00".to_string();
        }
        (0..rng.below(14)).map(|_| rng.pick(&tc_chars)).collect()
    };
    for _ in 0..4000 {
        let header = rng.pick(&headers);
        let times: Vec<String> = (0..4).map(|_| timecode(&mut rng)).collect();
        let mut text = format!(
            "{header}001  R1 V {} {}\n",
            rng.pick(&["C", "D 012", "W001 010", "C"]),
            times.join(" ")
        );
        if rng.below(2) == 0 {
            let at = timecode(&mut rng);
            text.push_str(&format!("M2   R1  {}  {at}\n", rng.pick(&speeds)));
        }
        read_without_panic(&text);
    }
    // Raw bytes, made text the way a caller reading a file lossily would.
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..rng.below(120)).map(|_| rng.below(256) as u8).collect();
        read_without_panic(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn m2_at_23976_is_against_the_nominal_rate() {
    // `024.0` is normal speed at 23.976: 1000 record frames play 1000 source frames, not 1001.
    let edl = "001  R1 V C 0 1000 0 1000\nM2   R1  024.0  0\n002  R2 V C 0 1000 1000 1500\nM2   R2  012.0  0\n";
    let cut = parse(edl, fps("23.976")).unwrap();
    let played: Vec<(f64, i64)> = cut
        .items
        .iter()
        .map(|i| (i.speed, i.source_out - i.source_in))
        .collect();
    assert_eq!(played, vec![(1.0, 1000), (0.5, 250)]);
}

#[test]
fn an_m2_changes_only_its_own_side_of_a_transition() {
    // The outgoing R1 plays 12 frames at normal speed; only the incoming R2 is at double speed.
    let edl = "\
001  R1 V C        00:00:01:00 00:00:01:12 01:00:00:00 01:00:00:12
001  R2 V D 012    00:00:05:00 00:00:07:00 01:00:00:12 01:00:01:12
M2   R2       048.0    00:00:05:00
";
    let cut = parse(edl, fps("24")).unwrap();
    let played: Vec<(Option<&str>, f64, i64)> = cut
        .items
        .iter()
        .map(|i| (i.reel.as_deref(), i.speed, i.source_out - i.source_in))
        .collect();
    assert_eq!(played, vec![(Some("R1"), 1.0, 12), (Some("R2"), 2.0, 48)]);
    // One reel on both sides: the M2's timecode says which.
    let same = edl.replace("R2", "R1");
    let cut = parse(&same, fps("24")).unwrap();
    assert_eq!(
        cut.items.iter().map(|i| i.speed).collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    // An M2 naming no reel of a one-line event is still that event's (shortened reel names).
    let cut = parse(
        "001  B002C004_LONG V C 0 48 0 24\nM2   B002C004  048.0  0\n",
        fps("24"),
    )
    .unwrap();
    assert_eq!(cut.items[0].speed, 2.0);
    // In a transition an M2 of another reel explains neither side.
    let other = edl.replace("M2   R2", "M2   R9");
    assert_eq!(
        error(&other, "24"),
        "line 2: event 1 plays 48 source frames in 24 record frames but has no `M2` speed change"
    );
}

#[test]
fn absurd_speeds_and_frame_counts_are_refused() {
    let event = "001  R1 V C 00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00\n";
    let limits = "frame counts go up to 1099511627776 and speeds up to 1000× normal either way";
    for speed in ["1e300", "-1e300", "inf", "NaN", "24001.0"] {
        assert_eq!(
            error(&format!("{event}M2   R1  {speed}  00:00:01:00\n"), "24"),
            format!("line 2: `{speed}` is out of range; {limits}")
        );
    }
    assert_eq!(
        error(
            "001  R1 V C 9223372036854775807 9223372036854775807 0 0\n",
            "24"
        ),
        format!("line 1: `9223372036854775807` is out of range; {limits}")
    );
    assert_eq!(
        error("001  R1 V C 0 24 99999999999999999999 1\n", "24"),
        format!("line 1: `99999999999999999999` is out of range; {limits}")
    );
    // The largest accepted values still add up without overflow.
    let max = "001  R1 V C 1099511627776 1099511627776 1099511627776 1099511627776\n";
    assert_eq!(parse(max, fps("24")).unwrap().items.len(), 1);
}
