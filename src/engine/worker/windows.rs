//! Rules' `window:` on a worker, which has no rules file: the watcher records each rule's
//! windows in the store beside its work hash (`rule_defs.windows`); the worker reads them every
//! [`WINDOWS_REFRESH`] and claims no job of a rule outside its windows by its own local clock
//! ([`crate::rules::clock`], which tests replace), unless the job is marked run-now.

use std::time::{Duration, Instant};

use crate::rules::schedule::{Window, open_at, parse_list};
use crate::store::StoreError;
use crate::store::queue::JobQueue;

/// How often the windows are read again: a change of a rule's windows (a reload of the
/// watcher's rules) reaches the workers within this.
pub(super) const WINDOWS_REFRESH: Duration = Duration::from_secs(2);

/// The windowed rules as last read from the store.
pub(super) struct RuleWindows {
    rules: Vec<(String, Vec<Window>)>,
    next_read: Instant,
    /// The rules found closed at the last look (logged when it changes).
    closed: Vec<String>,
}

impl RuleWindows {
    pub(super) fn new() -> Self {
        RuleWindows {
            rules: Vec::new(),
            next_read: Instant::now(),
            closed: Vec::new(),
        }
    }

    /// The rules outside their windows now; the windows are read again when older than
    /// [`WINDOWS_REFRESH`].
    ///
    /// # Errors
    /// The store's, when it was read.
    pub(super) fn closed(
        &mut self,
        store: &dyn JobQueue,
        now: Instant,
    ) -> Result<Vec<String>, StoreError> {
        if now >= self.next_read {
            let rows = store.rule_windows()?;
            self.rules = rows
                .into_iter()
                .filter_map(|(rule, text)| match parse_list(&text) {
                    Ok(windows) => Some((rule, windows)),
                    Err(error) => {
                        tracing::warn!(%rule, %error, "the store's windows of this rule ignored");
                        None
                    }
                })
                .collect();
            self.next_read = now + WINDOWS_REFRESH;
        }
        let closed: Vec<String> = if self.rules.is_empty() {
            Vec::new()
        } else {
            let minute = crate::rules::clock::local_minute();
            self.rules
                .iter()
                .filter(|(_, windows)| !open_at(windows, minute))
                .map(|(rule, _)| rule.clone())
                .collect()
        };
        if closed != self.closed {
            tracing::info!(outside = %closed.join(","), "rules' windows changed");
            self.closed.clone_from(&closed);
        }
        Ok(closed)
    }
}
