//! Which source watches a root: `source: auto` looks at the root's file system when watching
//! starts. inotify hears only writes made through this machine's kernel, so a root on a network
//! or FUSE file system is polled; a local one gets inotify's immediacy.

use std::path::Path;

use crate::os::fs_kind::{self, FsKind};
use crate::rules::{SourceKind, WatchRoot};

/// The source a root gets, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The file system, as [`fs_kind::detect`] names it.
    pub fs: String,
    /// Whether it is network or FUSE storage.
    pub remote: bool,
    /// `inotify` or `poll`: what watches the root.
    pub source: SourceKind,
    /// What the rules file said (`auto` unless given).
    pub configured: SourceKind,
    /// The root itself could not be looked at (missing or unreachable); `fs` is then that of
    /// its nearest existing folder.
    pub missing: bool,
}

impl Choice {
    /// `fs=nfs4 source=poll (auto)`: the text of the start-up line and of `shotrouter check`.
    pub fn describe(&self) -> String {
        let how = if self.configured == SourceKind::Auto {
            "auto"
        } else {
            "forced"
        };
        let missing = if self.missing { ", root missing" } else { "" };
        format!(
            "fs={} source={} ({how}{missing})",
            self.fs,
            self.source.as_str()
        )
    }

    /// The warning due when a root forced to inotify is on network storage.
    pub fn warning(&self) -> Option<String> {
        (self.remote && self.source == SourceKind::Inotify).then(|| {
            format!(
                "the root is on `{}`, a network or FUSE file system, but `source: inotify` is forced: remote writers will not be seen; use `source: auto` or `poll`",
                self.fs
            )
        })
    }
}

/// Chooses the source of `root` from its `source:` and its file system.
pub fn choose(root: &WatchRoot) -> Choice {
    let (kind, missing) = match fs_kind::detect(&root.path) {
        Ok(kind) => (kind, false),
        Err(_) => (nearest(&root.path), true),
    };
    let source = match root.source {
        SourceKind::Auto if kind.remote => SourceKind::Poll,
        SourceKind::Auto => SourceKind::Inotify,
        forced => forced,
    };
    Choice {
        fs: kind.name,
        remote: kind.remote,
        source,
        configured: root.source,
        missing,
    }
}

/// The file system of the nearest folder above `path` that can be looked at.
fn nearest(path: &Path) -> FsKind {
    path.ancestors()
        .skip(1)
        .find_map(|dir| fs_kind::detect(dir).ok())
        .unwrap_or(FsKind {
            name: "unknown".into(),
            remote: true,
            magic: 0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DEFAULT_POLL;

    fn root(path: &Path, source: SourceKind) -> WatchRoot {
        WatchRoot {
            name: "r".into(),
            path: path.to_path_buf(),
            recursive: true,
            source,
            poll: DEFAULT_POLL,
        }
    }

    #[test]
    fn auto_on_a_local_folder_is_inotify_and_forced_sources_are_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let auto = choose(&root(dir.path(), SourceKind::Auto));
        assert_eq!(
            (auto.source, auto.remote, auto.missing),
            (SourceKind::Inotify, false, false)
        );
        assert!(
            auto.describe().ends_with("source=inotify (auto)"),
            "{}",
            auto.describe()
        );
        assert_eq!(auto.warning(), None);
        let poll = choose(&root(dir.path(), SourceKind::Poll));
        assert_eq!(poll.source, SourceKind::Poll);
        assert!(
            poll.describe().ends_with("source=poll (forced)"),
            "{}",
            poll.describe()
        );
        let missing = choose(&root(&dir.path().join("not/yet"), SourceKind::Auto));
        assert!(missing.missing && missing.describe().contains("root missing"));
        assert_eq!(missing.fs, auto.fs, "named by the nearest folder there is");
    }

    #[test]
    fn inotify_forced_on_remote_storage_warns() {
        let choice = Choice {
            fs: "nfs4".into(),
            remote: true,
            source: SourceKind::Inotify,
            configured: SourceKind::Inotify,
            missing: false,
        };
        let warning = choice.warning().expect("a warning");
        assert!(
            warning.contains("remote writers will not be seen"),
            "{warning}"
        );
    }
}
