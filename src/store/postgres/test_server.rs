//! A real PostgreSQL server for tests, started by the tests themselves: `initdb` into a temp
//! folder (as the `postgres` user when we are root, since the server refuses to run as root),
//! `pg_ctl start` on 127.0.0.1 and a free port with its unix socket in the temp folder, and
//! `pg_ctl stop -m immediate` when dropped. One server per test process ([`shared`]), one
//! fresh database per case ([`TestServer::fresh_database`]), so a suite costs one start.
//!
//! Logins from 127.0.0.1 are trusted, except the role [`PASSWORD_USER`], which must give its
//! password (SCRAM): the tests of password files and redaction log in as it. A server started
//! with [`TestServer::start_tls`] takes TCP logins only over TLS (`hostssl`), with a certificate
//! for `localhost` and 127.0.0.1 signed by a throw-away CA that `openssl` makes ([`TlsFiles`]);
//! it listens on 127.0.0.2 too, a name its certificate does not hold.
//!
//! Used by the library's tests and, through `#[path]`, by the integration tests: it needs only
//! std, `tempfile` and `postgres`.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The role that logs in with a password.
pub const PASSWORD_USER: &str = "render";
/// Its password.
pub const PASSWORD: &str = "Sh0t-R0uter pass:word";

/// A running server in a temp folder.
pub struct TestServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    databases: AtomicU32,
    /// The CA files of a TLS server.
    pub tls: Option<TlsFiles>,
    /// The write end of the watchdog's stdin: when this process exits, the kernel closes it
    /// and the watchdog stops the server (statics are never dropped).
    watchdog: Option<(Child, ChildStdin)>,
}

/// The certificate authorities of a TLS test server.
pub struct TlsFiles {
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server holds (PEM).
    pub other_ca: PathBuf,
}

/// The TLS-only server this test process shares, started at first use.
pub fn shared_tls() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut server = TestServer::start_tls();
        server.watch_this_process();
        server
    })
}

/// The server this test process shares, started at first use.
pub fn shared() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut server = TestServer::start();
        server.watch_this_process();
        server
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The folder holding `initdb` and `pg_ctl`: on PATH, else Debian's newest
/// `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        return dir;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("PostgreSQL's initdb is neither on PATH nor under /usr/lib/postgresql/*/bin; run `scripts/deps test`")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestServer {
    /// Creates and starts a server; panics with the server's log when it cannot.
    pub fn start() -> TestServer {
        TestServer::start_with(false)
    }

    /// Creates and starts a server that takes TCP logins only over TLS.
    pub fn start_tls() -> TestServer {
        TestServer::start_with(true)
    }

    fn start_with(tls: bool) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("shotrouter-pg-")
            .tempdir()
            .expect("temp dir");
        let bin = bin_dir();
        let mut server = TestServer {
            dir,
            bin,
            port: 0,
            databases: AtomicU32::new(0),
            tls: None,
            watchdog: None,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the temp folder to postgres");
        }
        std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `hostssl` lines match TLS connections only: a plain one finds no line and is refused.
        let host = if tls { "hostssl" } else { "host" };
        std::fs::write(
            server.data().join("pg_hba.conf"),
            format!(
                "local all all trust\n{host} all {PASSWORD_USER} 127.0.0.0/8 scram-sha-256\n{host} all all 127.0.0.0/8 trust\n"
            ),
        )
        .expect("pg_hba.conf");
        if tls {
            server.tls = Some(server.make_certificates());
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => break,
                Err(e) => last_error = e,
            }
            server.port = 0;
        }
        assert!(server.port != 0, "PostgreSQL did not start: {last_error}");
        let mut admin = server.admin();
        admin
            .batch_execute(&format!(
                "SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB"
            ))
            .expect("password role");
        server
    }

    /// Makes a CA, a server certificate it signs (for `localhost` and 127.0.0.1) in the data
    /// folder, and an unrelated second CA; `ssl = on` in the server's configuration.
    fn make_certificates(&self) -> TlsFiles {
        let certs = self.dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs folder");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&certs)
                .output()
                .unwrap_or_else(|e| {
                    panic!("`openssl` runs ({e}); install it with `scripts/deps test`")
                });
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509", "-days", "3"];
            args.extend(ec);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=shotrouter test {ca}"),
            );
            args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(&args);
        }
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&args);
        std::fs::write(
            certs.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        for file in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(file), self.data().join(file)).expect("copy to data");
            std::fs::set_permissions(
                self.data().join(file),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod");
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(self.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the certificates to postgres");
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(conf, "ssl = on").expect("ssl = on");
        TlsFiles {
            ca: certs.join("ca.pem"),
            other_ca: certs.join("other-ca.pem"),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder of the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `program` of the server's release, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(exe);
            command
        } else {
            Command::new(exe)
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let log = self.dir.path().join("server.log");
        // A TLS server also listens on 127.0.0.2, an address its certificate does not name.
        let listen = if self.tls.is_some() {
            "127.0.0.1,127.0.0.2"
        } else {
            "127.0.0.1"
        };
        let options = format!(
            "-c listen_addresses={listen} -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        // Ready means it answers a query; pg_ctl -w waited already, this bounds the rest.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.admin_config().connect(postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("not ready: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stops the server when this process exits, however it exits.
    fn watch_this_process(&mut self) {
        let script = format!(
            "read _; {} -D \"$1\" stop -m immediate >/dev/null 2>&1; rm -rf \"$2\"",
            if is_root() {
                format!(
                    "runuser -u postgres -- {}",
                    self.bin.join("pg_ctl").display()
                )
            } else {
                self.bin.join("pg_ctl").display().to_string()
            }
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(self.data())
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        let stdin = child.stdin.take().expect("piped");
        self.watchdog = Some((child, stdin));
    }

    /// A URL that logs in as the superuser `postgres` without a password.
    pub fn admin_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// How to log in as `postgres` to the `postgres` database over the unix socket (trusted,
    /// and a TLS server takes plain connections there).
    fn admin_config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        config
    }

    /// A connection as `postgres` to the `postgres` database.
    pub fn admin(&self) -> postgres::Client {
        self.admin_config()
            .connect(postgres::NoTls)
            .expect("connects as postgres")
    }

    /// Creates a new, empty database (owned by [`PASSWORD_USER`], so both logins may use it)
    /// and returns its name.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t_{}_{n}", std::process::id());
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {PASSWORD_USER}"))
            .expect("create database");
        name
    }

    /// Starts the stopped server again, on the same port (the tests of a restart).
    pub fn start_again(&self) {
        if let Err(e) = self.try_start() {
            panic!("PostgreSQL did not start again: {e}");
        }
    }

    /// Stops the server now (the tests of an unreachable store).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let _ = std::io::stderr().flush();
    }
}
