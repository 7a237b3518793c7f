//! Covering what inotify cannot: folders it ran out of watches for are polled (see `poller`)
//! and real watches are tried again every [`RETRY_EVERY`](super::tree::RETRY_EVERY); folders
//! too deep for the kernel's path limit are reported. Each is a [`SourceEvent::Health`] topic,
//! sent when the number of folders concerned changes, so the operator hears of it once, with
//! what to change, and again when it is over.

use std::path::Path;

use nix::fcntl::AtFlags;
use nix::libc::ENOSPC;
use nix::sys::stat::fstatat;

use crate::rules::EventKind;
use crate::source::inotify::attach::watch_limit;
use crate::source::inotify::poller::{Why, list};
use crate::source::inotify::tree::Tree;
use crate::source::{Origin, SourceEvent};

/// The kernel's limit on a path's length, `PATH_MAX`.
const PATH_MAX: usize = 4096;

/// Health topic of folders that could not be watched for want of watches.
const WATCHES: &str = "inotify watches";

/// Health topic of folders too deep to be watched.
const LONG_PATHS: &str = "long paths";

impl Tree {
    /// Lists every polled folder, reports the files that are ready, and watches (or polls)
    /// folders that appeared in them. A pass that listed any folder is reported as a
    /// [`SourceEvent::PollPass`], as the poll source's are: its cost shows in the metrics, and
    /// a watcher of the metrics knows the folders were looked at again.
    pub(super) fn poll_uncovered(&mut self) {
        self.prune_too_long();
        let started = std::time::Instant::now();
        let mut listed = false;
        for why in [Why::NoWatch, Why::Remote] {
            for (root, rel) in self.polled.folders(why) {
                listed = true;
                let abs = self.config.roots[root].path.join(&rel);
                let Some(look) = self.polled.look(root, &rel, &abs) else {
                    continue;
                };
                for name in look.ready {
                    self.emit_file(root, rel.join(name), EventKind::CloseWrite, Origin::Scan);
                }
                self.enter_new_dirs(root, &rel, &look.dirs);
            }
        }
        if listed {
            self.sink.send(SourceEvent::PollPass {
                took: started.elapsed(),
            });
        }
    }

    /// Watches (or polls) the folders of a polled folder that are neither yet.
    fn enter_new_dirs(&mut self, root: usize, rel: &Path, dirs: &[std::ffi::OsString]) {
        if !self.config.roots[root].recursive {
            return;
        }
        for name in dirs {
            let child = rel.join(name);
            let abs = self.config.roots[root].path.join(&child);
            if self.config.ignore.is_match(&child)
                || self.by_path.contains_key(&abs)
                || self.polled.contains(root, &child)
                || self.too_long.contains(&abs)
            {
                continue;
            }
            self.add_and_report(root, &child);
        }
    }

    /// Tries real watches again on the folders that ran out of them; a folder watched again
    /// is listed once more and the files written meanwhile that the poller had not reported
    /// yet are reported.
    pub(super) fn retry_watches(&mut self) {
        for (root, rel) in self.polled.folders(Why::NoWatch) {
            let abs = self.config.roots[root].path.join(&rel);
            match self.inotify.watches().add(&abs, self.mask) {
                Ok(wd) => {
                    self.register(wd, root, &rel, &abs);
                    let known = self.polled.remove(root, &rel);
                    let Ok(listing) = list(&abs) else { continue };
                    if let Some(known) = known {
                        for name in known.unreported(&listing) {
                            self.emit_file(
                                root,
                                rel.join(name),
                                EventKind::CloseWrite,
                                Origin::Scan,
                            );
                        }
                    }
                    self.enter_new_dirs(root, &rel, &listing.dirs);
                }
                // Still out: the others will not fare better now.
                Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
                // Gone, or no longer a folder: its parent reports what replaced it.
                Err(_) => {
                    self.polled.remove(root, &rel);
                }
            }
        }
    }

    /// Notes a folder whose path is too long to watch or list.
    pub(super) fn note_too_long(&mut self, abs: &Path) {
        if self.too_long.insert(abs.to_path_buf()) {
            tracing::error!(path = %shorten(abs), bytes = abs.as_os_str().len(), "folder is deeper than the kernel's path limit ({PATH_MAX} bytes): it cannot be watched or listed, and files in it cannot be routed; shorten the tree there");
        }
    }

    /// Forgets too-deep folders that are gone (their parent, within the limit, no longer
    /// holds them), so the report ends when the tree is shortened.
    fn prune_too_long(&mut self) {
        self.too_long.retain(|path| {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return false;
            };
            let Ok(dir) = std::fs::File::open(parent) else {
                return parent.exists();
            };
            fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
        });
    }

    /// Sends a [`SourceEvent::Health`] for each topic whose number of folders changed.
    pub(super) fn report_health(&mut self) {
        let unwatched = self.polled.count(Why::NoWatch);
        if unwatched != self.reported.0 {
            self.reported.0 = unwatched;
            let problem = (unwatched > 0).then(|| {
                let limit = watch_limit();
                let suggested = limit
                    .parse::<usize>()
                    .map_or(524_288, |l| l.saturating_mul(2).max(524_288));
                format!(
                    "{unwatched} folders are not watched: out of inotify watches (fs.inotify.max_user_watches = {limit}); they are polled every 2 s until watches can be placed; raise it: sysctl -w fs.inotify.max_user_watches={suggested} (and persist it in /etc/sysctl.d/)"
                )
            });
            self.sink.send(SourceEvent::Health {
                topic: WATCHES,
                problem,
            });
        }
        let too_long = self.too_long.len();
        if too_long != self.reported.1 {
            self.reported.1 = too_long;
            let problem = self.too_long.iter().next().map(|first| {
                format!(
                    "{too_long} folders deeper than the kernel's path limit ({PATH_MAX} bytes) are not watched, e.g. {}; shorten the tree there",
                    shorten(first)
                )
            });
            self.sink.send(SourceEvent::Health {
                topic: LONG_PATHS,
                problem,
            });
        }
    }
}

/// A path of any length as a line can hold it: its first and last 60 characters.
fn shorten(path: &Path) -> String {
    let text = path.display().to_string();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 130 {
        return text;
    }
    let head: String = chars[..60].iter().collect();
    let tail: String = chars[chars.len() - 60..].iter().collect();
    format!("{head}…{tail} ({} bytes)", text.len())
}
