use super::*;
use crate::rules::NotifyEvent;
use crate::rules::template::Template;

#[test]
fn paths_survive_the_text_form() {
    for raw in [&b"/s/a b%20\xff\xfe.tif"[..], b"/plain", b"/100%/x\n"] {
        let path = PathBuf::from(OsString::from_vec(raw.to_vec()));
        assert_eq!(unescape(&escape(&path)), path);
    }
}

#[test]
fn an_ale_and_a_dpx_keykode_check_travel_to_a_worker_mapped() {
    let watcher = tempfile::tempdir().expect("dir");
    let farm = tempfile::tempdir().expect("dir");
    std::fs::write(farm.path().join("a.1001.dpx"), b"frame").expect("input");
    let on_watcher = |name: &str| watcher.path().join(name);
    let clip = AleClip {
        name: "a".into(),
        tape: "a".into(),
        source_file: "a.mxf".into(),
        start: "01:00:00:00".into(),
        end: "01:00:00:01".into(),
        keykode: None,
    };
    let mut spec = JobSpec {
        id: "1".into(),
        rule: "r".into(),
        path: on_watcher("a.1001.dpx"),
        steps: vec![vec!["cp".into()]],
        output: Some(OutputPaths {
            final_path: on_watcher("a.mxf"),
            temp_path: on_watcher(".a.t.mxf"),
            ale: Some(AleSheet {
                final_path: on_watcher("a.ale"),
                fps: "24".into(),
                video_format: "1080".into(),
                clips: vec![clip.clone()],
            }),
        }),
        allowed_roots: vec![watcher.path().to_path_buf()],
        timeout: None,
        log_path: "/l".into(),
        attempt: 1,
        claim: None,
        view: None,
        progress: false,
        total_frames: None,
        transfer: None,
        verify: Some(Expectations {
            checks: vec![("keykode".into(), "KU 22 9012 1234+05".into())],
            perfs_per_frame: Some(4),
            stock_codes: Some((1, 22)),
            decode: false,
        }),
    };
    let roots = [("shots".to_string(), watcher.path().to_path_buf())];
    let plan = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
    assert_eq!(plan.format, FORMAT_EDITORIAL, "older workers refuse it");
    let job = ClaimedJob {
        claim: crate::store::queue::Claim {
            id: 1,
            token: 1,
            attempt: 1,
        },
        rule: "r".into(),
        input: crate::store::queue::RootedPath {
            root: "shots".into(),
            rel: "a.1001.dpx".into(),
        },
        steps: spec.steps.clone(),
        output: Some(on_watcher("a.mxf")),
        plan: plan.to_text(),
    };
    let map = PathMap {
        entries: vec![("shots".into(), farm.path().to_path_buf())],
    };
    let (mapped, ..) = job_spec(&job, &map, Path::new("/state")).expect("mapped");
    let sheet = mapped.output.and_then(|o| o.ale).expect("the ALE travels");
    assert_eq!(sheet.final_path, farm.path().join("a.ale"));
    assert_eq!(sheet.clips, [clip]);
    let verify = mapped.verify.expect("verify");
    assert_eq!(
        (verify.perfs_per_frame, verify.stock_codes, verify.decode),
        (Some(4), Some((1, 22)), false)
    );

    // `decode: true` travels too, in a format older workers refuse rather than skip.
    spec.verify.as_mut().expect("verify").decode = true;
    let decoding = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
    assert_eq!(decoding.format, FORMAT_DECODE);
    assert!(decoding.to_text().contains("\"decode\":true"));
    let job = ClaimedJob {
        plan: decoding.to_text(),
        ..job
    };
    let (mapped, _, _) = job_spec(&job, &map, Path::new("/state")).expect("mapped");
    assert!(mapped.verify.expect("verify").decode);
    spec.verify.as_mut().expect("verify").decode = false;

    // Without either, the plan is the one format-1 workers already read.
    spec.output.as_mut().expect("output").ale = None;
    spec.verify = None;
    let plain = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
    assert_eq!(plain.format, 1);
    let text = plain.to_text();
    assert!(
        !text.contains("\"ale\"")
            && !text.contains("\"perfs_per_frame\"")
            && !text.contains("\"decode\""),
        "{text}"
    );
}

#[test]
fn a_copy_or_move_travels_to_a_worker_mapped_and_older_workers_refuse_it() {
    let watcher = tempfile::tempdir().expect("dir");
    let farm = tempfile::tempdir().expect("dir");
    let (farm_shots, farm_san) = (farm.path().join("shots"), farm.path().join("san"));
    std::fs::create_dir_all(&farm_shots).expect("shots");
    std::fs::create_dir_all(&farm_san).expect("san");
    std::fs::write(farm_shots.join("a.mxf"), b"media").expect("input");
    let (shots, san) = (watcher.path().join("shots"), watcher.path().join("san"));
    let spec = JobSpec {
        id: "1".into(),
        rule: "r".into(),
        path: shots.join("a.mxf"),
        steps: Vec::new(),
        output: None,
        allowed_roots: vec![shots.clone(), san.clone()],
        timeout: None,
        log_path: "/l".into(),
        attempt: 1,
        claim: None,
        view: None,
        verify: None,
        progress: false,
        total_frames: None,
        transfer: Some(TransferPlan {
            kind: TransferKind::Move,
            to: san.join("day1/a.mxf"),
            hashes: vec![HashKind::Xxh64, HashKind::Md5],
            mhl_root: Some(san.join("day1")),
        }),
    };
    let roots = [("shots".to_string(), shots.clone())];
    let plan = PortablePlan::of(&spec, &roots, std::slice::from_ref(&san), 0, Duration::ZERO);
    assert_eq!(plan.format, FORMAT_TRANSFER, "older workers refuse it");
    let job = ClaimedJob {
        claim: crate::store::queue::Claim {
            id: 1,
            token: 1,
            attempt: 1,
        },
        rule: "r".into(),
        input: crate::store::queue::RootedPath {
            root: "shots".into(),
            rel: "a.mxf".into(),
        },
        steps: Vec::new(),
        output: None,
        plan: plan.to_text(),
    };
    let map = PathMap {
        entries: vec![
            ("shots".into(), farm_shots.clone()),
            (san.to_string_lossy().into_owned(), farm_san.clone()),
        ],
    };
    let (mapped, ..) = job_spec(&job, &map, Path::new("/state")).expect("mapped");
    assert_eq!(
        mapped.transfer,
        Some(TransferPlan {
            kind: TransferKind::Move,
            to: farm_san.join("day1/a.mxf"),
            hashes: vec![HashKind::Xxh64, HashKind::Md5],
            mhl_root: Some(farm_san.join("day1")),
        })
    );
}

#[test]
fn arguments_map_by_whole_folders_only() {
    let pairs = vec![(PathBuf::from("/mnt/shots"), PathBuf::from("/farm/shots"))];
    let arg = |s: &str| OsString::from(s);
    assert_eq!(
        map_arg(&arg("/mnt/shots/a.tif"), &pairs),
        arg("/farm/shots/a.tif")
    );
    assert_eq!(
        map_arg(&arg("-i=/mnt/shots/a.tif"), &pairs),
        arg("-i=/farm/shots/a.tif")
    );
    assert_eq!(map_arg(&arg("/mnt/shots"), &pairs), arg("/farm/shots"));
    assert_eq!(
        map_arg(&arg("/mnt/shots2/a.tif"), &pairs),
        arg("/mnt/shots2/a.tif")
    );
    assert_eq!(map_arg(&arg("-y"), &pairs), arg("-y"));
    assert_eq!(
        map_arg(&arg("--lut=/luts/mnt/shots/x.cube"), &pairs),
        arg("--lut=/luts/mnt/shots/x.cube"),
        "a folder's text in the middle of another path is not a path"
    );
    // A deeper root mounted at the same place keeps its paths, whatever a shorter one maps.
    let nested = vec![
        (
            PathBuf::from("/mnt/shots/show"),
            PathBuf::from("/mnt/shots/show"),
        ),
        (PathBuf::from("/mnt/shots"), PathBuf::from("/net/shots")),
    ];
    assert_eq!(
        map_arg(&arg("/mnt/shots/show/.a.srjob1-1.mov"), &nested),
        arg("/mnt/shots/show/.a.srjob1-1.mov")
    );
    assert_eq!(
        map_arg(&arg("/mnt/shots/b.tif"), &nested),
        arg("/net/shots/b.tif")
    );
    let raw = OsString::from_vec(b"/mnt/shots/\xff\xfe a.tif".to_vec());
    assert_eq!(
        map_arg(&raw, &pairs).as_bytes(),
        b"/farm/shots/\xff\xfe a.tif",
        "bytes that are not UTF-8 survive"
    );
}

#[test]
fn notify_targets_and_progress_travel_and_older_workers_refuse_notify() {
    let watcher = tempfile::tempdir().expect("dir");
    std::fs::write(watcher.path().join("a.mov"), b"media").expect("input");
    let spec = JobSpec {
        id: "1".into(),
        rule: "r".into(),
        path: watcher.path().join("a.mov"),
        steps: vec![vec!["ffmpeg".into()]],
        output: None,
        allowed_roots: vec![watcher.path().to_path_buf()],
        timeout: None,
        log_path: "/l".into(),
        attempt: 1,
        claim: None,
        view: None,
        verify: None,
        progress: true,
        total_frames: Some(48),
        transfer: None,
    };
    let roots = [("shots".to_string(), watcher.path().to_path_buf())];
    let quiet = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
    assert_eq!(quiet.format, 1, "progress alone needs no new format");
    let target = NotifyTarget {
        events: vec![NotifyEvent::Done, NotifyEvent::Stuck],
        webhook: Some("http://127.0.0.1:9/hook".into()),
        command: Some(vec![
            Template::parse("/bin/tell").expect("template"),
            Template::parse("{rule}: {event} {path}").expect("template"),
        ]),
        stuck_after: Duration::from_secs(600),
        line: 0,
    };
    let plan = quiet.clone().notifying(std::slice::from_ref(&target));
    assert_eq!(plan.format, FORMAT_NOTIFY, "older workers refuse it");
    let job = ClaimedJob {
        claim: crate::store::queue::Claim {
            id: 1,
            token: 1,
            attempt: 1,
        },
        rule: "r".into(),
        input: crate::store::queue::RootedPath {
            root: "shots".into(),
            rel: "a.mov".into(),
        },
        steps: spec.steps.clone(),
        output: None,
        plan: plan.to_text(),
    };
    let (mapped, _, notify) = job_spec(&job, &PathMap::default(), Path::new("/s")).expect("spec");
    assert_eq!((mapped.progress, mapped.total_frames), (true, Some(48)));
    assert_eq!(notify.len(), 1);
    assert_eq!(*notify[0], target);

    // An earlier format still runs; a later one is refused with a fix.
    let older = ClaimedJob {
        plan: quiet.to_text(),
        ..job.clone()
    };
    assert!(job_spec(&older, &PathMap::default(), Path::new("/s")).is_ok());
    let mut newer = plan.clone();
    newer.format = FORMAT + 1;
    let refused = job_spec(
        &ClaimedJob {
            plan: newer.to_text(),
            ..job
        },
        &PathMap::default(),
        Path::new("/s"),
    )
    .expect_err("newer");
    assert!(refused.contains("upgrade this worker"), "{refused}");
}

#[test]
fn a_notify_target_naming_an_unknown_event_is_left_out_not_the_job() {
    let watcher = tempfile::tempdir().expect("dir");
    std::fs::write(watcher.path().join("a.mov"), b"media").expect("input");
    let spec = JobSpec {
        id: "1".into(),
        rule: "r".into(),
        path: watcher.path().join("a.mov"),
        steps: vec![vec!["ffmpeg".into()]],
        output: None,
        allowed_roots: vec![watcher.path().to_path_buf()],
        timeout: None,
        log_path: "/l".into(),
        attempt: 1,
        claim: None,
        view: None,
        verify: None,
        progress: false,
        total_frames: None,
        transfer: None,
    };
    let roots = [("shots".to_string(), watcher.path().to_path_buf())];
    let known = NotifyTarget {
        events: vec![NotifyEvent::Done],
        webhook: Some("http://127.0.0.1:9/known".into()),
        command: None,
        stuck_after: Duration::from_secs(600),
        line: 0,
    };
    let mut plan = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO)
        .notifying(&[known.clone(), known.clone()]);
    plan.notify[1].on = vec!["done".into(), "exploded".into()];
    plan.notify[1].webhook = Some("http://127.0.0.1:9/newer".into());
    let job = ClaimedJob {
        claim: crate::store::queue::Claim {
            id: 1,
            token: 1,
            attempt: 1,
        },
        rule: "r".into(),
        input: crate::store::queue::RootedPath {
            root: "shots".into(),
            rel: "a.mov".into(),
        },
        steps: spec.steps.clone(),
        output: None,
        plan: plan.to_text(),
    };
    let (_, _, notify) =
        job_spec(&job, &PathMap::default(), Path::new("/s")).expect("the job runs");
    assert_eq!(notify.len(), 1, "only the target it understands");
    assert_eq!(*notify[0], known);
}

#[test]
fn mount_facts_raise_the_format_only_for_an_empty_folder_and_old_plans_still_read() {
    let spec = JobSpec {
        id: "1".into(),
        rule: "r".into(),
        path: "/srv/shots/a.dat".into(),
        steps: vec![vec!["cp".into()]],
        output: None,
        allowed_roots: Vec::new(),
        timeout: None,
        log_path: "/l".into(),
        attempt: 1,
        claim: None,
        view: None,
        progress: false,
        total_frames: None,
        transfer: None,
        verify: None,
    };
    let roots = [("shots".to_string(), PathBuf::from("/srv/shots"))];
    let plan = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
    let fact = MountFact {
        path: "/srv/shots".into(),
        mount_point: "/srv".into(),
        depth: 1,
        fs_type: "nfs4".into(),
        source: "srv:/export%20x".into(),
        root: Some("/".into()),
        machine: Some("machine:m1".into()),
        dev: Some("0:52".into()),
        boot: None,
    };
    let mut mounts = WatcherMounts {
        facts: vec![fact.clone()],
        any_empty: false,
    };
    let full = plan.clone().with_mounts(&mounts);
    assert_eq!(
        full.format, 1,
        "older workers judge non-empty folders as before"
    );
    assert_eq!(full.mount_of(Path::new("/srv/shots")), Some(&fact));
    let text = full.to_text();
    assert_eq!(PortablePlan::from_text(&text), Ok(full));
    mounts.any_empty = true;
    assert_eq!(plan.clone().with_mounts(&mounts).format, FORMAT_MOUNTS);
    // A plan of the previous release (no facts) still runs; a newer format is refused.
    let old = r#"{"format":3,"roots":[["shots","/srv/shots"]],"outputs":[],"output":null,"timeout_ms":null,"retries":0,"backoff_ms":0,"verify":null,"view":null}"#;
    assert!(PortablePlan::from_text(old).is_ok_and(|p| p.mounts.is_empty()));
    let newer = old.replace("\"format\":3", "\"format\":5");
    assert!(
        PortablePlan::from_text(&newer).is_err_and(|e| e.contains("upgrade this worker")),
        "{newer}"
    );
}
