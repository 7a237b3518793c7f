//! The watcher under systemd's `Type=notify`: READY once the sources and the store are up,
//! STOPPING at a signal, and the watchdog pings systemd asks for, sent from the loop itself.

use std::time::Instant;

/// systemd's notify socket, when the daemon runs under `Type=notify`, and its watchdog.
#[derive(Default)]
pub struct Systemd {
    notify: Option<crate::os::sd_notify::SdNotify>,
    /// When the next `WATCHDOG=1` is due, when systemd asks for pings.
    next_ping: Option<Instant>,
}

impl Systemd {
    /// When the next watchdog ping is due, when systemd asks for pings.
    pub(super) fn next_ping(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Tells systemd (under `Type=notify`) that the watcher and the store are up, and starts
    /// the watchdog pings it asks for.
    pub(super) fn ready() -> Systemd {
        let notify = crate::os::sd_notify::SdNotify::from_env();
        let mut next_ping = None;
        if let Some(sd) = &notify {
            sd.notify("READY=1");
            next_ping = sd.watchdog_every().map(|every| Instant::now() + every);
            let watchdog_ms = sd.watchdog_every().map(|d| d.as_millis() as u64);
            tracing::debug!(watchdog_ms, "told systemd we are ready");
        }
        Systemd { notify, next_ping }
    }

    /// Tells systemd `state`, when it listens.
    pub(super) fn tell(&self, state: &str) {
        if let Some(sd) = &self.notify {
            sd.notify(state);
        }
    }

    /// Pings the watchdog when due. Sent from the loop itself: an engine that stops looping
    /// stops pinging.
    pub(super) fn ping(&mut self, now: Instant) {
        if let (Some(at), Some(sd)) = (self.next_ping, &self.notify)
            && now >= at
        {
            sd.notify("WATCHDOG=1");
            self.next_ping = sd.watchdog_every().map(|every| now + every);
        }
    }
}
