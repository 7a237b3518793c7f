//! What the daemon has dispatched and the store has not answered yet, in memory: which version
//! of which file each rule was dispatched for.
//!
//! A version is (inode, size, mtime): a duplicate event finds the same version and dispatches
//! nothing; a re-rendered file is a new version and runs again. With a store, an entry lives
//! only until the store has answered its enqueue (the store then knows the version, and
//! refuses a duplicate itself), so memory follows the work in flight, not every path ever
//! seen. Without a store it is the only record and keeps every entry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::os::version::FileVersion;

/// The versions dispatched so far, per rule name and path.
#[derive(Debug, Default)]
pub struct Ledger {
    dispatched: HashMap<(String, PathBuf), FileVersion>,
}

impl Ledger {
    /// Records `version` of `path` for `rule`; false when that exact version was already recorded.
    pub fn record(&mut self, rule: &str, path: &Path, version: FileVersion) -> bool {
        match self
            .dispatched
            .get_mut(&(rule.to_string(), path.to_path_buf()))
        {
            Some(seen) if *seen == version => false,
            Some(seen) => {
                *seen = version;
                true
            }
            None => {
                self.dispatched
                    .insert((rule.to_string(), path.to_path_buf()), version);
                true
            }
        }
    }

    /// Drops the entry of `rule` on `path`: the store now holds it.
    pub fn forget(&mut self, rule: &str, path: &Path) {
        // Keyed by owned strings; a look-up without allocating would need a borrowed key type.
        self.dispatched
            .remove(&(rule.to_string(), path.to_path_buf()));
    }

    /// Number of (rule, path) pairs known.
    pub fn len(&self) -> usize {
        self.dispatched.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.dispatched.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(size: u64) -> FileVersion {
        FileVersion {
            dev: 1,
            ino: 2,
            size,
            mtime_ns: 3,
        }
    }

    #[test]
    fn same_version_is_recorded_once_per_rule() {
        let mut ledger = Ledger::default();
        let path = Path::new("/s/a.tif");
        assert!(ledger.record("review", path, version(10)));
        assert!(!ledger.record("review", path, version(10)));
        assert!(
            ledger.record("archive", path, version(10)),
            "another rule is independent"
        );
        assert!(
            ledger.record("review", path, version(11)),
            "a new version runs again"
        );
        assert!(!ledger.record("review", path, version(11)));
    }

    #[test]
    fn provenance_matches_only_the_published_version() {
        let p = crate::exec::provenance::Provenance::default();
        p.record(Path::new("/s/x.mov"), "review", version(5));
        assert_eq!(
            p.producer(Path::new("/s/x.mov"), version(5)).as_deref(),
            Some("review")
        );
        assert_eq!(
            p.producer(Path::new("/s/x.mov"), version(6)),
            None,
            "overwritten by someone else"
        );
    }

    #[test]
    fn version_of_a_real_file_changes_when_it_is_rewritten() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        std::fs::write(&path, b"a").expect("write");
        let first = FileVersion::of(&path).expect("file");
        std::fs::write(&path, b"ab").expect("write");
        assert_ne!(FileVersion::of(&path), Some(first));
        assert_eq!(FileVersion::of(dir.path()), None, "folders have no version");
    }
}
