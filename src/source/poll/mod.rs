//! The polling file source, for shot trees on network storage (NFS, SMB, FUSE, cluster file
//! systems), where inotify hears only this machine's own writes.
//!
//! Detection keys on folder listings, never on file times: a file copied with its old mtime
//! (`cp -p`, `rsync -a`, an untarred plate) is new because its name is new in its folder. A new
//! file is reported ready (`close_write`, or `moved_to` for a rename seen within one pass) once
//! its size and mtime held still for the root's quiet time, so a file still growing never
//! fires early. Deletions are reported as the inotify source reports them; a rename is not a
//! deletion. What the source knows lives in memory only: at start-up every file present is
//! reported as found by the initial scan, and the engine's catch-up compares them with the job
//! store, so a restart neither re-runs finished work nor misses what arrived while it was down.
//!
//! Limitation: a file overwritten in place (same name, same inode) does not change its
//! folder's mtime, so once complete it is not looked at again; writing to a temp name and
//! renaming into place (the usual idiom), or `shotrouter notify`, covers it.

mod index;
mod pass;
mod roots;

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender, bounded};

use crate::rules::SourceKind;
use crate::source::{FileSource, Sink, SourceError, SourceEvent, WatchConfig};
use pass::Poller;

/// A running polling source over some of the roots; dropping it stops and joins its thread.
pub struct PollSource {
    roots: Vec<usize>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PollSource {
    /// Starts the poller's thread: it lists every folder of `roots` (indices into
    /// `config.roots`), reports the files found and the end of its initial scan, then polls.
    ///
    /// # Errors
    /// [`SourceError::Thread`] when its thread cannot start.
    pub fn start(config: &WatchConfig, roots: Vec<usize>, sink: Sink) -> Result<Self, SourceError> {
        let (stop, stopped) = bounded::<()>(0);
        let mut poller = Poller::new(config.clone(), &roots, sink);
        let thread = std::thread::Builder::new()
            .name("poll".into())
            .spawn(move || {
                poller.initial_pass(Instant::now());
                let (folders, bytes) = poller.index_size();
                tracing::debug!(folders, index_bytes = bytes, "poll: initial pass done");
                loop {
                    let now = Instant::now();
                    let wait = poller.next_due(now).saturating_duration_since(now);
                    // Only a timeout means poll; the sender dropped (or a message) means stop.
                    if stopped.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        return;
                    }
                    let started = Instant::now();
                    poller.pass(started);
                    poller.sink.send(SourceEvent::PollPass {
                        took: started.elapsed(),
                    });
                }
            })
            .map_err(|error| SourceError::Thread {
                kind: SourceKind::Poll,
                error,
            })?;
        Ok(PollSource {
            roots,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for PollSource {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FileSource for PollSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Poll
    }

    fn roots(&self) -> &[usize] {
        &self.roots
    }

    fn stop(self: Box<Self>) {
        // Drop stops and joins.
    }
}

#[cfg(test)]
mod tests;
