//! Scale-out on a real PostgreSQL server (started by the tests): a `--no-run` watcher and
//! workers as real processes, SIGKILLed and SIGSTOPped, and the database itself stopped in the
//! middle of a run.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cluster::{Worker, arrive, assert_each_done_once, chaos, jobs, runs, write_rules};
use crate::daemon::Daemon;
use crate::env::{Env, wait_until};
use crate::pg::{fresh_store_url, test_server};

fn done(env: &Env, store: &[&str]) -> usize {
    jobs(env, store)
        .iter()
        .filter(|r| r["status"] == "done")
        .count()
}

#[test]
fn issue_12_pg_one_watcher_four_workers_and_random_kills_run_each_file_once() {
    let env = Env::new();
    write_rules(&env, 0);
    let url = fresh_store_url();
    let _watcher = Daemon::start(&env, &["--no-run", "--store", &url], &[]);
    chaos(&env, &url, &["--store", &url], 1000, Duration::from_secs(3));
}

#[test]
fn issue_12_pg_a_worker_stopped_past_its_lease_loses_its_job_and_cannot_publish() {
    let env = Env::new();
    write_rules(&env, 1500);
    let url = fresh_store_url();
    let store = ["--store", url.as_str()];
    let _watcher = Daemon::start(&env, &["--no-run", "--store", &url], &[]);
    let frozen = Worker::start(&env, &url, "frozen", &["--jobs", "1", "--lease", "1s"]);
    let names = arrive(&env, 1);
    wait_until("`frozen` to claim the job", Duration::from_secs(20), || {
        frozen.log_text().contains("claimed")
    });
    frozen.signal(Signal::SIGSTOP);
    let rescuer = Worker::start(&env, &url, "rescuer", &["--jobs", "1", "--lease", "1s"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while done(&env, &store) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 30 s waiting for the rescuer to finish the job; jobs: {:?}\nrescuer's log:\n{}\nfrozen worker's log:\n{}",
            jobs(&env, &store),
            rescuer.log_text(),
            frozen.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    frozen.signal(Signal::SIGCONT);
    wait_until(
        "the resumed worker to stop its lost attempt",
        Duration::from_secs(20),
        || {
            let log = frozen.log_text();
            log.contains("claim lost")
                || log.contains("taken over")
                || log.contains("lost its claim")
        },
    );
    let rows = jobs(&env, &store);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["node"].as_str()),
        (Some("done"), Some("rescuer"))
    );
    assert_each_done_once(&env, &store, &names);
    drop(rescuer);
}

/// The database stops for 20 s in the middle of a run and starts again: files that arrive
/// meanwhile are queued once it is back, jobs running meanwhile finish and are recorded, and
/// nothing that finished runs again.
#[test]
fn issue_12_pg_a_database_down_for_20_s_loses_nothing_and_repeats_nothing() {
    let env = Env::new();
    write_rules(&env, 300);
    let server = test_server::TestServer::start();
    let url = server.admin_url(&server.fresh_database());
    let store = ["--store", url.as_str()];
    let _watcher = Daemon::start(&env, &["--no-run", "--store", &url], &[]);
    let workers = [
        Worker::start(&env, &url, "w1", &["--jobs", "2"]),
        Worker::start(&env, &url, "w2", &["--jobs", "2"]),
    ];
    let mut names = arrive(&env, 30);
    wait_until("some jobs done", Duration::from_secs(60), || {
        done(&env, &store) >= 10
    });
    server.stop();
    let outage = std::time::Instant::now();
    names.extend((0..10).map(|i| {
        let rel = format!("late/l{i}.dat");
        env.write(format!("shots/{rel}"), &rel);
        rel
    }));
    // The outage itself is what is tested: 20 s without a database.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed()));
    server.start_again();
    wait_until(
        "all 40 jobs done after the outage",
        Duration::from_secs(120),
        || done(&env, &store) == 40,
    );
    assert_each_done_once(&env, &store, &names);
    let repeated: Vec<_> = runs(&env).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        repeated.is_empty(),
        "nothing ran twice: {repeated:?}\n{}\n{}",
        workers[0].log_text(),
        workers[1].log_text()
    );
    for w in workers {
        let log = w.log_text();
        assert!(
            !log.contains(&url.replace("postgres@", "postgres:")),
            "no URL with a password"
        );
        assert_eq!(w.stop(), Some(0));
    }
}

/// Issue 19: a watcher and seven workers started at the same instant on an empty database, as
/// systemd starts them at boot, all come up, round after round: one of them creates the schema
/// under the migration lock and the others wait for it; none takes a schema committed while it
/// looked for a foreign one, none creates it again, none retries its store.
#[test]
fn issue_19_pg_eight_nodes_started_together_on_an_empty_database_all_come_up() {
    let server = test_server::shared();
    for round in 0..20 {
        let env = Env::new();
        write_rules(&env, 0);
        let url = server.admin_url(&server.fresh_database());
        let mut watcher = Daemon::spawn(&env, &["--no-run", "--store", &url], &[]);
        let mut workers: Vec<Worker> = (1..=7)
            .map(|i| Worker::spawn(&env, &url, &format!("w{i}"), &["--jobs", "1"]))
            .collect();
        wait_until(
            &format!("round {round}: all eight nodes up"),
            Duration::from_secs(30),
            || {
                if let Some(status) = watcher.exited() {
                    panic!(
                        "round {round}: the watcher exited ({status}):\n{}",
                        watcher.log_text()
                    );
                }
                for (i, worker) in workers.iter_mut().enumerate() {
                    if let Some(status) = worker.exited() {
                        panic!(
                            "round {round}: worker w{} exited ({status}):\n{}",
                            i + 1,
                            worker.log_text()
                        );
                    }
                }
                watcher.is_watching() && workers.iter().all(Worker::is_started)
            },
        );
        for (i, worker) in workers.iter().enumerate() {
            let log = worker.log_text();
            assert!(
                !log.contains("waiting for it"),
                "round {round}: worker w{} could not open the store at first:\n{log}",
                i + 1
            );
        }
        let mut sql = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
        let nodes: i64 = sql
            .query_one("SELECT count(*) FROM nodes", &[])
            .expect("nodes")
            .get(0);
        assert_eq!(nodes, 8, "round {round}: every node registered");
        watcher.signal(Signal::SIGTERM);
        for worker in &workers {
            worker.signal(Signal::SIGTERM);
        }
        assert_eq!(watcher.stop(), Some(0), "round {round}: the watcher's exit");
        for worker in workers {
            assert_eq!(worker.stop(), Some(0), "round {round}: a worker's exit");
        }
    }
}

/// A password given in the URL reaches neither the logs, nor a job's argv or environment, nor
/// an error message. The URL comes in SHOTROUTER_STORE: one with a password on the command line
/// is refused (`pg_tls::issue_19_...`).
#[test]
fn issue_12_pg_the_store_password_never_reaches_logs_or_jobs() {
    let env = Env::new();
    let server = test_server::shared();
    let db = server.fresh_database();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/{db}",
        test_server::PASSWORD_USER,
        urlencode(test_server::PASSWORD),
        server.port
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: leak\n    match: \"**/*.dat\"\n    run: [sh, -c, 'env > \"$0\"; tr \"\\\\0\" \" \" < /proc/self/cmdline >> \"$0\"', {}]\n",
            env.path("job-env.txt").display()
        ),
    );
    let _watcher = Daemon::start(
        &env,
        &["--no-run"],
        &[("PGPASSWORD", "x"), ("SHOTROUTER_STORE", &url)],
    );
    let worker = Worker::start_with(&env, "w", &[], &[("SHOTROUTER_STORE", &url)]);
    arrive(&env, 1);
    // The same database, logged in as the trusted superuser (no password to show).
    let admin = server.admin_url(&db);
    wait_until("the job to run", Duration::from_secs(30), || {
        env.path("job-env.txt").exists() && done(&env, &["--store", &admin]) == 1
    });
    let seen = std::fs::read_to_string(env.path("job-env.txt")).expect("job's env");
    assert!(
        !seen.contains(test_server::PASSWORD),
        "a job saw the password:\n{seen}"
    );
    assert!(!seen.contains("PGPASSWORD"), "{seen}");
    assert!(!worker.log_text().contains(test_server::PASSWORD));
    let encoded = urlencode(test_server::PASSWORD);
    let status = env
        .command(&["status"])
        .env("SHOTROUTER_STORE", url.replace(&encoded, "wrong"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&status.stderr);
    assert!(
        !text.contains("wrong"),
        "an error shows no password: {text}"
    );
    assert_ne!(status.status.code(), Some(0));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
