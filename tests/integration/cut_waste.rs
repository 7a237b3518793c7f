//! The cuts' waste served beside a real watcher (issue 22): `/api/v1/cuts/{name}/waste`
//! answers what `shotrouter cut waste --json` prints, worked out again when a new revision
//! arrives; an unknown cut is a 404; `shotrouter serve`, which has no rules to tell frames
//! from other files, says where to ask instead.

use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env::{Env, stderr, stdout, wait_until};
use crate::http_api::{get, port_in};

const LIMIT: Duration = Duration::from_secs(60);

/// An EDL that plays `sh010` for `seconds` from source 01:00:00:00 (cut 1009 on, handles 8).
fn edl(seconds: u32) -> String {
    format!(
        "TITLE: reel1\nFCM: NON-DROP FRAME\n\n\
         001  AX       V     C        01:00:00:00 01:00:0{seconds}:00 01:00:00:00 01:00:0{seconds}:00\n\
         * FROM CLIP NAME: sh010_anim\n"
    )
}

/// `shotrouter cut waste --json` with the rules, without the fields only the server adds.
fn cli_waste(env: &Env) -> Value {
    let out = env.run(&["cut", "waste", "reel1", "--json", "--rules", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("JSON")
}

/// The server's answer without `computed_at_ms` and `took_ms`, once it is of `revision`.
fn served_waste(port: u16, revision: i64) -> Value {
    let mut answer = Value::Null;
    wait_until(
        &format!("the waste of revision {revision} to be served"),
        LIMIT,
        || {
            let reply = get(port, "/api/v1/cuts/reel1/waste");
            if reply.status != 200 {
                assert_eq!(reply.status, 503, "{}", reply.body);
                return false;
            }
            answer = reply.json();
            answer["revision"] == revision
        },
    );
    let object = answer.as_object_mut().expect("an object");
    assert!(object.remove("computed_at_ms").is_some_and(|v| v.is_i64()));
    assert!(object.remove("took_ms").is_some_and(|v| v.is_u64()));
    answer
}

#[test]
fn the_watchers_server_serves_the_cuts_waste_and_works_it_out_again_for_a_new_revision() {
    let env = Env::new();
    env.write(
        "rules.yaml",
        "version: 1\nwatch: [shots]\ncuts:\n  shot: \"^(?P<shot>.+)_anim$\"\n  handles: 8\n  fps: 24\nrules:\n  - name: plates\n    regex: '^(?P<shot>[^/]+)/plates/p\\.[0-9]+\\.exr$'\n    run: [\"true\"]\n",
    );
    for frame in ["1000", "1003", "1010", "1070"] {
        env.write(format!("shots/sh010/plates/p.{frame}.exr"), frame);
    }
    let daemon = Daemon::start(&env, &["--http", "127.0.0.1:0"], &[]);
    let port = port_in(&daemon.log_text());
    let before = get(port, "/api/v1/cuts/reel1/waste");
    assert_eq!(before.status, 404, "{}", before.body);
    assert!(
        before.json()["error"]
            .as_str()
            .expect("error")
            .contains("no cut `reel1`")
    );

    // Revision 1 shows 1009-1056 (handles 1001-1064): 1000 and 1070 lie outside.
    env.write("reel1.edl", edl(2));
    let out = env.run(&["cut", "import", "reel1.edl", "--rules", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let served = served_waste(port, 1);
    assert_eq!(served, cli_waste(&env));
    assert_eq!(
        (
            &served["outside_frames"],
            &served["outside_bytes"],
            &served["missing_frames"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(8),
            &serde_json::json!(47)
        ),
        "the show's sums"
    );
    let shot = &served["shots"][0];
    assert_eq!(
        (
            &shot["outside_frames"],
            &shot["outside_bytes"],
            &shot["missing"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(8),
            &serde_json::json!("1009,1011-1056")
        ),
    );

    // Revision 2 plays sh010 a second longer (1009-1080, handles to 1088): 1070 is in the cut.
    env.write("reel1.edl", edl(3));
    let out = env.run(&["cut", "import", "reel1.edl", "--rules", "rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let served = served_waste(port, 2);
    assert_eq!(served, cli_waste(&env));
    let shot = &served["shots"][0];
    assert_eq!(
        (&shot["outside_frames"], &shot["missing"]),
        (
            &serde_json::json!(1),
            &serde_json::json!("1009,1011-1069,1071-1080")
        ),
    );

    // A server with no watcher beside it has no rules: it says where the waste is.
    let log = env.path("serve.log");
    let state = env.path(".shotrouter");
    let mut server = env
        .command(&[
            "serve",
            "--state",
            state.to_str().expect("utf-8"),
            "--http",
            "127.0.0.1:0",
        ])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve starts");
    let read = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    wait_until("serve to listen", LIMIT, || read().contains("listening on"));
    let reply = get(port_in(&read()), "/api/v1/cuts/reel1/waste");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .expect("error")
            .contains("watch --http"),
        "{}",
        reply.body
    );
    assert_eq!(daemon.stop(), Some(0));
}
