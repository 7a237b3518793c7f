//! systemd's notify protocol against a real unix datagram socket standing in for systemd:
//! `READY=1` once the daemon watches, `WATCHDOG=1` pings at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` at SIGTERM; jobs never see the socket.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::env::Env;

/// The next datagram, or `None` after `limit`.
fn next(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0; 256];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_daemon_under_type_notify_says_ready_pings_the_watchdog_and_says_stopping() {
    let env = Env::new();
    std::fs::create_dir(env.path("shots")).expect("root");
    // The job reports whether it was handed the daemon's notify socket.
    env.write(
        "rules.yaml",
        format!(
            "version: 1\nwatch: [shots]\nrules:\n  - name: env\n    match: \"*.dat\"\n    run: [sh, -c, 'env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"', sh, {}]\n",
            env.path("seen").display()
        ),
    );
    let path = env.path("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let started = Instant::now();
    let daemon = Daemon::start(
        &env,
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8 temp path")),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    assert_eq!(
        next(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    // Pings every 200 ms: three within a generous deadline, none of them early.
    let mut pings = Vec::new();
    while pings.len() < 3 {
        let message = next(&socket, Duration::from_secs(10)).expect("a watchdog ping");
        assert_eq!(message, "WATCHDOG=1");
        pings.push(Instant::now());
    }
    assert!(
        pings[2].duration_since(started) >= Duration::from_millis(550),
        "pings come at half of WATCHDOG_USEC, not in a burst"
    );
    std::fs::write(env.path("shots/a.dat"), b"x").expect("file");
    crate::env::wait_until("the job to run", Duration::from_secs(10), || {
        env.path("seen").exists()
    });
    let seen = std::fs::read_to_string(env.path("seen")).expect("seen");
    assert!(seen.contains("PATH="), "the job's environment: {seen}");
    assert!(
        !seen.contains("NOTIFY_SOCKET") && !seen.contains("WATCHDOG_USEC"),
        "a job does not inherit the notify socket: {seen}"
    );
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(&socket, left).as_deref() {
            Some("STOPPING=1") => break,
            Some("WATCHDOG=1") => {}
            other => panic!("expected STOPPING=1, got {other:?}"),
        }
    }
    assert_eq!(daemon.stop(), Some(0));
}
