//! Jobs on a real one-node Slurm cluster (`helpers::slurm`): a burst of files is a handful of
//! array submissions, hostile file names reach the farm's converter as one argv element each,
//! a task cancelled in Slurm fails its job saying so, and a controller that goes away is waited
//! for, never read as the jobs having failed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::cluster::jobs;
use crate::daemon::{Daemon, argvdump, records};
use crate::env::{Env, stderr, wait_until};
use crate::helpers::slurm::Cluster;

const LIMIT: Duration = Duration::from_secs(120);

/// A rules file whose one rule runs on the farm: it records its argv, then copies the input to
/// its product.
fn farm_rules(env: &Env, extra: &str) {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nslurm:\n  spool: {spool}\n  poll: 300ms\nrules:\n  - name: farm\n    match: \"**/*.dat\"\n    executor: slurm\n    output: \"{{dir}}/out/{{stem}}.out\"\n    steps: [[{dump}, {runs}, \"{{path}}\", \"{{name}}\"], [cp, \"{{path}}\", \"{{out}}\"]]\n{extra}",
            spool = env.path("spool").display(),
            dump = argvdump().display(),
            runs = env.path("runs.log").display(),
        ),
    );
}

/// A rules file whose one rule, `gated`, runs on the farm: each task waits until the returned
/// path (the gate) exists, then copies its input to its product.
fn gated_rules(env: &Env) -> std::path::PathBuf {
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let gate = env.path("gate");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nslurm: {{spool: {spool}, poll: 300ms}}\nrules:\n  - name: gated\n    match: \"*.dat\"\n    executor: slurm\n    output: \"{{dir}}/{{stem}}.out\"\n    run: [sh, -c, 'while [ ! -e \"$0\" ]; do sleep 0.1; done; cp \"$1\" \"$2\"', {gate}, \"{{path}}\", \"{{out}}\"]\n",
            spool = env.path("spool").display(),
            gate = gate.display(),
        ),
    );
    gate
}

/// Whether a task of the array named `name` runs now.
fn running(cluster: &Cluster, name: &str) -> bool {
    let out = cluster
        .command("squeue")
        .args(["-r", "--noheader", "--states=RUNNING", "--format=%j"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout).contains(name)
}

/// The arrays the cluster knows (ids), and their tasks, of shotrouter's jobs.
fn arrays(cluster: &Cluster) -> (HashSet<String>, usize) {
    let out = cluster
        .command("squeue")
        .args(["-r", "--noheader", "--states=all", "--format=%F|%j"])
        .output()
        .expect("squeue");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ids = HashSet::new();
    let mut tasks = 0;
    for line in text.lines() {
        if let Some((id, name)) = line.trim().split_once('|')
            && name.starts_with("shotrouter-")
        {
            ids.insert(id.to_string());
            tasks += 1;
        }
    }
    (ids, tasks)
}

#[test]
fn a_burst_is_a_handful_of_arrays_and_hostile_names_are_one_argv_element_on_the_farm() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    farm_rules(&env, "");
    let hostile: Vec<Vec<u8>> = vec![
        b"a b'$(touch pwned)\"; y.dat".to_vec(),
        b"line\nbreak.dat".to_vec(),
        b"<script>alert(1)<\\script>.dat".to_vec(),
        b"caf\xe9 latin1.dat".to_vec(),
        b"back\\slash `tick` %s.dat".to_vec(),
    ];
    let mut names: Vec<Vec<u8>> = (0..60)
        .map(|i| format!("f{i:03}.dat").into_bytes())
        .collect();
    names.extend(hostile.iter().cloned());
    for name in &names {
        std::fs::write(env.path("shots").join(OsStr::from_bytes(name)), name).expect("input");
    }
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let out = env
        .command(&[
            "watch",
            "--once",
            env.path("rules.yaml").to_str().expect("utf-8"),
        ])
        .env("SLURM_CONF", &conf)
        .output()
        .expect("watch --once");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let rows = jobs(
        &env,
        &["--state", env.path(".shotrouter").to_str().expect("utf-8")],
    );
    let done = rows.iter().filter(|r| r["status"] == "done").count();
    assert_eq!(done, names.len(), "every job done: {rows:#?}");
    for name in &names {
        let stem = &name[..name.len() - 4];
        let mut product = stem.to_vec();
        product.extend_from_slice(b".out");
        let path = env.path("shots/out").join(OsStr::from_bytes(&product));
        assert_eq!(
            std::fs::read(&path).expect("product"),
            *name,
            "{}",
            path.display()
        );
    }
    // Each task's argv arrived as planned: the path and the name, one element each.
    let seen: HashSet<Vec<u8>> = records(&env.path("runs.log"))
        .into_iter()
        .map(|record| {
            assert_eq!(record.len(), 2, "two arguments: {record:?}");
            record[1].clone()
        })
        .collect();
    for name in &hostile {
        assert!(
            seen.contains(name),
            "{:?} reached the farm intact",
            String::from_utf8_lossy(name)
        );
    }
    assert!(
        !env.path("shots/pwned").exists() && !env.root().join("pwned").exists(),
        "no shell read a file name"
    );
    let (ids, tasks) = arrays(&cluster);
    assert_eq!(tasks, names.len(), "one task per job");
    assert!(
        ids.len() <= 3,
        "a burst of {} files is a handful of submissions, not {}: {ids:?}",
        names.len(),
        ids.len()
    );
    // The farm's output is in the job's log, as a local job's is.
    let job = env.run(&[
        "job",
        "1",
        "--state",
        env.path(".shotrouter").to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&job.stdout);
    assert!(text.contains("submitted to Slurm as task"), "{text}");
    assert!(
        text.contains("farm      slurm job "),
        "the job names its Slurm task: {text}"
    );
    assert!(
        text.contains("== step 1 on"),
        "the task's output is in the job's log: {text}"
    );
}

#[test]
fn a_task_cancelled_in_slurm_fails_its_job_saying_so() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nslurm: {{spool: {}, poll: 300ms}}\nrules:\n  - name: long\n    match: \"*.dat\"\n    executor: slurm\n    run: [sleep, \"300\"]\n",
            env.path("spool").display()
        ),
    );
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    env.write("shots/a.dat", "x");
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    let mut task = String::new();
    wait_until("the task to run on the farm", LIMIT, || {
        let out = cluster
            .command("squeue")
            .args(["-r", "--noheader", "--states=RUNNING", "--format=%i|%j"])
            .output()
            .expect("squeue");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match text.lines().find(|l| l.contains("shotrouter-long")) {
            Some(line) => {
                task = line
                    .split('|')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                true
            }
            None => false,
        }
    });
    let status = cluster
        .command("scancel")
        .arg(&task)
        .status()
        .expect("scancel");
    assert!(status.success());
    wait_until("the job to fail", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .any(|r| r["status"] == "failed")
    });
    let rows = jobs(&env, &["--state", state]);
    let result = rows[0]["result"].as_str().unwrap_or_default().to_string();
    assert!(result.contains("cancelled in Slurm"), "{rows:#?}");
    drop(daemon);
}

#[test]
fn a_controller_that_goes_away_is_waited_for_and_the_job_still_lands() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    let gate = gated_rules(&env);
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    env.write("shots/a.dat", "frames");
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    wait_until("the task to run", LIMIT, || {
        running(&cluster, "shotrouter-gated")
    });
    cluster.stop_controller();
    // The task finishes while nobody can ask Slurm about it; polls fail meanwhile.
    std::fs::write(&gate, "go").expect("gate");
    wait_until("the task's end record", LIMIT, || {
        std::fs::read_dir(env.path("spool/ends")).is_ok_and(|d| d.count() > 0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let rows = jobs(&env, &["--state", state]);
    assert_eq!(
        rows[0]["status"], "running",
        "a silent controller fails nothing: {rows:#?}"
    );
    cluster.start_controller();
    wait_until("the job to be done once Slurm answers", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .any(|r| r["status"] == "done")
    });
    assert_eq!(
        std::fs::read(env.path("shots/a.out")).expect("product"),
        b"frames"
    );
    drop(daemon);
}

#[test]
fn a_task_whose_node_fails_runs_again_without_spending_an_attempt() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    let gate = gated_rules(&env);
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    env.write("shots/a.dat", "frames");
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    let task_runs = || running(&cluster, "shotrouter-gated");
    wait_until("the task to run", LIMIT, task_runs);
    // The node goes down under the running task: Slurm ends it NODE_FAIL (shotrouter submits
    // with `--no-requeue`), and shotrouter submits it again.
    let node = format!("nodename={}", cluster.node());
    cluster.run(
        "scontrol",
        &["update", &node, "state=down", "reason=shotrouter-test"],
    );
    wait_until("the task to leave the failed node", LIMIT, || !task_runs());
    // The node takes `resume` once its failed task is cleaned up (or is back already: slurmd
    // registers again, `ReturnToService=2`).
    wait_until("the node to come back", LIMIT, || {
        let _ = cluster
            .command("scontrol")
            .args(["update", &node, "state=resume"])
            .stderr(std::process::Stdio::null())
            .status();
        cluster.node_state().is_some_and(|s| {
            s.starts_with("idle") || s.starts_with("alloc") || s.starts_with("mix")
        })
    });
    std::fs::write(&gate, "go").expect("gate");
    wait_until("the job to be done", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .any(|r| r["status"] == "done")
    });
    let rows = jobs(&env, &["--state", state]);
    assert_eq!(
        rows[0]["attempts"], 1,
        "a lost node spends no attempt: {rows:#?}"
    );
    let job = env.run(&["job", "1", "--state", state]);
    let text = String::from_utf8_lossy(&job.stdout);
    assert!(
        text.contains("NODE_FAIL") && text.contains("submitted again"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(env.path("shots/a.out")).expect("product"),
        b"frames"
    );
    drop(daemon);
}

#[test]
fn a_failing_task_is_retried_and_shotrouter_cancel_stops_a_farm_job() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let tries = env.path("tries");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nslurm: {{spool: {spool}, poll: 300ms}}\nrules:\n  - name: flaky\n    match: \"*.dat\"\n    executor: slurm\n    retries: 1\n    backoff: 100ms\n    output: \"{{dir}}/{{stem}}.out\"\n    run: [sh, -c, 'echo try >> \"$0\"; if [ $(wc -l < \"$0\") -lt 2 ]; then echo first try fails >&2; exit 4; fi; cp \"$1\" \"$2\"', {tries}, \"{{path}}\", \"{{out}}\"]\n  - name: long\n    match: \"*.long\"\n    executor: slurm\n    run: [sleep, \"300\"]\n",
            spool = env.path("spool").display(),
            tries = tries.display(),
        ),
    );
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    env.write("shots/a.dat", "frames");
    wait_until("the retried job to be done", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .any(|r| r["status"] == "done")
    });
    let rows = jobs(&env, &["--state", state]);
    assert_eq!(rows[0]["attempts"], 2, "failed once, then done: {rows:#?}");
    assert_eq!(
        std::fs::read(env.path("shots/a.out")).expect("product"),
        b"frames"
    );
    let job = env.run(&["job", "1", "--state", state]);
    let text = String::from_utf8_lossy(&job.stdout);
    assert!(
        text.contains("first try fails") && text.contains("exited with status 4"),
        "{text}"
    );

    env.write("shots/b.long", "x");
    wait_until("the long task to run on the farm", LIMIT, || {
        running(&cluster, "shotrouter-long")
    });
    let out = env
        .command(&["cancel", "2", "--state", state])
        .env("SLURM_CONF", &conf)
        .output()
        .expect("cancel");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("the job to be cancelled and its task gone", LIMIT, || {
        let cancelled = jobs(&env, &["--state", state])
            .iter()
            .any(|r| r["id"] == 2 && r["status"] == "cancelled");
        let out = cluster
            .command("squeue")
            .args([
                "-r",
                "--noheader",
                "--states=PENDING,RUNNING,COMPLETING",
                "--format=%j",
            ])
            .output()
            .expect("squeue");
        cancelled && !String::from_utf8_lossy(&out.stdout).contains("shotrouter-long")
    });
    drop(daemon);
}

#[test]
fn a_watcher_killed_mid_burst_follows_its_tasks_after_a_restart_and_submits_nothing_twice() {
    follows_its_tasks_after_a_restart(Daemon::kill_hard);
}

#[test]
fn a_watcher_stopped_mid_burst_leaves_its_tasks_running_and_follows_them_after_a_restart() {
    follows_its_tasks_after_a_restart(|daemon| {
        let status = daemon.stop();
        assert_eq!(status, Some(0), "a clean stop");
    });
}

/// A burst on the farm, the watcher gone mid-way (`stop`), started again: every task runs
/// once and every product is published once.
fn follows_its_tasks_after_a_restart(stop: impl FnOnce(Daemon)) {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = Env::new();
    let gate = gated_rules(&env);
    let conf = cluster.conf().to_str().expect("utf-8").to_string();
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}.dat")).collect();
    for name in &names {
        env.write(format!("shots/{name}"), name);
    }
    let state = env.path(".shotrouter");
    let state = state.to_str().expect("utf-8");
    wait_until("every task to be submitted and recorded", LIMIT, || {
        arrays(&cluster).1 == names.len()
            && jobs(&env, &["--state", state])
                .iter()
                .filter(|r| r["status"] == "running")
                .count()
                == names.len()
    });
    let status = env.run(&["status", "--json", "--state", state]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(
        status["on_farm"],
        names.len(),
        "status counts the jobs on the farm: {status}"
    );
    stop(daemon);
    let daemon = Daemon::start(&env, &[], &[("SLURM_CONF", &conf)]);
    std::fs::write(&gate, "go").expect("gate");
    wait_until("every job to be done", LIMIT, || {
        jobs(&env, &["--state", state])
            .iter()
            .filter(|r| r["status"] == "done")
            .count()
            == names.len()
    });
    let (ids, tasks) = arrays(&cluster);
    assert_eq!(tasks, names.len(), "nothing submitted twice: {ids:?}");
    for name in &names {
        let out = env.path(format!("shots/{}", name.replace(".dat", ".out")));
        assert_eq!(std::fs::read(&out).expect("product"), name.as_bytes());
    }
    let job = env.run(&["job", "1", "--state", state]);
    let text = String::from_utf8_lossy(&job.stdout);
    assert!(text.contains("following Slurm task"), "{text}");
    drop(daemon);
}
