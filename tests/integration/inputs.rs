//! Declared inputs and lineage (issue 23) through a real `shotrouter watch` on real inotify,
//! real child processes and both stores: a graded job whose LUT arrives after its plate waits
//! (`waiting`, saying what for), runs once within a second of the LUT landing, and its product
//! is copied to the SAN; the LUT delivered again runs the job and the copy again, replacing both
//! products; a rule with `on_input_change: stale` only goes stale; `lineage` walks up from the
//! SAN copy to the plate and the LUT version, and down from the LUT to both products; a rules
//! edit marks products stale without running anything; a LUT that never comes fails the job
//! when `wait_inputs` runs out. The shot's name is hostile (a quote, `$(...)`, spaces).

use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stdout, wait_until};
use crate::pg::fresh_store_url;

const LIMIT: Duration = Duration::from_secs(60);

/// A shot name a shell would choke on; it reaches every command as one argument.
const SHOT: &str = "sh 0'1 $(touch pwned)";

fn rules(extra_arg: &str) -> String {
    format!(
        r#"version: 1
watch: [shots]
outputs: [san]
rules:
  - name: graded
    regex: '^(?P<shot>[^/]+)/plates/[^/]+\.dat$'
    inputs: ["{{root}}/{{shot}}/grade/{{shot}}.cube"]
    wait_inputs: 1h
    output: "{{root}}/{{shot}}/review/{{stem}}.graded"
    run: [sh, -c, 'cat -- "$1" "$2" > "$3"{extra_arg}', sh, "{{path}}", "{{root}}/{{shot}}/grade/{{shot}}.cube", "{{out}}"]
  - name: stale-only
    regex: '^(?P<shot>[^/]+)/plates/[^/]+\.dat$'
    inputs: ["{{root}}/{{shot}}/grade/{{shot}}.cube"]
    on_input_change: stale
    output: "{{root}}/{{shot}}/notes/{{stem}}.txt"
    run: [cp, --, "{{root}}/{{shot}}/grade/{{shot}}.cube", "{{out}}"]
  - name: to-san
    regex: '^(?P<shot>[^/]+)/review/[^/]+$'
    output: "{{root}}/../san/{{shot}}/{{name}}"
    run: [cp, --, "{{path}}", "{{out}}"]
  - name: quick
    regex: '^(?P<shot>[^/]+)/quick/[^/]+\.dat$'
    inputs: ["{{root}}/{{shot}}/grade/never.cube"]
    wait_inputs: 2s
    run: ["true"]
"#
    )
}

/// `shotrouter ARGS... --json` parsed, with the store arguments.
fn json(env: &Env, args: &[&str], store: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(store);
    all.push("--json");
    let out = env.run(&all);
    assert!(
        out.status.success(),
        "shotrouter {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout(&out)).expect("JSON")
}

fn jobs(env: &Env, store: &[&str]) -> Vec<Value> {
    let value = json(env, &["jobs", "--limit", "500"], store);
    value
        .as_array()
        .or_else(|| value["jobs"].as_array())
        .cloned()
        .unwrap_or_default()
}

fn of(jobs: &[Value], rule: &str, status: &str) -> Vec<Value> {
    jobs.iter()
        .filter(|j| j["rule"] == rule && j["status"] == status)
        .cloned()
        .collect()
}

/// Writes elsewhere, then renames into place, as a colourist's tool delivers; answers when, in
/// unix ms (the store's unit).
fn deliver(env: &Env, rel: &str, contents: &str) -> i64 {
    let temp = env.write("delivery.tmp", contents);
    let at = env.path(rel);
    std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    std::fs::rename(temp, at).expect("rename");
    now
}

fn read(env: &Env, rel: &str) -> Option<String> {
    std::fs::read_to_string(env.path(rel)).ok()
}

fn scenario(store: &[&str]) {
    let env = Env::new();
    env.write("rules.yaml", rules(""));
    std::fs::create_dir_all(env.path("shots")).expect("root");
    std::fs::create_dir_all(env.path("san")).expect("san");
    let mut args = vec!["--state", ".state"];
    args.extend_from_slice(store);
    let state: Vec<&str> = if store.is_empty() {
        vec!["--state", ".state"]
    } else {
        store.to_vec()
    };
    let daemon = Daemon::start(&env, &args, &[]);
    let lut = format!("shots/{SHOT}/grade/{SHOT}.cube");
    let product = format!("shots/{SHOT}/review/a.graded");
    let san = format!("san/{SHOT}/a.graded");

    // The plate arrives before its LUT: both rules that read the LUT wait, saying what for.
    env.write(format!("shots/{SHOT}/plates/a.dat"), "PLATE\n");
    wait_until("two jobs waiting for the LUT", LIMIT, || {
        of(&jobs(&env, &state), "graded", "waiting").len() == 1
            && of(&jobs(&env, &state), "stale-only", "waiting").len() == 1
    });
    let waiting = &of(&jobs(&env, &state), "graded", "waiting")[0];
    let result = waiting["result"].as_str().unwrap_or_default();
    assert!(
        result.starts_with("waiting for `") && result.contains(&format!("grade/{SHOT}.cube")),
        "{waiting}"
    );
    let mut status_args = vec!["status"];
    status_args.extend_from_slice(&state);
    let status = stdout(&env.run(&status_args));
    assert!(status.contains("2 waiting for their inputs"), "{status}");
    assert!(read(&env, &product).is_none());

    // The LUT lands: the job starts within a second, runs once, and its product goes to the SAN.
    let delivered = deliver(&env, &lut, "LUT ONE\n");
    wait_until("the graded product on the SAN", LIMIT, || {
        read(&env, &san).as_deref() == Some("PLATE\nLUT ONE\n")
    });
    let released = daemon
        .log_text()
        .lines()
        .any(|l| l.contains("its inputs are there; queued"));
    assert!(released, "{}", daemon.log_text());
    wait_until("the graded job's end recorded", LIMIT, || {
        of(&jobs(&env, &state), "graded", "done").len() == 1
    });
    let all = jobs(&env, &state);
    let graded = of(&all, "graded", "done");
    assert_eq!(graded.len(), 1, "{all:#?}");
    let started = graded[0]["started_at"].as_i64().expect("started");
    assert!(
        started - delivered < 1000,
        "the job started {} ms after its LUT landed",
        started - delivered
    );
    assert!(!env.path("shots").join("pwned").exists() && !env.path("pwned").exists());

    // The LUT delivered again: the graded job and its SAN copy run again, replacing both; the
    // `stale` rule does not run, its product is stale.
    wait_until("the stale-only product", LIMIT, || {
        read(&env, &format!("shots/{SHOT}/notes/a.txt")).is_some()
    });
    deliver(&env, &lut, "LUT TWO\n");
    wait_until("the new grade on the SAN", LIMIT, || {
        read(&env, &san).as_deref() == Some("PLATE\nLUT TWO\n")
    });
    assert_eq!(read(&env, &product).as_deref(), Some("PLATE\nLUT TWO\n"));
    wait_until("the second graded run recorded", LIMIT, || {
        of(&jobs(&env, &state), "graded", "done").len() == 2
            && of(&jobs(&env, &state), "to-san", "done").len() == 2
    });
    assert_eq!(of(&jobs(&env, &state), "stale-only", "done").len(), 1);
    assert_eq!(
        read(&env, &format!("shots/{SHOT}/notes/a.txt")).as_deref(),
        Some("LUT ONE\n"),
        "a stale rule's product is left as it was"
    );

    // Lineage: up from the SAN copy, through the review product, to the plate and the LUT.
    let mut up = vec!["lineage", san.as_str(), "--up"];
    up.extend_from_slice(&state);
    let up = json(&env, &up, &[]);
    let text = up.to_string();
    assert!(text.contains("plates/a.dat"), "{up:#}");
    assert!(text.contains(&format!("grade/{SHOT}.cube")), "{up:#}");
    assert!(text.contains("review/a.graded"), "{up:#}");
    // Down from the LUT: both products of the graded chain, and the stale one.
    let mut down = vec!["lineage", lut.as_str(), "--down"];
    down.extend_from_slice(&state);
    let down = json(&env, &down, &[]);
    let text = down.to_string();
    assert!(text.contains("review/a.graded"), "{down:#}");
    assert!(text.contains(&format!("san/{SHOT}/a.graded")), "{down:#}");
    assert!(text.contains("notes/a.txt"), "{down:#}");
    // Stale: the stale-only product, whose LUT changed.
    let mut stale_args = vec!["stale"];
    stale_args.extend_from_slice(&state);
    let stale = json(&env, &stale_args, &[]);
    let text = stale.to_string();
    assert!(text.contains("notes/a.txt"), "{stale:#}");
    assert!(
        !text.contains("review/a.graded"),
        "rerun, not stale: {stale:#}"
    );

    // A rules edit that changes what `graded` makes: its products go stale, nothing runs.
    let done_before = jobs(&env, &state)
        .iter()
        .filter(|j| j["status"] == "done")
        .count();
    env.write("rules.yaml", rules(" && true"));
    wait_until("the rules reloaded", LIMIT, || {
        daemon.log_text().contains("rules reloaded")
    });
    wait_until("the graded product stale by its rule", LIMIT, || {
        let stale = json(&env, &stale_args, &[]).to_string();
        stale.contains("review/a.graded")
    });
    let all = jobs(&env, &state);
    assert_eq!(
        all.iter().filter(|j| j["status"] == "done").count(),
        done_before,
        "a rules edit runs nothing: {all:#?}"
    );

    // A LUT that never comes: the job fails when `wait_inputs` runs out, naming it.
    env.write(format!("shots/{SHOT}/quick/q.dat"), "Q\n");
    wait_until("the quick job given up", LIMIT, || {
        !of(&jobs(&env, &state), "quick", "failed").is_empty()
    });
    let failed = &of(&jobs(&env, &state), "quick", "failed")[0];
    let reason = failed["result"].as_str().unwrap_or_default();
    assert!(
        reason.contains("input never came") && reason.contains("grade/never.cube"),
        "{failed}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn issue_23_a_job_waits_for_its_lut_runs_again_when_it_changes_and_says_where_it_came_from() {
    scenario(&[]);
}

#[test]
fn issue_23_pg_a_job_waits_for_its_lut_runs_again_when_it_changes_and_says_where_it_came_from() {
    let url = fresh_store_url();
    scenario(&["--store", &url]);
}

#[test]
fn issue_23_an_input_outside_every_root_is_looked_at_every_second() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        r#"version: 1
watch: [shots]
rules:
  - name: slate
    match: "*.dat"
    inputs: ["{root}/../config/slate.txt"]
    output: "{root}/out/{stem}.txt"
    run: [cp, --, "{root}/../config/slate.txt", "{out}"]
"#,
    );
    std::fs::create_dir_all(env.path("shots")).expect("root");
    let state = ["--state", ".state"];
    let daemon = Daemon::start(&env, &state, &[]);
    env.write("shots/a.dat", "A\n");
    wait_until("the job waiting for the slate", LIMIT, || {
        of(&jobs(&env, &state), "slate", "waiting").len() == 1
    });
    // Written in place, outside the watched tree: the look every second finds it complete.
    let delivered = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    env.write("config/slate.txt", "SLATE\n");
    wait_until("the product", LIMIT, || {
        read(&env, "shots/out/a.txt").as_deref() == Some("SLATE\n")
    });
    // The product is published before the job's end is recorded.
    wait_until("the job done", LIMIT, || {
        of(&jobs(&env, &state), "slate", "done").len() == 1
    });
    let done = of(&jobs(&env, &state), "slate", "done");
    let started = done[0]["started_at"].as_i64().expect("started");
    assert!(
        started - delivered < 2500,
        "started {} ms after the slate was written",
        started - delivered
    );
    assert_eq!(daemon.stop(), Some(0));
}
