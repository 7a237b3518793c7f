//! What this process's own jobs published, in memory, so that a rule never fires on its own
//! product: the workers record a product before renaming it into place, the engine asks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::os::version::FileVersion;

/// Files published by shotrouter's jobs, so that a rule never fires on its own product.
/// Shared with the job workers: they record a product *before* renaming it into place, so the
/// record exists before inotify can report the rename.
#[derive(Debug, Default)]
pub struct Provenance {
    published: Mutex<HashMap<PathBuf, (String, FileVersion)>>,
}

impl Provenance {
    /// Notes that `rule` is about to publish `version` at `path`.
    pub fn record(&self, path: &Path, rule: &str, version: FileVersion) {
        self.lock()
            .insert(path.to_path_buf(), (rule.to_string(), version));
    }

    /// What was published at `path` (the rule and the version), removing the record: its
    /// event has come, and the store keeps the record for any later scan.
    pub fn take(&self, path: &Path) -> Option<(String, FileVersion)> {
        self.lock().remove(path)
    }

    /// What was published at `path`, keeping the record (without a store it is the only one).
    pub fn get(&self, path: &Path) -> Option<(String, FileVersion)> {
        self.lock().get(path).cloned()
    }

    /// The rule that produced this exact version of `path`, if shotrouter did.
    pub fn producer(&self, path: &Path, version: FileVersion) -> Option<String> {
        self.lock()
            .get(path)
            .filter(|(_, v)| *v == version)
            .map(|(rule, _)| rule.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (String, FileVersion)>> {
        // A worker that panicked mid-insert leaves a valid map; keep using it.
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
