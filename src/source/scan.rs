//! One-shot listing of the files under the watch roots: `watch --once` runs on it, and sources
//! list a root with it (the inotify source places a watch on each folder before listing it).
//!
//! Ignored folders are not entered and ignored files not reported; a folder that cannot be
//! read is skipped, since a scan reports what is there, not what went wrong; one deeper than
//! the kernel's path limit is logged as an error, since it cannot be routed at all.

use std::path::{Path, PathBuf};

use globset::GlobSet;

use crate::rules::EventKind;
use crate::source::{FileEvent, Origin, WatchConfig};

/// The files present under every root now, without watching (for `--once`).
pub fn scan(config: &WatchConfig) -> Vec<FileEvent> {
    let mut found = Vec::new();
    for (index, root) in config.roots.iter().enumerate() {
        let _ = walk::<()>(
            &root.path,
            Path::new(""),
            root.recursive,
            &config.ignore,
            &mut found,
            index,
            |abs, _| {
                // The kernel refuses such a path: say so rather than list less in silence.
                if abs.as_os_str().len() >= 4096 {
                    tracing::error!(
                        bytes = abs.as_os_str().len(),
                        "a folder is deeper than the kernel's path limit (4096 bytes) and is not listed; shorten the tree there"
                    );
                    return Ok(false);
                }
                Ok(true)
            },
        );
    }
    found
        .into_iter()
        .map(|(root, rel)| FileEvent {
            root,
            rel,
            kind: EventKind::CloseWrite,
            origin: Origin::Scan,
        })
        .collect()
}

/// Lists the files under `root`/`start`, skipping ignored folders. `enter` is called on each
/// folder before it is listed (the watcher places its watch there) and says whether to list it.
pub(super) fn walk<E>(
    root: &Path,
    start: &Path,
    recursive: bool,
    ignore: &GlobSet,
    found: &mut Vec<(usize, PathBuf)>,
    root_index: usize,
    mut enter: impl FnMut(&Path, &Path) -> Result<bool, E>,
) -> Result<(), E> {
    let mut stack = vec![start.to_path_buf()];
    while let Some(rel_dir) = stack.pop() {
        if !rel_dir.as_os_str().is_empty() && ignore.is_match(&rel_dir) {
            continue;
        }
        let abs = root.join(&rel_dir);
        if !enter(&abs, &rel_dir)? {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&abs) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let child = rel_dir.join(entry.file_name());
            if file_type.is_dir() {
                if recursive {
                    stack.push(child);
                }
            } else if file_type.is_file() && !ignore.is_match(&child) {
                found.push((root_index, child));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use globset::{Glob, GlobSetBuilder};

    use super::*;
    use crate::rules::{EventSet, SourceKind, WatchRoot};

    #[test]
    fn scan_skips_ignored_paths_and_sub_folders_of_a_shallow_root() {
        let dir = tempfile::tempdir().expect("tmp");
        for rel in [
            "deep/sh010/a.exr",
            "deep/sh010/a.exr.tmp",
            "deep/.cache/b.exr",
            "deep/c.exr",
            "flat/d.exr",
            "flat/sub/e.exr",
        ] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("has a folder")).expect("mkdir");
            std::fs::write(path, rel).expect("write");
        }
        let root = |name: &str, recursive| WatchRoot {
            name: name.into(),
            path: dir.path().join(name),
            recursive,
            source: SourceKind::Inotify,
            poll: crate::rules::DEFAULT_POLL,
        };
        let mut ignore = GlobSetBuilder::new();
        ignore.add(Glob::new("**/*.tmp").expect("glob"));
        ignore.add(Glob::new("**/.cache").expect("glob"));
        let config = WatchConfig {
            roots: vec![root("deep", true), root("flat", false)],
            ignore: ignore.build().expect("globset"),
            events: EventSet::READY,
        };
        let mut found: Vec<(usize, String)> = scan(&config)
            .into_iter()
            .map(|f| {
                assert_eq!((f.kind, f.origin), (EventKind::CloseWrite, Origin::Scan));
                (f.root, f.rel.display().to_string())
            })
            .collect();
        found.sort();
        let want = [(0, "c.exr"), (0, "sh010/a.exr"), (1, "d.exr")];
        assert_eq!(found, want.map(|(r, p)| (r, p.to_string())));
    }
}
