//! A worker's drain: on SIGUSR1 (`systemctl reload`, with the packaged unit's `ExecReload=`) it
//! claims nothing more and exits 0 once the jobs it holds have ended, so a machine can leave
//! the farm for maintenance without cutting a job short (SIGTERM gives running jobs only the
//! grace). The flag is set by the signal handler and read at each turn of the node loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// Whether a drain was asked for, and whether it was logged yet.
pub(super) struct Drain {
    asked: Arc<AtomicBool>,
    noted: bool,
}

impl Drain {
    /// Listens for SIGUSR1.
    ///
    /// # Errors
    /// When the signal cannot be handled.
    pub(super) fn listen() -> Result<Drain, Error> {
        let asked = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, asked.clone())
            .map_err(Error::io("cannot handle SIGUSR1"))?;
        Ok(Drain {
            asked,
            noted: false,
        })
    }

    /// Whether the worker drains (logged once, with what it still holds).
    pub(super) fn draining(&mut self, held: usize) -> bool {
        let asked = self.is_asked();
        if asked && !self.noted {
            self.noted = true;
            tracing::info!(
                held,
                "draining: no new jobs; the worker exits once the jobs it holds have ended"
            );
        }
        asked
    }

    /// Whether a drain was asked for.
    pub(super) fn is_asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }
}
