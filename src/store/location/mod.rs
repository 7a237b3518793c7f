//! Where the store lives, as a `--store` value says: a folder for the embedded SQLite store, or
//! a `postgres://` / `postgresql://` URL for the PostgreSQL store that many machines share.
//! What the URL leaves out comes from the standard `PG*` variables (PGHOST, PGPORT, PGUSER,
//! PGDATABASE, PGPASSWORD, PGPASSFILE), and the password may come from a password file
//! (`?passfile=PATH`, PGPASSFILE or `~/.pgpass`, in libpq's format), read at each connect so a
//! rotated password is picked up. TLS follows libpq's `sslmode` and `sslrootcert` (or PGSSLMODE,
//! PGSSLROOTCERT; [`tls`](super::postgres::tls) does the checks). A location shows itself with
//! its password as `***`; nothing this module formats ever holds the password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::StoreError;
use super::postgres::tls::{RootCert, SslMode, TlsSettings};
use super::url::{
    decode, encode, encode_value, holds_password, parse_port, redact_url, split_host_port,
    userinfo_misplaced,
};

mod passfile;

/// The default PostgreSQL port.
const DEFAULT_PORT: u16 = 5432;
/// How long a connection attempt may take unless `?connect_timeout=` says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the store lives.
#[derive(Clone, Debug)]
pub enum Location {
    /// The SQLite store in this state folder.
    Folder(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgLocation),
}

impl Location {
    /// Parses a `--store` value, taking what a URL leaves out from the process environment.
    ///
    /// # Errors
    /// [`StoreError::Location`] for a URL that cannot be used.
    pub fn parse(value: &str) -> Result<Location, StoreError> {
        Location::parse_with(value, &|name| std::env::var(name).ok())
    }

    /// As [`parse`](Self::parse), with the environment given (tests).
    ///
    /// # Errors
    /// [`StoreError::Location`] for a URL that cannot be used.
    pub fn parse_with(
        value: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Location, StoreError> {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            PgLocation::parse(value, env).map(Location::Postgres)
        } else {
            Ok(Location::Folder(PathBuf::from(value)))
        }
    }
}

/// Whether `value` is a PostgreSQL URL that holds a password (in its user part or a
/// `password=` parameter), which a command line must not show.
pub fn url_holds_password(value: &str) -> bool {
    (value.starts_with("postgres://") || value.starts_with("postgresql://"))
        && holds_password(value)
}

/// `value` with any password in it as `***`, for messages about a value that may not parse.
pub fn redacted(value: &str) -> String {
    redact_url(value)
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(pg) => pg.fmt(f),
        }
    }
}

/// A PostgreSQL database and how to log in to it, every part resolved.
#[derive(Clone)]
pub struct PgLocation {
    /// A host name or address, or a folder holding the server's unix socket.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The user.
    pub user: String,
    /// The database.
    pub dbname: String,
    /// The password from the URL or PGPASSWORD.
    password: Option<String>,
    /// The password file to look in when there is no password (may not exist).
    passfile: Option<PathBuf>,
    /// Whether the password file was asked for (`?passfile=`, PGPASSFILE): then it must exist.
    passfile_given: bool,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Whether and how to use TLS.
    pub tls: TlsSettings,
    /// Whether `sslmode` was given (in the URL or PGSSLMODE), so it is shown.
    sslmode_given: bool,
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLocation({self})")
    }
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.password.is_some() { ":***" } else { "" };
        let user = encode(&self.user);
        let db = encode(&self.dbname);
        if self.host.starts_with('/') {
            write!(
                f,
                "postgres://{user}{secret}@/{db}?host={}&port={}",
                encode_value(&self.host),
                self.port
            )?;
        } else if self.host.contains(':') {
            write!(
                f,
                "postgres://{user}{secret}@[{}]:{}/{db}",
                self.host, self.port
            )?;
        } else {
            write!(
                f,
                "postgres://{user}{secret}@{}:{}/{db}",
                self.host, self.port
            )?;
        }
        if self.passfile_given
            && let Some(file) = &self.passfile
        {
            let sep = if self.host.starts_with('/') { '&' } else { '?' };
            write!(f, "{sep}passfile={}", encode_value(&file.to_string_lossy()))?;
        }
        let mut sep = if self.host.starts_with('/') || self.passfile_given {
            '&'
        } else {
            '?'
        };
        if self.sslmode_given {
            write!(f, "{sep}sslmode={}", self.tls.mode.as_str())?;
            sep = '&';
        }
        if self.tls.rootcert_given {
            match &self.tls.rootcert {
                Some(RootCert::File(file)) => write!(
                    f,
                    "{sep}sslrootcert={}",
                    encode_value(&file.to_string_lossy())
                )?,
                Some(RootCert::System) => write!(f, "{sep}sslrootcert=system")?,
                None => {}
            }
        }
        Ok(())
    }
}

impl PgLocation {
    /// Parses a `postgres://[user[:password]@][host][:port][/dbname][?param=value&...]` URL
    /// the way libpq does, for one host.
    fn parse(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PgLocation, StoreError> {
        let error = |reason: String| StoreError::Location {
            value: redact_url(value),
            reason,
        };
        let rest = value
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        if userinfo_misplaced(rest) {
            return Err(error(
                "the user or password holds a `/`, `?` or `@`: percent-encode it (`%2F`, `%3F`, `%40`), or keep the password in a password file".into(),
            ));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let mut user = None;
        let mut password = None;
        if let Some(userinfo) = userinfo {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            user = Some(decode(u).map_err(&error)?).filter(|u| !u.is_empty());
            password = p.map(decode).transpose().map_err(&error)?;
        }
        if hostport.contains(',') {
            return Err(error(
                "several hosts are not supported; give the one primary server".into(),
            ));
        }
        let (host, port) = split_host_port(hostport).map_err(&error)?;
        let mut host = Some(decode(host).map_err(&error)?).filter(|h| !h.is_empty());
        let mut port = port.map(|p| parse_port(p).map_err(&error)).transpose()?;
        let mut dbname = Some(decode(path).map_err(&error)?).filter(|d| !d.is_empty());
        let mut passfile = None;
        let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        let mut sslmode = None;
        let mut sslrootcert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let val = decode(raw).map_err(&error)?;
            match key {
                "passfile" => passfile = Some(PathBuf::from(val)),
                "host" => host = Some(val),
                "port" => port = Some(parse_port(&val).map_err(&error)?),
                "user" => user = Some(val),
                "dbname" => dbname = Some(val),
                "password" => password = Some(val),
                "connect_timeout" => {
                    let secs: u64 = val.parse().map_err(|_| {
                        error(format!(
                            "`connect_timeout={val}` is not a number of seconds"
                        ))
                    })?;
                    connect_timeout = Duration::from_secs(secs.max(1));
                }
                "sslmode" => sslmode = Some(val),
                "sslrootcert" => sslrootcert = Some(val),
                "application_name" => {}
                other => {
                    return Err(error(format!(
                        "unknown parameter `{other}`; known: passfile, host, port, user, dbname, password, connect_timeout, sslmode, sslrootcert, application_name"
                    )));
                }
            }
        }
        let host = host
            .or_else(|| env("PGHOST").filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "localhost".into());
        let port = match port {
            Some(port) => port,
            None => match env("PGPORT").filter(|p| !p.is_empty()) {
                Some(p) => parse_port(&p).map_err(|reason| error(format!("PGPORT: {reason}")))?,
                None => DEFAULT_PORT,
            },
        };
        let user = user
            .or_else(|| env("PGUSER").filter(|u| !u.is_empty()))
            .or_else(|| env("USER").filter(|u| !u.is_empty()))
            .or_else(|| env("LOGNAME").filter(|u| !u.is_empty()))
            .ok_or_else(|| error("no user: give `postgres://USER@...` or set PGUSER".into()))?;
        let dbname = dbname
            .or_else(|| env("PGDATABASE").filter(|d| !d.is_empty()))
            .unwrap_or_else(|| user.clone());
        let password = password.or_else(|| env("PGPASSWORD").filter(|p| !p.is_empty()));
        let passfile_given = passfile.is_some() || env("PGPASSFILE").is_some();
        let passfile = passfile
            .or_else(|| env("PGPASSFILE").map(PathBuf::from))
            .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")));
        let (tls, sslmode_given) = tls_settings(sslmode, sslrootcert, env).map_err(error)?;
        Ok(PgLocation {
            host,
            port,
            user,
            dbname,
            password,
            passfile,
            passfile_given,
            connect_timeout,
            tls,
            sslmode_given,
        })
    }

    /// Whether the host is the folder of the server's unix socket (where TLS is never used).
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The same server and login, another database (the tests make one per case).
    #[must_use]
    pub fn with_dbname(&self, dbname: &str) -> PgLocation {
        PgLocation {
            dbname: dbname.into(),
            ..self.clone()
        }
    }

    /// The client configuration to connect with, and the password it logs in with (for
    /// [`postgres::connect`](super::postgres::connect) to scrub from errors).
    ///
    /// # Errors
    /// [`StoreError::Location`] for an unusable password file.
    pub(crate) fn client_config(&self) -> Result<(postgres::Config, Option<String>), StoreError> {
        let password = self.resolve_password()?;
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("shotrouter")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // libpq ignores sslmode on a unix socket, and the server offers no TLS there.
            .ssl_mode(if self.is_socket() {
                postgres::config::SslMode::Disable
            } else {
                self.tls.mode.to_client()
            });
        if let Some(password) = &password {
            config.password(password);
        }
        Ok((config, password))
    }
}

/// The TLS settings from the URL's `sslmode` and `sslrootcert`, else PGSSLMODE and
/// PGSSLROOTCERT, else libpq's defaults (`prefer`, `~/.postgresql/root.crt`; `verify-full` with
/// `sslrootcert=system`); and whether a mode was given.
fn tls_settings(
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(TlsSettings, bool), String> {
    let sslmode = sslmode.or_else(|| env("PGSSLMODE").filter(|m| !m.is_empty()));
    let sslrootcert = sslrootcert.or_else(|| env("PGSSLROOTCERT").filter(|r| !r.is_empty()));
    let rootcert_given = sslrootcert.is_some();
    let rootcert = match sslrootcert {
        Some(system) if system == "system" => Some(RootCert::System),
        Some(file) => Some(RootCert::File(PathBuf::from(file))),
        None => {
            env("HOME").map(|home| RootCert::File(Path::new(&home).join(".postgresql/root.crt")))
        }
    };
    let mode = match &sslmode {
        Some(text) => SslMode::parse(text).ok_or_else(|| {
            format!("`sslmode={text}` is not one of disable, allow, prefer, require, verify-ca, verify-full")
        })?,
        None if rootcert == Some(RootCert::System) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    Ok((
        TlsSettings {
            mode,
            rootcert,
            rootcert_given,
        },
        sslmode.is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    pub(super) fn pg(value: &str, vars: &[(&str, &str)]) -> PgLocation {
        match Location::parse_with(value, &env_of(vars)).expect("parses") {
            Location::Postgres(pg) => pg,
            other => panic!("expected PostgreSQL, got {other}"),
        }
    }

    #[test]
    fn a_url_is_postgres_and_anything_else_a_folder() {
        let env = env_of(&[("USER", "ana")]);
        for value in [
            "/var/lib/shotrouter",
            ".shotrouter",
            "postgres",
            "mysql://x/y",
        ] {
            assert!(matches!(
                Location::parse_with(value, &env).expect("parses"),
                Location::Folder(dir) if dir == Path::new(value)
            ));
        }
        let full = pg("postgresql://render:s3cr%40t@db.studio:6543/shots", &[]);
        assert_eq!(
            (
                full.host.as_str(),
                full.port,
                full.user.as_str(),
                full.dbname.as_str()
            ),
            ("db.studio", 6543, "render", "shots")
        );
        assert_eq!(full.password.as_deref(), Some("s3cr@t"));
        assert_eq!(
            full.to_string(),
            "postgres://render:***@db.studio:6543/shots"
        );
        assert!(!format!("{full:?}").contains("s3cr"));
        let v6 = pg("postgres://u@[::1]:7000/d", &[]);
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
        assert_eq!(v6.to_string(), "postgres://u@[::1]:7000/d");
        let socket = pg("postgres:///shots?host=%2Frun%2Fpg&user=u", &[]);
        assert_eq!(socket.host, "/run/pg");
        assert_eq!(
            socket.to_string(),
            "postgres://u@/shots?host=/run/pg&port=5432"
        );
    }

    #[test]
    fn pg_variables_fill_what_the_url_leaves_out() {
        let vars = [
            ("PGHOST", "db1"),
            ("PGPORT", "5433"),
            ("PGUSER", "farm"),
            ("PGDATABASE", "studio"),
            ("PGPASSWORD", "from-env"),
            ("USER", "root"),
        ];
        let bare = pg("postgres://", &vars);
        assert_eq!(
            (
                bare.host.as_str(),
                bare.port,
                bare.user.as_str(),
                bare.dbname.as_str()
            ),
            ("db1", 5433, "farm", "studio")
        );
        assert_eq!(bare.password.as_deref(), Some("from-env"));
        assert_eq!(bare.to_string(), "postgres://farm:***@db1:5433/studio");
        let given = pg("postgres://ana:pw@db2:5434/other", &vars);
        assert_eq!(
            (
                given.host.as_str(),
                given.port,
                given.user.as_str(),
                given.dbname.as_str()
            ),
            ("db2", 5434, "ana", "other")
        );
        assert_eq!(given.password.as_deref(), Some("pw"));
        let defaults = pg("postgres://", &[("USER", "ana")]);
        assert_eq!(
            (
                defaults.host.as_str(),
                defaults.port,
                defaults.dbname.as_str()
            ),
            ("localhost", 5432, "ana")
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        let env = env_of(&[("USER", "ana")]);
        for (value, says) in [
            ("postgres://u:hunter2@h:99999/d", "not a port number"),
            (
                "postgres://u:hunter2@h/d?sslmode=required",
                "`sslmode=required` is not one of",
            ),
            (
                "postgres://u:hunter2@h/d?colour=blue",
                "unknown parameter `colour`",
            ),
            ("postgres://u:hunter2@h1,h2/d", "several hosts"),
            ("postgres://u:hunter2@h/d%zz", "two hex digits"),
            (
                "postgres://u@h/d?password=hunter2&x=1",
                "unknown parameter `x`",
            ),
            // Unencoded `/`, `?` and `@` in a password (random ones have them).
            ("postgres://u:hun/ter2@h/d", "percent-encode"),
            ("postgres://u:hun?ter2@h/d", "percent-encode"),
            (
                "postgres://u:hunter2/x@h:5432/d?passfile=/a@b",
                "percent-encode",
            ),
        ] {
            let err = Location::parse_with(value, &env)
                .expect_err(value)
                .to_string();
            assert!(err.contains(says), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(!err.contains("hun/") && !err.contains("hun?"), "{err}");
        }
    }

    #[test]
    fn a_password_in_a_url_is_found_wherever_it_is() {
        for (value, holds) in [
            ("postgres://u:pw@h/d", true),
            ("postgresql://u:@h/d", true),
            ("postgres://u@h/d?sslmode=require&password=pw", true),
            ("postgres://u:pw/x@h/d", true),
            ("postgres://u@h/d?passfile=/etc/pg:pass", false),
            ("postgres://u@h:5432/d?sslrootcert=/a:b.pem", false),
            ("postgres:///d?host=/run/pg", false),
            ("/srv/show/.shotrouter", false),
            ("/srv/u:pw@h", false),
        ] {
            assert_eq!(url_holds_password(value), holds, "{value}");
        }
    }

    #[test]
    fn tls_settings_follow_the_url_then_pg_variables_then_libpq_defaults() {
        let home = [("USER", "ana"), ("HOME", "/home/ana")];
        let plain = pg("postgres://h/d", &home);
        assert_eq!(plain.tls.mode, SslMode::Prefer);
        assert_eq!(
            plain.tls.rootcert,
            Some(RootCert::File("/home/ana/.postgresql/root.crt".into()))
        );
        assert!(!plain.tls.rootcert_given);
        assert_eq!(plain.to_string(), "postgres://ana@h:5432/d");
        let full = pg(
            "postgres://h/d?sslmode=verify-full&sslrootcert=/etc/ssl/studio%20ca.pem",
            &home,
        );
        assert_eq!(full.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            full.tls.rootcert,
            Some(RootCert::File("/etc/ssl/studio ca.pem".into()))
        );
        assert_eq!(
            full.to_string(),
            "postgres://ana@h:5432/d?sslmode=verify-full&sslrootcert=/etc/ssl/studio%20ca.pem"
        );
        let by_env = pg(
            "postgres://h/d",
            &[
                ("USER", "ana"),
                ("PGSSLMODE", "verify-ca"),
                ("PGSSLROOTCERT", "/ca.pem"),
            ],
        );
        assert_eq!(by_env.tls.mode, SslMode::VerifyCa);
        assert_eq!(by_env.tls.rootcert, Some(RootCert::File("/ca.pem".into())));
        let url_wins = pg(
            "postgres://h/d?sslmode=disable",
            &[("PGSSLMODE", "require"), ("USER", "a")],
        );
        assert_eq!(url_wins.tls.mode, SslMode::Disable);
        let system = pg("postgres://h/d?sslrootcert=system", &home);
        assert_eq!(
            (system.tls.mode, system.tls.rootcert),
            (SslMode::VerifyFull, Some(RootCert::System))
        );
    }
}
