use super::*;
use crate::deliver::ale::{AleClip, AleSheet};
use crate::deliver::copy::{TransferKind, TransferPlan};
use crate::deliver::hash::HashKind;
use crate::deliver::publish::OutputPaths;
use crate::deliver::verify::Expectations;
use crate::engine::mounts::WatcherMounts;
use crate::engine::stored_plan::FORMAT;
use crate::exec::plan::JobPlan;
use crate::exec::plan::PortableNotify;
use crate::os::path_text::{escape, unescape};
use crate::rules::NotifyEvent;
use crate::rules::template::Template;

#[test]
fn paths_survive_the_text_form() {
    for raw in [&b"/s/a b%20\xff\xfe.tif"[..], b"/plain", b"/100%/x\n"] {
        let path = PathBuf::from(OsString::from_vec(raw.to_vec()));
        assert_eq!(unescape(&escape(&path)), path);
    }
}

/// The text a watcher stores for `job`, planned under `roots` and `outputs`, without mount
/// facts.
fn stored(job: JobPlan, roots: &[(&str, &Path)], outputs: &[PathBuf]) -> String {
    let roots = roots
        .iter()
        .map(|(n, p)| ((*n).to_string(), p.to_path_buf()))
        .collect();
    StoredPlan::new(job, roots, outputs.to_vec(), &WatcherMounts::default()).to_text()
}

/// A claimed job of root `shots` with the plan `text`.
fn claimed(text: String, rel: &str, steps: Vec<Vec<OsString>>) -> ClaimedJob {
    ClaimedJob {
        claim: crate::store::queue::Claim {
            id: 1,
            token: 1,
            attempt: 1,
        },
        rule: "r".into(),
        input: crate::store::queue::RootedPath {
            root: "shots".into(),
            rel: rel.into(),
        },
        steps,
        output: None,
        plan: text,
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
    let job = JobPlan {
        steps: vec![vec![
            "cp".into(),
            on_watcher("a.1001.dpx").into(),
            on_watcher(".a.t.mxf").into(),
        ]],
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
        verify: Some(Expectations {
            checks: vec![("keykode".into(), "KU 22 9012 1234+05".into())],
            perfs_per_frame: Some(4),
            stock_codes: Some((1, 22)),
            decode: true,
        }),
        ..JobPlan::default()
    };
    let text = stored(job, &[("shots", watcher.path())], &[]);
    let map = PathMap {
        entries: vec![("shots".into(), farm.path().to_path_buf())],
    };
    let (mapped, ..) = job_spec(
        &claimed(text, "a.1001.dpx", Vec::new()),
        &map,
        Path::new("/state"),
    )
    .expect("mapped");
    let output = mapped.plan.output.expect("the output travels");
    assert_eq!(output.temp_path, farm.path().join(".a.t.mxf"));
    let sheet = output.ale.expect("the ALE travels");
    assert_eq!(sheet.final_path, farm.path().join("a.ale"));
    assert_eq!(sheet.clips, [clip]);
    let verify = mapped.plan.verify.expect("verify");
    assert_eq!(
        (verify.perfs_per_frame, verify.stock_codes, verify.decode),
        (Some(4), Some((1, 22)), true)
    );
    assert_eq!(
        mapped.plan.steps[0][1..],
        [
            farm.path().join("a.1001.dpx").into_os_string(),
            farm.path().join(".a.t.mxf").into_os_string()
        ],
        "the argv the plan carries is mapped"
    );
}

#[test]
fn a_copy_or_move_travels_to_a_worker_mapped() {
    let watcher = tempfile::tempdir().expect("dir");
    let farm = tempfile::tempdir().expect("dir");
    let (farm_shots, farm_san) = (farm.path().join("shots"), farm.path().join("san"));
    std::fs::create_dir_all(&farm_shots).expect("shots");
    std::fs::create_dir_all(&farm_san).expect("san");
    std::fs::write(farm_shots.join("a.mxf"), b"media").expect("input");
    let (shots, san) = (watcher.path().join("shots"), watcher.path().join("san"));
    let job = JobPlan {
        transfer: Some(TransferPlan {
            kind: TransferKind::Move,
            to: san.join("day1/a.mxf"),
            hashes: vec![HashKind::Xxh64, HashKind::Md5],
            mhl_root: Some(san.join("day1")),
        }),
        ..JobPlan::default()
    };
    let text = stored(job, &[("shots", &shots)], std::slice::from_ref(&san));
    let map = PathMap {
        entries: vec![
            ("shots".into(), farm_shots.clone()),
            (san.to_string_lossy().into_owned(), farm_san.clone()),
        ],
    };
    let (mapped, ..) = job_spec(
        &claimed(text, "a.mxf", Vec::new()),
        &map,
        Path::new("/state"),
    )
    .expect("mapped");
    assert_eq!(
        mapped.plan.transfer,
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
fn notify_targets_progress_and_retries_travel_and_a_newer_format_is_refused() {
    let watcher = tempfile::tempdir().expect("dir");
    std::fs::write(watcher.path().join("a.mov"), b"media").expect("input");
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
    let job = JobPlan {
        steps: vec![vec!["ffmpeg".into()]],
        progress: true,
        total_frames: Some(48),
        retries: 3,
        backoff: Duration::from_secs(7),
        notify: vec![PortableNotify::of(&target)],
        ..JobPlan::default()
    };
    let text = stored(job, &[("shots", watcher.path())], &[]);
    let (mapped, retries, notify) = job_spec(
        &claimed(text.clone(), "a.mov", Vec::new()),
        &PathMap::default(),
        Path::new("/s"),
    )
    .expect("spec");
    assert_eq!(
        (mapped.plan.progress, mapped.plan.total_frames),
        (true, Some(48))
    );
    assert_eq!((retries.retries, retries.backoff.as_secs()), (3, 7));
    assert_eq!(notify.len(), 1);
    assert_eq!(*notify[0], target);

    let newer = text.replacen(
        &format!("\"format\":{FORMAT}"),
        &format!("\"format\":{}", FORMAT + 1),
        1,
    );
    assert_ne!(newer, text);
    let refused = job_spec(
        &claimed(newer, "a.mov", Vec::new()),
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
    let known = NotifyTarget {
        events: vec![NotifyEvent::Done],
        webhook: Some("http://127.0.0.1:9/known".into()),
        command: None,
        stuck_after: Duration::from_secs(600),
        line: 0,
    };
    let mut newer = PortableNotify::of(&known);
    newer.on = vec!["done".into(), "exploded".into()];
    newer.webhook = Some("http://127.0.0.1:9/newer".into());
    let job = JobPlan {
        steps: vec![vec!["ffmpeg".into()]],
        notify: vec![PortableNotify::of(&known), newer],
        ..JobPlan::default()
    };
    let text = stored(job, &[("shots", watcher.path())], &[]);
    let (_, _, notify) = job_spec(
        &claimed(text, "a.mov", Vec::new()),
        &PathMap::default(),
        Path::new("/s"),
    )
    .expect("the job runs");
    assert_eq!(notify.len(), 1, "only the target it understands");
    assert_eq!(*notify[0], known);
}

#[test]
fn mount_facts_travel_with_the_plan() {
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
    let mounts = WatcherMounts {
        facts: vec![fact.clone()],
        any_empty: true,
    };
    let plan = StoredPlan::new(
        JobPlan::default(),
        vec![("shots".into(), "/srv/shots".into())],
        Vec::new(),
        &mounts,
    );
    assert_eq!(plan.mount_of(Path::new("/srv/shots")), Some(&fact));
    assert_eq!(StoredPlan::from_text(&plan.to_text(), &[]), Ok(plan));
}

/// Plans as earlier releases stored them (formats 1 to 4, their JSON verbatim) still run: their
/// argv comes from the job's steps, every path they name is mapped.
#[test]
fn plans_of_earlier_releases_still_run() {
    let watcher = tempfile::tempdir().expect("dir");
    let farm = tempfile::tempdir().expect("dir");
    std::fs::write(farm.path().join("a b.mxf"), b"media").expect("input");
    let w = escape(watcher.path());
    let steps = vec![vec![
        OsString::from("cp"),
        watcher.path().join("a b.mxf").into_os_string(),
        watcher.path().join(".a b.t.mov").into_os_string(),
    ]];
    let map = PathMap {
        entries: vec![("shots".into(), farm.path().to_path_buf())],
    };
    // Format 1: a product, a timeout, retries and plain checks.
    let v1 = format!(
        r#"{{"format":1,"roots":[["shots","{w}"]],"outputs":[],"output":["{w}/a b.mov","{w}/.a b.t.mov"],"timeout_ms":90000,"retries":2,"backoff_ms":5000,"verify":[["frames","48"]],"view":null}}"#
    );
    let (spec, retries, _) = job_spec(
        &claimed(v1, "a b.mxf", steps.clone()),
        &map,
        Path::new("/s"),
    )
    .expect("a format-1 plan runs");
    assert_eq!(
        spec.plan.steps[0][2],
        farm.path().join(".a b.t.mov").into_os_string()
    );
    let output = spec.plan.output.expect("output");
    assert_eq!(output.final_path, farm.path().join("a b.mov"));
    assert_eq!(spec.plan.timeout, Some(Duration::from_secs(90)));
    assert_eq!((retries.retries, retries.backoff.as_secs()), (2, 5));
    assert_eq!(
        spec.plan.verify.expect("verify").checks,
        [("frames".to_string(), "48".to_string())]
    );
    // Format 3: a move with its MHL folder and hashes.
    let v3 = format!(
        r#"{{"format":3,"roots":[["shots","{w}"]],"outputs":[],"output":null,"timeout_ms":null,"retries":0,"backoff_ms":0,"verify":null,"view":null,"transfer":{{"kind":"move","to":"{w}/san/a b.mxf","hashes":["xxh64","md5"],"mhl_root":"{w}/san"}}}}"#
    );
    let (spec, ..) = job_spec(&claimed(v3, "a b.mxf", Vec::new()), &map, Path::new("/s"))
        .expect("a format-3 plan runs");
    let transfer = spec.plan.transfer.expect("transfer");
    assert_eq!(
        (
            transfer.kind,
            transfer.to,
            transfer.hashes,
            transfer.mhl_root
        ),
        (
            TransferKind::Move,
            farm.path().join("san/a b.mxf"),
            vec![HashKind::Xxh64, HashKind::Md5],
            Some(farm.path().join("san"))
        )
    );
    // Format 4: notify targets, progress, decode.
    let v4 = format!(
        r#"{{"format":4,"roots":[["shots","{w}"]],"outputs":[],"output":null,"timeout_ms":null,"retries":0,"backoff_ms":0,"verify":[["codec","prores"]],"decode":true,"view":null,"notify":[{{"on":["done"],"webhook":"http://127.0.0.1:9/h","stuck_after_ms":600000}}],"progress":true,"total_frames":24}}"#
    );
    let (spec, _, notify) = job_spec(&claimed(v4, "a b.mxf", steps), &map, Path::new("/s"))
        .expect("a format-4 plan runs");
    assert!(spec.plan.verify.expect("verify").decode);
    assert_eq!(
        (spec.plan.progress, spec.plan.total_frames),
        (true, Some(24))
    );
    assert_eq!(notify.len(), 1);
}
