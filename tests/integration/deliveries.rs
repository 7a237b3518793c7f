//! `copy:` and `move:` through the real daemon, checked with independent tools: the ASC's
//! reference `ascmhl` (its `ascmhl-debug verify` hashes every file against the history),
//! `md5sum`, `sha1sum` and Python's `xxhash` (what `ascmhl` itself uses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::daemon::Daemon;
use crate::env::{Env, stderr};

/// Real media: `seconds` of a 1280x720 test pattern in MPEG-2, as MXF or MOV (a few MB).
fn make_media(path: &Path, seconds: u32) {
    std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
    let format = if path.extension().is_some_and(|e| e == "mxf") {
        "mxf"
    } else {
        "mov"
    };
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=24")
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "mpeg2video",
            "-q:v",
            "2",
        ])
        .args(["-f", format])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

/// `name` from `scripts/deps test`'s ascmhl venv when there is one, else from `PATH`.
fn mhl_tool(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/ascmhl-venv/bin")
        .join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// `ascmhl-debug verify ROOT`: the reference implementation's check of every file under `root`
/// against its ASC MHL history (chain C4 ids included).
fn ascmhl_verify(root: &Path) -> Output {
    Command::new(mhl_tool("ascmhl-debug"))
        .arg("verify")
        .arg(root)
        .output()
        .expect("ascmhl-debug runs (scripts/deps test installs ascmhl)")
}

fn assert_verifies(root: &Path) {
    let out = ascmhl_verify(root);
    assert!(
        out.status.success(),
        "ascmhl verify {} failed: {}{}",
        root.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info = Command::new(mhl_tool("ascmhl"))
        .arg("info")
        .arg(root)
        .output()
        .expect("ascmhl runs");
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success() && text.contains("Generation 1"),
        "ascmhl info {}: {text}{}",
        root.display(),
        String::from_utf8_lossy(&info.stderr)
    );
}

/// A hash of `path` by a tool that is not shotrouter.
fn independent_hash(kind: &str, path: &Path) -> String {
    let out = match kind {
        "md5" | "sha1" => Command::new(format!("{kind}sum")).arg(path).output(),
        "xxh64" | "xxh3" => {
            let function = if kind == "xxh64" { "xxh64" } else { "xxh3_64" };
            // The python that has ascmhl has its `xxhash` module.
            let python = mhl_tool("python3");
            let python = if python.is_absolute() {
                python
            } else {
                PathBuf::from("python3")
            };
            Command::new(python)
                .args([
                    "-c",
                    &format!(
                        "import sys, xxhash; print(xxhash.{function}(open(sys.argv[1], 'rb').read()).hexdigest())"
                    ),
                ])
                .arg(path)
                .output()
        }
        other => panic!("no independent tool for {other}"),
    }
    .expect("hash tool runs");
    assert!(out.status.success(), "{kind} of {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The `== KIND HEX PATH` lines of every job log under the env's state folder.
fn logged_hashes(env: &Env) -> BTreeMap<(String, PathBuf), String> {
    let mut found = BTreeMap::new();
    let mut folders = vec![env.path(".shotrouter/logs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                let mut parts = line.splitn(4, ' ');
                if let (Some("=="), Some(kind), Some(hex), Some(file)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                    && ["xxh64", "xxh3", "md5", "sha1"].contains(&kind)
                {
                    found.insert((kind.to_string(), PathBuf::from(file)), hex.to_string());
                }
            }
        }
    }
    found
}

fn job_logs(env: &Env) -> String {
    let mut all = String::new();
    let mut folders = vec![env.path(".shotrouter/logs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    all
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.strip_prefix(root).expect("below").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn copies_and_moves_of_real_media_verify_with_each_hash_and_ascmhl() {
    let env = Env::new();
    let san = env.path("san");
    // Each hash on its own delivery folder (so each history verifies by itself), a move of the
    // MXF with every hash, and a product of commands copied after it is published.
    let mut rules = format!(
        "version: 1\nwatch: [shots]\noutputs: [{}]\njobs: 4\nrules:\n",
        san.display()
    );
    for kind in ["xxh64", "xxh3", "md5", "sha1"] {
        rules.push_str(&format!(
            "  - name: copy-{kind}\n    match: \"**/*.mov\"\n    copy: {{to: \"{}/{kind}/{{rel}}\", hash: {kind}, mhl: true}}\n",
            san.display()
        ));
    }
    rules.push_str(&format!(
        "  - name: move-all\n    match: \"**/*.mxf\"\n    move: {{to: \"{}/moved/{{rel}}\", hash: [xxh64, xxh3, md5, sha1], mhl: true}}\n",
        san.display()
    ));
    rules.push_str(&format!(
        "  - name: product\n    match: \"**/*.mov\"\n    output: \"{{root}}/../review/{{stem}}_review.mov\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n    copy: {{to: \"{}/review/{{stem}}_review.mov\", hash: [md5], mhl: true}}\n",
        san.display()
    ));
    rules = rules.replace(
        "outputs: [",
        &format!("outputs: [{}, ", env.path("review").display()),
    );
    env.write("rules.yaml", rules);
    let mov = env.path("shots/sq010/sh010 plate $(x) 'q'.mov");
    let mxf = env.path("shots/sq010/sh010_avid.mxf");
    make_media(&mov, 1);
    make_media(&mxf, 1);
    let mxf_bytes = std::fs::read(&mxf).expect("mxf");
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let rel_mov = Path::new("sq010/sh010 plate $(x) 'q'.mov");
    for kind in ["xxh64", "xxh3", "md5", "sha1"] {
        let copy = san.join(kind).join(rel_mov);
        assert_eq!(
            std::fs::read(&copy).expect("copied"),
            std::fs::read(&mov).expect("source")
        );
        assert_verifies(&san.join(kind));
    }
    assert!(mov.exists(), "a copy keeps its source");
    assert!(!mxf.exists(), "a move removes its source once verified");
    let moved = san.join("moved/sq010/sh010_avid.mxf");
    assert_eq!(std::fs::read(&moved).expect("moved"), mxf_bytes);
    assert_verifies(&san.join("moved"));
    assert_verifies(&san.join("review"));
    assert_eq!(
        files_under(&san.join("review")).len(),
        4,
        "the copy, one generation, the chain and the lock"
    );

    // The hashes in the job logs are the ones independent tools compute.
    let logged = logged_hashes(&env);
    for kind in ["xxh64", "xxh3", "md5", "sha1"] {
        let copy = san.join(kind).join(rel_mov);
        assert_eq!(
            logged.get(&(kind.to_string(), copy.clone())),
            Some(&independent_hash(kind, &copy)),
            "{kind} of {}",
            copy.display()
        );
        assert_eq!(
            logged.get(&(kind.to_string(), moved.clone())),
            Some(&independent_hash(kind, &moved)),
            "{kind} of the moved MXF"
        );
    }
}

#[test]
fn a_file_corrupted_after_delivery_is_reported_by_ascmhl() {
    let env = Env::new();
    let san = env.path("san");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [{0}]\nrules:\n  - name: san\n    match: \"**/*.mov\"\n    copy: {{to: \"{0}/day1/{{rel}}\", hash: xxh64, mhl: true}}\n",
            san.display()
        ),
    );
    make_media(&env.path("shots/sq010/a.mov"), 1);
    make_media(&env.path("shots/sq010/b.mov"), 1);
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_verifies(&san.join("day1"));
    // One byte flipped in the middle of one copy, size and name unchanged.
    let victim = san.join("day1/sq010/b.mov");
    let mut bytes = std::fs::read(&victim).expect("copy");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, &bytes).expect("corrupt");
    let out = ascmhl_verify(&san.join("day1"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "ascmhl accepted a corrupted file: {said}"
    );
    assert!(
        said.contains("hash mismatch") && said.contains("sq010/b.mov"),
        "{said}"
    );
    assert!(
        !said.contains("sq010/a.mov"),
        "only the corrupted file is named: {said}"
    );
}

/// A small tmpfs mounted for one test (we are root in CI), unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_move_onto_a_full_destination_fails_and_leaves_the_source_and_no_partial_file() {
    let env = Env::new();
    let full = env.path("full");
    let _tmpfs = Tmpfs::mount(&full, "1m");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [{0}]\nrules:\n  - name: san\n    match: \"**/*.mxf\"\n    move: {{to: \"{0}/day1/{{rel}}\", hash: [xxh64, md5], mhl: true}}\n",
            full.display()
        ),
    );
    let source = env.path("shots/sq010/big.mxf");
    make_media(&source, 4);
    let before = std::fs::read(&source).expect("source");
    assert!(before.len() > 2 << 20, "the media outgrows the 1 MiB tmpfs");
    let out = env.run(&["watch", "--once", "rules.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the job fails: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&source).expect("source intact"), before);
    let left: Vec<PathBuf> = files_under(&full);
    assert!(
        left.is_empty(),
        "nothing left on the full destination: {left:?}"
    );
    let logs = job_logs(&env);
    assert!(
        logs.contains("cannot move to") && logs.contains("No space left on device"),
        "{logs}"
    );
    assert!(
        logs.contains("the source is intact and nothing was left at the destination"),
        "{logs}"
    );
}

#[test]
fn twenty_concurrent_deliveries_into_one_mhl_folder_keep_a_history_that_verifies() {
    let env = Env::new();
    let san = env.path("san");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\noutputs: [{0}]\njobs: 6\nrules:\n  - name: san\n    match: \"**/*.mov\"\n    copy: {{to: \"{0}/day1/{{rel}}\", hash: [xxh64, md5], mhl: true}}\n",
            san.display()
        ),
    );
    // One clip, renamed 20 ways: the deliveries are small, so their MHL records overlap.
    let staging = env.path("staging/clip.mov");
    make_media(&staging, 1);
    let clip = std::fs::read(&staging).expect("clip");
    std::fs::create_dir_all(env.path("shots/sq010")).expect("folder");
    let daemon = Daemon::start(&env, &[], &[]);
    for i in 0..20 {
        let name = env.path(format!("shots/.sh{i:03}.part"));
        std::fs::write(&name, &clip).expect("write");
        std::fs::rename(&name, env.path(format!("shots/sq010/sh{i:03}.mov"))).expect("arrive");
    }
    daemon.wait_idle_with(20, Duration::from_secs(120));
    assert_eq!(daemon.stop(), Some(0));
    assert_verifies(&san.join("day1"));
    let history = san.join("day1/ascmhl");
    let mut generations: Vec<String> = std::fs::read_dir(&history)
        .expect("history")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mhl"))
        .collect();
    generations.sort();
    let numbers: Vec<String> = generations.iter().map(|n| n[..4].to_string()).collect();
    let expected: Vec<String> = (1..=20).map(|n| format!("{n:04}")).collect();
    assert_eq!(
        numbers, expected,
        "one generation each, numbered without gaps"
    );
    let chain = std::fs::read_to_string(history.join("ascmhl_chain.xml")).expect("chain");
    assert_eq!(
        chain.matches("<hashlist sequencenr=").count(),
        20,
        "{chain}"
    );
    for name in &generations {
        assert!(
            chain.contains(&format!("<path>{name}</path>")),
            "{name} chained"
        );
    }
}

#[test]
fn two_daemons_delivering_into_one_mhl_folder_share_one_history() {
    let env = Env::new();
    let san = env.path("san");
    let clip = env.path("staging/clip.mov");
    make_media(&clip, 1);
    let clip = std::fs::read(&clip).expect("clip");
    // Two processes, each with its own rules, tree and store, into the same SAN folder.
    for side in ["a", "b"] {
        env.write(
            format!("{side}/rules.yaml"),
            format!(
                "version: 1\nwatch: [shots]\noutputs: [{0}]\njobs: 4\nrules:\n  - name: san\n    match: \"**/*.mov\"\n    copy: {{to: \"{0}/day1/{side}/{{rel}}\", hash: xxh64, mhl: true}}\n",
                san.display()
            ),
        );
        for i in 0..10 {
            env.write(format!("{side}/shots/sh{i:03}.mov"), &clip);
        }
    }
    let mut children: Vec<std::process::Child> = ["a", "b"]
        .iter()
        .map(|side| {
            env.command(&["watch", "--once", &format!("{side}/rules.yaml")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("shotrouter starts")
        })
        .collect();
    for child in &mut children {
        assert_eq!(child.wait().expect("exits").code(), Some(0));
    }
    assert_verifies(&san.join("day1"));
    let chain = std::fs::read_to_string(san.join("day1/ascmhl/ascmhl_chain.xml")).expect("chain");
    let numbers: Vec<usize> = (1..=20)
        .map(|n| {
            chain
                .matches(&format!("<hashlist sequencenr=\"{n}\">"))
                .count()
        })
        .collect();
    assert_eq!(
        numbers,
        vec![1; 20],
        "generations 1 to 20, once each: {chain}"
    );
}
