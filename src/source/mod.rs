//! Where file events come from: today's inotify watcher.

pub mod inotify;
