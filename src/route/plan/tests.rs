use super::*;

#[test]
fn temp_path_is_hidden_beside_and_keeps_extension() {
    assert_eq!(
        temp_path(Path::new("/s/review/sh010.mov"), "sr-7"),
        Some(PathBuf::from("/s/review/.sh010.sr-7.mov"))
    );
    assert_eq!(
        temp_path(Path::new("/s/README"), "t"),
        Some(PathBuf::from("/s/.README.t"))
    );
}

fn transfer_of(to: &str, mhl: bool) -> Result<TransferPlan, PlanError> {
    let text = format!(
        "version: 1\nwatch: [/show/shots]\noutputs: [/san]\nrules:\n  - name: r\n    regex: '^(?P<shot>sh\\d+)/'\n    copy: {{to: \"{to}\", hash: [md5, xxh64], mhl: {mhl}}}\n"
    );
    let set = RuleSet::compile(
        crate::rules::parse(Path::new("r.yaml"), &text, Path::new("/")).expect("valid"),
    )
    .expect("compiles");
    plan(
        &set,
        0,
        Path::new("/show/shots"),
        Path::new("sh010/a b.mov"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .map(|p| p.job.transfer.expect("a transfer"))
}

#[test]
fn a_transfer_lands_inside_the_roots_with_its_mhl_folder_below_the_root() {
    let planned = transfer_of("/san/day1/{shot}/{name}", true).expect("planned");
    assert_eq!(planned.to, PathBuf::from("/san/day1/sh010/a b.mov"));
    assert_eq!(planned.mhl_root, Some(PathBuf::from("/san/day1")));
    assert_eq!(
        planned.hashes,
        [
            crate::deliver::hash::HashKind::Md5,
            crate::deliver::hash::HashKind::Xxh64
        ]
    );
    // Relative to the watch root; a file directly in a root keeps its history in the root.
    let planned = transfer_of("copies/{name}", true).expect("planned");
    assert_eq!(planned.to, PathBuf::from("/show/shots/copies/a b.mov"));
    assert_eq!(planned.mhl_root, Some(PathBuf::from("/show/shots/copies")));
    let planned = transfer_of("/san/{name}", true).expect("planned");
    assert_eq!(planned.mhl_root, Some(PathBuf::from("/san")));
    assert_eq!(
        transfer_of("/san/{name}", false).expect("planned").mhl_root,
        None
    );
    let outside = transfer_of("/san/../etc/{name}", false).expect_err("outside");
    assert!(
        matches!(outside, PlanError::OutsideRoots { .. }),
        "{outside}"
    );
}

/// The first rule of a rules file whose `rules:` list is `rules`.
fn rule(rules: &str) -> crate::rules::Rule {
    let text = format!("version: 1\nwatch: [s]\nrules:\n{rules}");
    crate::rules::parse(Path::new("r.yaml"), &text, Path::new("/show"))
        .expect("valid")
        .rules
        .remove(0)
}

#[test]
fn an_ale_describes_the_clip_with_exclusive_ends_and_sits_beside_the_product() {
    let rule = rule(
        "  - name: a\n    match: \"*.dpx\"\n    sequence: true\n    timecode: {fps: 29.97, start: \"00:00:59;28\", at_frame: 1001}\n    keykode: {start: \"KU 22 9012 1234+05\", format: 35mm-4perf, at_frame: 1001}\n    output: \"{dir}/{seq.name}.mxf\"\n    ale: \"{dir}/{seq.name}.ale\"\n    run: [cp, \"{path}\", \"{out}\"]\n",
    );
    let sheet = ale_sheet(
        &rule,
        "/s/sh010.ale".into(),
        Path::new("/s/sh010.mxf"),
        1001,
        4,
    )
    .expect("beside");
    assert_eq!(sheet.fps, "29.97");
    let clip = &sheet.clips[0];
    assert_eq!(
        (clip.name.as_str(), clip.source_file.as_str()),
        ("sh010", "sh010.mxf")
    );
    // 59;28 59;29 00;02 00;03: the frame after the last is 00;04 (00;00 and 00;01 dropped).
    assert_eq!(
        (clip.start.as_str(), clip.end.as_str()),
        ("00:00:59;28", "00:01:00;04")
    );
    assert_eq!(
        clip.keykode.clone(),
        Some([
            "KU 22 9012 1234+05".to_string(),
            "KU 22 9012 1234+09".to_string(),
            "0+04".to_string()
        ])
    );
    let elsewhere = ale_sheet(
        &rule,
        "/t/sh010.ale".into(),
        Path::new("/s/sh010.mxf"),
        1001,
        4,
    );
    assert!(
        matches!(&elsewhere, Err(PlanError::Ale(m)) if m.contains("not beside the product")),
        "{elsewhere:?}"
    );
    let itself = ale_sheet(
        &rule,
        "/s/sh010.mxf".into(),
        Path::new("/s/sh010.mxf"),
        1001,
        4,
    );
    assert!(
        matches!(&itself, Err(PlanError::Ale(m)) if m.contains("the product itself")),
        "{itself:?}"
    );
}

#[test]
fn frame_labels_are_those_of_the_files_own_frame() {
    let rule = rule(
        "  - name: a\n    match: \"*.dpx\"\n    timecode: {fps: 24, start: \"01:00:00:00\", at_frame: 1001}\n    keykode: {start: \"KU 22 9012 1234+05\", format: 35mm-4perf, at_frame: 1001, mfg: 1, type: 22}\n    run: [echo, \"{frame.timecode}\", \"{frame.keykode}\", \"{keykode.mfg}\"]\n",
    );
    let mut vars = Bindings::default();
    vars.insert("frame", "1012");
    bind_frame(&mut vars, &rule, Some(1001)).expect("in range");
    assert_eq!(vars.get("frame.timecode"), Some(b"01:00:00:11".as_slice()));
    assert_eq!(
        vars.get("frame.keykode"),
        Some(b"KU 22 9012 1235+00".as_slice())
    );
    let mut none = Bindings::default();
    bind_frame(&mut none, &rule, None).expect("nothing to bind");
    assert_eq!(
        none.iter().count(),
        0,
        "a file without a frame number binds neither"
    );

    let keykode = rule.keykode.as_ref().expect("keykode");
    let parts: Vec<_> = keykode
        .start
        .parts(keykode.codes)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    assert_eq!(
        parts,
        [
            "keykode.prefix=229012",
            "keykode.count=1234",
            "keykode.perf_offset=20",
            "keykode.perfs_per_frame=4",
            "keykode.perfs_per_count=64",
            "keykode.mfg=1",
            "keykode.type=22"
        ]
    );
    let mut names: Vec<&str> = crate::media::keykode::PART_VARIABLES.to_vec();
    names.extend(crate::media::keykode::CODE_VARIABLES);
    assert_eq!(
        parts
            .iter()
            .map(|p| p.split('=').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        names,
        "bound names are the names rules accept"
    );
}

#[test]
fn bound_names_are_the_names_rules_accept() {
    // rules checks templates against these lists at load; a name bound here but missing
    // there (or the reverse) would be an unknown variable or a plan-time failure.
    let names = |vars: &Bindings| vars.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
    let sorted = |list: &[&str]| {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let seq = sequence::group(
        Path::new("/s"),
        ["a.1001.tif", "a.1002.tif"]
            .iter()
            .map(std::ffi::OsStr::new),
    )
    .remove(0);
    let reading = sequence::reading(&seq, None, OnGaps::Warn, Path::new("/v")).expect("frames");
    let mut vars = Bindings::default();
    bind_sequence(&mut vars, &seq, &reading);
    assert_eq!(names(&vars), sorted(sequence::VARIABLES));

    let probed = Probed {
        codec: Some("prores".into()),
        profile: None,
        pix_fmt: Some("yuv422p10le".into()),
        width: Some(320),
        height: Some(180),
        fps: crate::media::timecode::Rate::parse("24").ok(),
        frames: Some(48),
        timecode: Some("01:00:00:00".into()),
        comment: None,
    };
    let mut vars = Bindings::default();
    bind_probe(&mut vars, &probed);
    assert_eq!(names(&vars), sorted(probe::PROBE_VARIABLES));
}

/// The plan route builds carries what the rule says of running it, not only the argv: the
/// value any node runs is the value stored.
#[test]
fn the_plan_carries_the_rules_timeout_retries_progress_and_notify() {
    let text = "version: 1\nwatch: [/show/shots]\nrules:\n  - name: r\n    match: \"**/*.mov\"\n    output: \"{dir}/out/{stem}.mp4\"\n    timeout: 90s\n    retries: 2\n    backoff: 10s\n    progress: ffmpeg\n    thumbnail: true\n    notify: {webhook: \"http://127.0.0.1:9/hook\", on: [failed]}\n    run: [ffmpeg, -i, \"{path}\", \"{out}\"]\n";
    let set = RuleSet::compile(
        crate::rules::parse(Path::new("r.yaml"), text, Path::new("/")).expect("valid"),
    )
    .expect("compiles");
    let job = plan(
        &set,
        0,
        Path::new("/show/shots"),
        Path::new("sh010/a.mov"),
        "t",
        None,
        &crate::route::cut::CutIndex::default(),
    )
    .expect("plans")
    .job;
    assert_eq!(job.timeout, Some(std::time::Duration::from_secs(90)));
    assert_eq!((job.retries, job.backoff.as_secs()), (2, 10));
    assert!(job.progress);
    assert!(job.thumbnail, "workers draw the poster frame too");
    assert_eq!(job.notify.len(), 1);
    assert_eq!(
        job.notify[0].webhook.as_deref(),
        Some("http://127.0.0.1:9/hook")
    );
    let out = job.output.expect("output");
    assert_eq!(out.final_path, PathBuf::from("/show/shots/sh010/out/a.mp4"));
    assert_eq!(job.steps[0][3], out.temp_path.into_os_string());
}
