//! systemd's notify protocol, without libsystemd: one datagram per state change to the unix
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Under
//! `Type=notify` the daemon says `READY=1` once it watches and its store is open, pings
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` from the engine loop (so a wedged engine is
//! restarted), and `STOPPING=1` at shutdown. Outside systemd every call is a no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub struct SdNotify {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl SdNotify {
    /// The notify socket named by `NOTIFY_SOCKET`, when the service manager set one and it can
    /// be used (a bad value is logged once and ignored: notification is never fatal).
    pub fn from_env() -> Option<SdNotify> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let addr = match parse_addr(name.as_encoded_bytes()) {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is not usable; systemd is not told of readiness");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "cannot make a socket for systemd notifications");
                return None;
            }
        };
        let pid_matches = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|us| us.parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_matches)
            .map(|us| Duration::from_micros(us / 2));
        Some(SdNotify {
            socket,
            addr,
            watchdog,
        })
    }

    /// How often to send `WATCHDOG=1` (half the manager's `WatchdogSec=`), when it asks for it.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one state (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...`); a failure is
    /// logged at debug level only, since the manager may simply be gone.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, state, "cannot notify systemd");
        }
    }
}

/// `NOTIFY_SOCKET`'s value as an address: `@name` is abstract, anything else a path.
fn parse_addr(name: &[u8]) -> std::io::Result<SocketAddr> {
    match name.split_first() {
        Some((b'@', abstract_name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)
        }
        Some(_) => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))
        }
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is empty",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notify = SdNotify {
            socket: UnixDatagram::unbound().expect("socket"),
            addr: parse_addr(path.as_os_str().as_encoded_bytes()).expect("path address"),
            watchdog: None,
        };
        notify.notify("READY=1");
        let mut buf = [0; 64];
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("@shotrouter-test-{}", std::process::id());
        let addr = parse_addr(name.as_bytes()).expect("abstract address");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let notify = SdNotify {
            socket: UnixDatagram::unbound().expect("socket"),
            addr,
            watchdog: None,
        };
        notify.notify("STOPPING=1");
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(parse_addr(b"").is_err());
    }
}
