//! Notices edits of the rules file: a watch on its folder (editors often save by writing a
//! temp file and renaming it over the original, which a watch on the file itself would miss).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use inotify::{Inotify, WatchMask};

/// A channel that receives `()` shortly after each change of `rules_path`.
pub fn watch(rules_path: &Path) -> Receiver<()> {
    let (tx, rx) = unbounded();
    let path = crate::rules::absolute(rules_path);
    let (Some(dir), Some(name)) = (
        path.parent().map(PathBuf::from),
        path.file_name().map(|n| n.to_os_string()),
    ) else {
        return rx;
    };
    let mut inotify = match Inotify::init() {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the rules file; edits need a restart");
            return rx;
        }
    };
    if let Err(e) = inotify
        .watches()
        .add(&dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
    {
        tracing::warn!(error = %e, "cannot watch the rules file's folder; edits need a restart");
        return rx;
    }
    let spawned = std::thread::Builder::new()
        .name("rules-watch".into())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let Ok(events) = inotify.read_events_blocking(&mut buffer) else {
                    return;
                };
                let changed = events.into_iter().any(|e| e.name == Some(name.as_os_str()));
                if changed {
                    // Let a burst of saves settle into one reload.
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = inotify.read_events(&mut buffer);
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the rules-file watch; edits need a restart");
    }
    rx
}
