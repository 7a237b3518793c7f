use super::*;

fn names(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn grouped(list: &[&str]) -> Vec<(String, Vec<i64>)> {
    let names = names(list);
    group(Path::new("/s"), names.iter().map(OsString::as_os_str))
        .into_iter()
        .map(|s| {
            (
                s.hashes_name().to_string_lossy().into_owned(),
                s.frames.iter().map(|f| f.number).collect(),
            )
        })
        .collect()
}

#[test]
fn frame_is_the_last_number_before_the_extension() {
    let p = FrameName::parse(b"sh010_comp_v001.1001.tif").unwrap();
    assert_eq!(
        (p.head.as_slice(), p.frame, p.tail.as_slice()),
        (b"sh010_comp_v001.".as_slice(), 1001, b".tif".as_slice())
    );
    assert_eq!(
        FrameName::parse(b"sh040_render_1001.png").unwrap().frame,
        1001
    );
    assert_eq!(FrameName::parse(b"sh030_anim.-003.tif").unwrap().frame, -3);
    assert_eq!(FrameName::parse(b"plate.0042").unwrap().frame, 42);
    assert_eq!(FrameName::parse(b"sh010_comp_v001.tif"), None);
    assert_eq!(FrameName::parse(b"poster.tif"), None);
    assert_eq!(FrameName::parse(b"take2.tif"), None);
}

#[test]
fn groups_by_name_version_and_padding() {
    let g = grouped(&[
        "a_v001.1001.tif",
        "a_v001.1002.tif",
        "a_v002.1001.tif",
        "a_v001.1001.exr",
        "p.1.dpx",
        "p.2.dpx",
        "p.10.dpx",
        "n.-003.tif",
        "n.-001.tif",
        "n.0000.tif",
        "n.0002.tif",
        "m.0001.tif",
        "m.1.tif",
        "still.tif",
    ]);
    assert_eq!(
        g,
        vec![
            ("a_v001.####.exr".into(), vec![1001]),
            ("a_v001.####.tif".into(), vec![1001, 1002]),
            ("a_v002.####.tif".into(), vec![1001]),
            ("m.#.tif".into(), vec![1]),
            ("m.####.tif".into(), vec![1]),
            ("n.####.tif".into(), vec![-3, -1, 0, 2]),
            ("p.#.dpx".into(), vec![1, 2, 10]),
        ]
    );
}

#[test]
fn gaps_and_ranges() {
    let names = names(&["s.1001.tif", "s.1002.tif", "s.1005.tif", "s.1007.tif"]);
    let seq = &group(Path::new("/s"), names.iter().map(OsString::as_os_str))[0];
    assert_eq!(seq.missing(None), vec![(1003, 1004), (1006, 1006)]);
    assert_eq!(
        format_ranges(&seq.missing(Some((1000, 1008)))),
        "1000,1003-1004,1006,1008"
    );
    assert_eq!(parse_range("1001-1048"), Ok((1001, 1048)));
    assert_eq!(parse_range("-10--5"), Ok((-10, -5)));
    assert_eq!(parse_range("7"), Ok((7, 7)));
    assert!(parse_range("1048-1001").is_err());
    assert!(parse_range("a-b").is_err());
}

#[test]
fn contiguous_sequences_are_read_in_place() {
    let names = names(&["s%x.1001.tif", "s%x.1002.tif"]);
    let seq = &group(Path::new("/sh 10"), names.iter().map(OsString::as_os_str))[0];
    let r = reading(seq, None, OnGaps::Warn, Path::new("/v")).unwrap();
    assert_eq!(r.pattern, PathBuf::from("/sh 10/s%%x.%04d.tif"));
    assert_eq!(
        (r.first, r.last, r.count, r.start, r.view),
        (1001, 1002, 2, 1001, None)
    );
}

#[test]
fn hold_repeats_the_previous_frame_and_warn_closes_up() {
    let names = names(&["s.1002.tif", "s.1003.tif", "s.1006.tif"]);
    let seq = &group(Path::new("/s"), names.iter().map(OsString::as_os_str))[0];
    let hold = reading(seq, Some((1001, 1007)), OnGaps::Hold, Path::new("/v")).unwrap();
    let targets: Vec<String> = hold
        .view
        .as_ref()
        .unwrap()
        .links
        .iter()
        .map(|(_, t)| t.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        targets,
        [
            "/s/s.1002.tif",
            "/s/s.1002.tif",
            "/s/s.1003.tif",
            "/s/s.1003.tif",
            "/s/s.1003.tif",
            "/s/s.1006.tif",
            "/s/s.1006.tif"
        ]
    );
    assert_eq!(
        (hold.first, hold.last, hold.count, hold.start),
        (1001, 1007, 7, 1001)
    );
    assert_eq!(format_ranges(&hold.missing), "1001,1004-1005,1007");
    assert_eq!(hold.pattern, PathBuf::from("/v/f.%09d.tif"));
    let warn = reading(seq, None, OnGaps::Warn, Path::new("/v")).unwrap();
    assert_eq!((warn.first, warn.last, warn.count), (1002, 1006, 3));
    assert_eq!(warn.view.unwrap().links.len(), 3);
}

#[test]
fn negative_frames_get_a_view_from_zero() {
    let names = names(&["n.-002.tif", "n.-001.tif", "n.0000.tif"]);
    let seq = &group(Path::new("/s"), names.iter().map(OsString::as_os_str))[0];
    let r = reading(seq, None, OnGaps::Warn, Path::new("/v")).unwrap();
    assert_eq!((r.first, r.start, r.count), (-2, 0, 3));
    let view = r.view.unwrap();
    assert_eq!(
        view.links[0],
        (
            PathBuf::from("/v/f.000000000.tif"),
            PathBuf::from("/s/n.-002.tif")
        )
    );
}
