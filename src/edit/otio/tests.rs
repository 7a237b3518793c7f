use super::*;

const PROMO: &str = include_str!("../../../tests/data/edit/promo.otio");

/// (name, source in, source out, record in, record out, speed).
type Row<'a> = (&'a str, i64, i64, i64, i64, f64);

fn fps24() -> Rate {
    Rate::parse("24").unwrap()
}

#[test]
fn reads_clips_gaps_transitions_warps_and_a_nested_stack() {
    let cut = parse(PROMO, fps24()).unwrap();
    assert_eq!(cut.title.as_deref(), Some("promo v002"));
    let rows: Vec<Row<'_>> = cut
        .items
        .iter()
        .map(|i| {
            (
                i.name.as_deref().unwrap(),
                i.source_in,
                i.source_out,
                i.record_in,
                i.record_out,
                i.speed,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("sh010_comp_v004", 1009, 1057, 86400, 86448, 1.0),
            ("sh020_comp_v002", 1009, 1057, 86448, 86472, 2.0),
            ("sh060_overlay", 1009, 1021, 86460, 86472, 1.0),
            ("sh030_anim_v001", 1009, 1039, 86484, 86514, 1.0),
            ("A001C009", 200, 220, 86514, 86534, 1.0),
            ("sh050_plate", 1001, 1037, 86534, 86570, 1.0),
        ]
    );
    assert_eq!(cut.items[1].transition, Transition::Dissolve { frames: 12 });
    assert_eq!(cut.items[4].locators, vec!["sh040".to_string()]);
    assert_eq!(cut.items[4].reel.as_deref(), Some("A001"));
    assert_eq!(cut.items[2].track, Track::Video("V2".into()));
    assert_eq!(
        cut.items.iter().map(|i| i.event).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
}

/// The promo file with `from` replaced by `to` once.
fn promo_with(from: &str, to: &str) -> String {
    assert!(PROMO.contains(from), "{from}");
    PROMO.replacen(from, to, 1)
}

#[test]
fn unknown_schemas_name_the_item() {
    let cases = [
        (
            promo_with("\"Gap.1\"", "\"Generator.1\""),
            "generator `` (track `V1`): unsupported OpenTimelineIO schema `Generator.1`",
        ),
        (
            promo_with("\"LinearTimeWarp.1\"", "\"TimeEffect.1\""),
            "clip `sh020_comp_v002` (track `V1`): unsupported OpenTimelineIO schema `TimeEffect.1`",
        ),
        (
            promo_with("\"Timeline.1\"", "\"SerializableCollection.1\""),
            "the timeline: unsupported OpenTimelineIO schema `SerializableCollection.1`",
        ),
        (
            promo_with("\"value\": 48.0", "\"value\": 48.5"),
            "clip `sh010_comp_v004` (track `V1`): not whole frames in `duration`",
        ),
        (
            promo_with(
                "\"available_range\": {",
                "\"available_range\": null, \"x\": {",
            ),
            "clip `sh050_plate` (track `V1`): missing `source_range`",
        ),
        (
            "{\"OTIO_SCHEMA\": \"Timeline.1\"}".to_string(),
            "the timeline: missing `tracks`",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(&text, fps24()).unwrap_err().to_string(), want);
    }
    assert!(matches!(
        parse("{not json", fps24()),
        Err(EditError::Json(_))
    ));
}

#[test]
fn a_stack_of_two_tracks_is_not_flattened() {
    let text = r#"{"OTIO_SCHEMA": "Timeline.1", "name": "t", "tracks": {"OTIO_SCHEMA": "Stack.1",
      "children": [{"OTIO_SCHEMA": "Track.1", "name": "V1", "kind": "Video", "children": [
        {"OTIO_SCHEMA": "Stack.1", "name": "comp", "children": [
          {"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": []},
          {"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": []}]}]}]}}"#;
    assert_eq!(
        parse(text, fps24()).unwrap_err().to_string(),
        "stack `comp` (track `V1`): a nested stack is read only when it holds one track and trims nothing; flatten it in the editing system"
    );
}

#[test]
fn times_at_another_rate_convert_to_whole_frames() {
    let text = r#"{"OTIO_SCHEMA": "Timeline.1", "tracks": {"OTIO_SCHEMA": "Stack.1",
      "children": [{"OTIO_SCHEMA": "Track.1", "name": "V", "kind": "Video", "children": [
        {"OTIO_SCHEMA": "Clip.1", "name": "sh010", "source_range": {
          "start_time": {"rate": 48, "value": 2018}, "duration": {"rate": 48, "value": 96}}}]}]}}"#;
    let cut = parse(text, fps24()).unwrap();
    assert_eq!(
        (cut.items[0].source_in, cut.items[0].duration()),
        (1009, 48)
    );
}

#[test]
fn huge_values_and_speeds_are_refused_not_wrapped() {
    let cases = [
        (
            promo_with("\"value\": 48.0", "\"value\": 1e300"),
            "clip `sh010_comp_v004` (track `V1`): an out-of-range number of frames in `duration`",
        ),
        (
            promo_with("\"time_scalar\": 2.0", "\"time_scalar\": 1e300"),
            "clip `sh020_comp_v002` (track `V1`): a speed past 1000× normal in `time_scalar`",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(&text, fps24()).unwrap_err().to_string(), want);
    }
    // Gaps each within range whose sum is not: the record position is refused, not wrapped.
    let gap = r#"{"OTIO_SCHEMA": "Gap.1", "source_range": {
        "start_time": {"rate": 24, "value": 0}, "duration": {"rate": 24, "value": 1000000000000}}}"#;
    let text = format!(
        r#"{{"OTIO_SCHEMA": "Timeline.1", "tracks": {{"OTIO_SCHEMA": "Stack.1",
          "children": [{{"OTIO_SCHEMA": "Track.1", "name": "V", "kind": "Video",
          "children": [{gap}, {gap}]}}]}}}}"#
    );
    assert_eq!(
        parse(&text, fps24()).unwrap_err().to_string(),
        "gap `` (track `V`): a record position past the last frame read after `duration`"
    );
}
