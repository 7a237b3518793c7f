//! The PostgreSQL store over TLS, against a real server that takes TCP logins only over TLS
//! (`hostssl`), with a certificate from a throw-away CA made by `openssl`; and the refusal of a
//! store password typed on the command line.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Worker, arrive, jobs, write_rules};
use crate::daemon::Daemon;
use crate::env::{Env, stderr, wait_until};
use crate::pg::test_server::{self, PASSWORD, PASSWORD_USER, TestServer, TlsFiles};

fn tls_server() -> (&'static TestServer, &'static TlsFiles) {
    let server = test_server::shared_tls();
    (server, server.tls.as_ref().expect("a TLS server"))
}

/// A fresh database holding a store (made over TLS, as `prefer` asks by default).
fn fresh_store(server: &TestServer) -> String {
    let db = server.fresh_database();
    let loc = shotrouter::store::Location::parse(&server.admin_url(&db)).expect("a URL");
    shotrouter::store::open_queue(&loc, "setup").expect("the store is made");
    db
}

/// `shotrouter status --json` on `url` with these environment variables.
fn status(env: &Env, url: &str, vars: &[(&str, &str)]) -> Output {
    env.command(&["status", "--json", "--store", url])
        .envs(vars.iter().copied())
        .output()
        .expect("shotrouter runs")
}

/// Whether the server sees every connection of `db` encrypted (and at least one).
fn all_encrypted(server: &TestServer, db: &str) -> bool {
    let row = server
        .admin()
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
            &[&db],
        )
        .expect("pg_stat_ssl");
    let (all, encrypted): (i64, i64) = (row.get(0), row.get(1));
    all > 0 && all == encrypted
}

/// `verify-full` with the right CA: a worker logs in with its password (SCRAM, from a password
/// file) over TLS, runs a job a watcher queued, and `status` reads the store; by 127.0.0.1 in
/// the URL and by `localhost` from PGHOST/PGSSLMODE/PGSSLROOTCERT alike.
#[test]
fn issue_19_verify_full_connects_with_the_right_ca() {
    let (server, tls) = tls_server();
    let env = Env::new();
    let db = server.fresh_database();
    let passfile = env.path("pgpass");
    std::fs::write(
        &passfile,
        format!("*:*:*:{PASSWORD_USER}:{}\n", PASSWORD.replace(':', "\\:")),
    )
    .expect("passfile");
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let url = format!(
        "postgres://{PASSWORD_USER}@127.0.0.1:{}/{db}?sslmode=verify-full&sslrootcert={}&passfile={}",
        server.port,
        tls.ca.display(),
        passfile.display()
    );
    write_rules(&env, 0);
    let _watcher = Daemon::start(&env, &["--no-run", "--store", &url], &[]);
    let worker = Worker::start(&env, &url, "tls", &[]);
    assert!(all_encrypted(server, &db), "every connection uses TLS");
    arrive(&env, 1);
    wait_until("the job to run over TLS", Duration::from_secs(60), || {
        jobs(&env, &["--store", &url])
            .iter()
            .any(|j| j["status"] == "done")
    });
    assert!(!worker.log_text().contains(PASSWORD));

    // As libpq: the host from PGHOST, TLS settings from PGSSLMODE and PGSSLROOTCERT.
    let by_env = format!("postgres://postgres@/{db}");
    let port = server.port.to_string();
    let ca = tls.ca.display().to_string();
    let out = status(
        &env,
        &by_env,
        &[
            ("PGHOST", "localhost"),
            ("PGPORT", &port),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", &ca),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A CA that did not sign the server's certificate is refused, under `verify-full`,
/// `verify-ca`, and `require` with `sslrootcert` (libpq checks the chain then too); the message
/// names the problem and the CA file, and never the password.
#[test]
fn issue_19_a_wrong_ca_is_refused_naming_the_ca_file() {
    let (server, tls) = tls_server();
    let env = Env::new();
    let db = fresh_store(server);
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!(
            "postgres://{PASSWORD_USER}@127.0.0.1:{}/{db}?sslmode={mode}&sslrootcert={}",
            server.port,
            tls.other_ca.display()
        );
        let out = status(&env, &url, &[("PGPASSWORD", PASSWORD)]);
        let text = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{mode}: {text}");
        assert!(
            text.contains(&format!(
                "the server's certificate is not signed by a CA in `{}`",
                tls.other_ca.display()
            )),
            "{mode}: {text}"
        );
        assert!(text.contains("over TLS"), "{mode}: {text}");
        assert!(!text.contains(PASSWORD), "{mode}: {text}");
    }
    // `verify-ca` checks no name: `localhost` and 127.0.0.1 both pass with the right CA, and
    // `require` without a CA file encrypts without checking.
    for (host, query) in [
        (
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={}", tls.ca.display()),
        ),
        ("127.0.0.1", "sslmode=require".to_string()),
        ("127.0.0.1", String::new()),
    ] {
        let url = format!("postgres://postgres@{host}:{}/{db}?{query}", server.port);
        let out = status(&env, &url, &[("HOME", "/nonexistent")]);
        assert_eq!(out.status.code(), Some(0), "{url}: {}", stderr(&out));
    }
}

/// `verify-full` checks the host name: 127.0.0.2 (the same server) is not in the certificate's
/// subjectAltName, and the refusal says so; `verify-ca` there checks the chain only and connects.
#[test]
fn issue_19_verify_full_refuses_a_host_the_certificate_does_not_name() {
    let (server, tls) = tls_server();
    let env = Env::new();
    let db = fresh_store(server);
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.2:{}/{db}?sslmode={mode}&sslrootcert={}",
            server.port,
            tls.ca.display()
        )
    };
    let out = status(&env, &url("verify-full"), &[]);
    let text = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the server's certificate is not valid for `127.0.0.2`")
            && text.contains("sslmode=verify-ca"),
        "{text}"
    );
    let out = status(&env, &url("verify-ca"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `sslmode=disable` against a server that takes only TLS: the server's refusal, with the fix.
/// And `verify-full` with no CA file at all says which file it looked for.
#[test]
fn issue_19_no_tls_against_a_tls_only_server_says_to_turn_it_on() {
    let (server, _) = tls_server();
    let env = Env::new();
    let db = server.fresh_database();
    let url = format!(
        "postgres://{PASSWORD_USER}@127.0.0.1:{}/{db}?sslmode=disable",
        server.port
    );
    let out = status(&env, &url, &[("PGPASSWORD", PASSWORD)]);
    let text = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no encryption"), "{text}");
    assert!(
        text.contains("the server accepts only TLS connections from here")
            && text.contains("sslmode=verify-full")
            && text.contains("sslmode=require"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");

    let missing = env.path("no-such-ca.pem");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=verify-full&sslrootcert={}",
        server.port,
        missing.display()
    );
    let text = stderr(&status(&env, &url, &[]));
    assert!(
        text.contains(&format!("`{}` does not exist", missing.display())),
        "{text}"
    );
}

/// `shotrouter ARGS`, killed (and the test failed) if it has not exited within `limit`: a
/// `worker` or `serve` that is not refused would run on.
fn run_within(env: &Env, args: &[&str], limit: Duration) -> Output {
    let mut child = env
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shotrouter starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reaped");
            panic!(
                "`shotrouter {args:?}` still ran after {limit:?}: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A store URL with a password typed on the command line is refused by every command that
/// takes `--store`, with exit status 2, a pointer to the password file, and no password; the
/// same URL from SHOTROUTER_STORE (a root-only EnvironmentFile) is not refused.
#[test]
fn issue_19_a_password_on_the_command_line_is_refused() {
    let env = Env::new();
    write_rules(&env, 0);
    let secret = "Hunter2-s3cret";
    for url in [
        format!("postgres://render:{secret}@127.0.0.1:1/shots"),
        format!("postgresql://render@127.0.0.1:1/shots?password={secret}"),
    ] {
        for args in [
            vec!["worker", "--store", &url],
            vec!["watch", "--no-run", "--store", &url, "rules.yaml"],
            vec!["serve", "--store", &url],
            vec!["status", "--store", &url],
            vec!["jobs", "--store", &url],
            vec!["retry", "--failed", "--store", &url],
        ] {
            let out = run_within(&env, &args, Duration::from_secs(30));
            let text = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
            assert!(
                text.contains("holds a password") && text.contains("?passfile=PATH"),
                "{args:?}: {text}"
            );
            assert!(
                text.contains("PGPASSFILE") && text.contains("~/.pgpass"),
                "{text}"
            );
            assert!(!text.contains(secret), "{args:?}: {text}");
        }
        // From the environment it is taken: the connection is tried (nothing listens there).
        let out = env
            .command(&["status"])
            .env("SHOTROUTER_STORE", &url)
            .output()
            .expect("runs");
        let text = stderr(&out);
        assert!(text.contains("cannot connect"), "{text}");
        assert!(!text.contains("holds a password"), "{text}");
        assert!(!text.contains(secret), "{text}");
    }
}

/// libpq ignores `sslmode` on a unix socket: a machine-wide PGSSLMODE=verify-full, with
/// PGSSLROOTCERT naming a missing file or `system`, or `sslmode=verify-full` in the URL, does
/// not stop a store reached by its socket folder (where no TLS is offered, and no host name is).
#[test]
fn a_socket_store_ignores_a_verifying_sslmode() {
    let (server, _) = tls_server();
    let env = Env::new();
    let db = fresh_store(server);
    let socket = server.socket_dir().display().to_string();
    let port = server.port.to_string();
    let missing = env.path("no-such-ca.pem").display().to_string();
    let by_url = format!("postgres://postgres@/{db}?host={socket}&port={port}");
    let verifying_url = format!("{by_url}&sslmode=verify-full&sslrootcert={missing}");
    for (url, vars) in [
        (
            &by_url,
            vec![("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &*missing)],
        ),
        (
            &by_url,
            vec![("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", "system")],
        ),
        (&by_url, vec![("PGSSLROOTCERT", "system")]),
        (&verifying_url, vec![]),
    ] {
        let out = status(&env, url, &vars);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{url} {vars:?}: {}",
            stderr(&out)
        );
    }
}
