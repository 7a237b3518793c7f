//! Job log retention (`watch --keep-logs`): job logs (`STATE/logs/<rule>/<id>.log`) and
//! thumbnails (`STATE/thumbs/<id>.jpg`) last written more than the retention ago are deleted
//! when the daemon starts and every hour after.
//!
//! Only files named `*.log` exactly two levels under `STATE/logs`, and `*.jpg` directly in
//! `STATE/thumbs`, are touched, never a folder,
//! a symlink's target or anything else a user put there. A running job's log is written as the
//! job runs, so it is never old enough to go. The hourly sweeps run on a thread of its own and read
//! the wall clock (log ages are wall-clock ages); the engine never waits for them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the sweep runs after the one at start.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Job logs deleted.
    pub removed: usize,
    /// Job logs old enough to go that could not be deleted.
    pub failed: usize,
}

/// Deletes the job logs under `logs_dir` last modified more than `keep` before `now`, and the
/// thumbnails of the state folder's `thumbs/` beside it (`STATE/thumbs/<id>.jpg`) as old: a
/// picture of a job goes with its log. A missing folder (no job has run yet) is an empty sweep.
pub fn sweep(logs_dir: &Path, keep: Duration, now: SystemTime) -> Swept {
    let mut swept = Swept::default();
    let Some(cutoff) = now.checked_sub(keep) else {
        return swept;
    };
    if let Some(state_dir) = logs_dir.parent() {
        let thumbs = state_dir.join(crate::deliver::thumbnail::THUMBS_DIR);
        remove_old(&thumbs, "jpg", cutoff, &mut swept);
    }
    let Ok(rules) = std::fs::read_dir(logs_dir) else {
        return swept;
    };
    for rule in rules.filter_map(Result::ok) {
        if rule.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_old(&rule.path(), "log", cutoff, &mut swept);
        }
    }
    swept
}

/// Deletes the regular files named `*.<ext>` directly in `dir` last modified before `cutoff`.
fn remove_old(dir: &Path, ext: &str, cutoff: SystemTime, swept: &mut Swept) {
    let Ok(files) = std::fs::read_dir(dir) else {
        return;
    };
    for file in files.filter_map(Result::ok) {
        let path = file.path();
        if path.extension().is_none_or(|e| e != ext) {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks: a link is neither a job's file nor
        // old enough to go.
        let old = file
            .metadata()
            .ok()
            .filter(|meta| meta.is_file())
            .and_then(|meta| meta.modified().ok())
            .is_some_and(|modified| modified < cutoff);
        if !old {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => swept.removed += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                swept.failed += 1;
                tracing::warn!(path = %path.display(), error = %error, "cannot delete an old job log or thumbnail");
            }
        }
    }
}

/// Sweeps `logs_dir` now (before returning, so even a `watch --once` that has nothing to do
/// has swept), then every [`SWEEP_EVERY`] on a thread of its own, for the life of the process.
/// Each sweep that deleted something is logged with its counts.
pub fn start(logs_dir: PathBuf, keep: Duration) {
    report(sweep(&logs_dir, keep, SystemTime::now()), keep);
    let spawned = std::thread::Builder::new()
        .name("log-retention".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                report(sweep(&logs_dir, keep, SystemTime::now()), keep);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the hourly job log retention; old job logs stay until the next start");
    }
}

fn report(swept: Swept, keep: Duration) {
    if swept.removed > 0 || swept.failed > 0 {
        tracing::info!(
            removed = swept.removed,
            failed = swept.failed,
            keep = %humantime::format_duration(keep),
            "deleted old job logs and thumbnails"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, age: Duration) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, "log\n").expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        file.set_modified(SystemTime::now() - age)
            .expect("set mtime");
    }

    #[test]
    fn only_old_job_logs_go_never_a_link_or_its_target() {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let day = Duration::from_secs(86_400);
        let old = logs.join("rule/1.log");
        let young = logs.join("rule/2.log");
        let target = dir.path().join("precious.log");
        aged(&old, 31 * day);
        aged(&young, 29 * day);
        aged(&target, 90 * day);
        let link = logs.join("rule/3.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");

        let swept = sweep(&logs, 30 * day, SystemTime::now());
        assert_eq!(
            swept,
            Swept {
                removed: 1,
                failed: 0
            }
        );
        assert!(!old.exists());
        assert!(young.exists());
        assert!(link.symlink_metadata().is_ok(), "the link was removed");
        assert!(target.exists(), "the link's target was removed");

        let missing = sweep(&dir.path().join("nothing"), day, SystemTime::now());
        assert_eq!(missing, Swept::default());
    }

    #[test]
    fn old_thumbnails_go_with_old_logs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let day = Duration::from_secs(86_400);
        let old = dir.path().join("thumbs/1.jpg");
        let young = dir.path().join("thumbs/2.jpg");
        let other = dir.path().join("thumbs/notes.txt");
        aged(&old, 31 * day);
        aged(&young, 29 * day);
        aged(&other, 90 * day);
        let swept = sweep(&dir.path().join("logs"), 30 * day, SystemTime::now());
        assert_eq!(swept.removed, 1);
        assert!(!old.exists() && young.exists() && other.exists());
    }
}
