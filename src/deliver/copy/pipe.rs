//! The bytes of a verified copy, in one pass: the kernel copies the source into the temp file a
//! block at a time (`copy_file_range`, or what `std::io::copy` falls back to) while the source
//! is read and hashed beside it, and every copied block is read back from the temp file and
//! hashed again. The read-back bypasses the page cache (`O_DIRECT`) where the file system allows
//! it, so it checks what reached the disk; elsewhere (tmpfs, some network file systems) it reads
//! the page cache, as any later reader would. Comparing the two digests is the caller's.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use nix::fcntl::{FcntlArg, OFlag, PosixFadviseAdvice, fcntl, posix_fadvise};

use crate::deliver::hash::{HashKind, Hashes};

/// Size of one copy, read or read-back: large enough that system calls and hashing setup vanish
/// next to the bytes moved, small enough that a few in flight cost little memory.
pub const BLOCK: usize = 8 << 20;

/// Alignment of an `O_DIRECT` read's buffer, offset and length (a page covers every disk).
const ALIGN: usize = 4096;

/// Each requested hash of a stream, as [`Hashes::finish`] gives them.
pub type Digests = Vec<(HashKind, String)>;

/// How a copy overlaps its copying, reading and hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The copy, the source's hashing and the read-back each on a thread of their own (the
    /// default): the fastest wherever a second core is free.
    Threads,
    /// One thread copies, hashes and reads back each block in turn: no hand-over waits for the
    /// scheduler, which matters on a machine whose cores are all busy.
    Single,
}

/// What a copy read, wrote and read back.
#[derive(Debug)]
pub struct Streams {
    /// Bytes the kernel copied into the temp file.
    pub copied: u64,
    /// Bytes of the source read and hashed, and their digests.
    pub source: (u64, Digests),
    /// Bytes of the temp file read back and hashed, and their digests.
    pub back: (u64, Digests),
}

/// Why a copy stopped.
#[derive(Debug)]
pub enum PipeError {
    /// Copying into the temp file failed (a full disk, an I/O error on either side).
    Copy(std::io::Error),
    /// Reading the source to hash it failed.
    Source(std::io::Error),
    /// Reading the temp file back failed.
    Back(std::io::Error),
}

/// Copies `input` (read from its current offset, 0) into `output` and reads `back` (the same
/// file as `output`, opened again, ideally with `O_DIRECT`) back behind the copy.
///
/// # Errors
/// The first failure, by stage.
pub fn run(
    input: &File,
    output: &File,
    back: &File,
    kinds: &[HashKind],
    overlap: Overlap,
) -> Result<Streams, PipeError> {
    let mut source = Reader::new(input, kinds);
    let mut readback = Reader::new(back, kinds);
    if overlap == Overlap::Single {
        let mut copied = 0u64;
        loop {
            let n = copy_block(input, output, copied).map_err(PipeError::Copy)?;
            copied += n;
            source.step().map_err(PipeError::Source)?;
            readback.step().map_err(PipeError::Back)?;
            if n < BLOCK as u64 {
                break;
            }
        }
        while source.step().map_err(PipeError::Source)? > 0 {}
        while readback.step().map_err(PipeError::Back)? > 0 {}
        return Ok(Streams {
            copied,
            source: source.finish(),
            back: readback.finish(),
        });
    }
    let progress = &Progress::default();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(move || -> std::io::Result<Option<(u64, Digests)>> {
            loop {
                if progress.is_stopped() {
                    return Ok(None);
                }
                match source.step() {
                    Ok(0) => return Ok(Some(source.finish())),
                    Ok(_) => {}
                    Err(e) => {
                        progress.stop();
                        return Err(e);
                    }
                }
            }
        });
        let checking = scope.spawn(move || -> std::io::Result<Option<(u64, Digests)>> {
            loop {
                let Some(done) = progress.wait_for(readback.pos + BLOCK as u64) else {
                    return Ok(None);
                };
                match readback.step() {
                    Ok(0) if done => return Ok(Some(readback.finish())),
                    Ok(_) => {}
                    Err(e) => {
                        progress.stop();
                        return Err(e);
                    }
                }
            }
        });
        let mut copied = 0u64;
        let copy = loop {
            if progress.is_stopped() {
                break Ok(());
            }
            match copy_block(input, output, copied) {
                Ok(n) => {
                    copied += n;
                    if n < BLOCK as u64 {
                        progress.advance(copied, true);
                        break Ok(());
                    }
                    progress.advance(copied, false);
                }
                Err(e) => {
                    progress.stop();
                    break Err(e);
                }
            }
        };
        let panicked = || Err(std::io::Error::other("a copying thread panicked"));
        let hashed = hashing.join().unwrap_or_else(|_| panicked());
        let checked = checking.join().unwrap_or_else(|_| panicked());
        copy.map_err(PipeError::Copy)?;
        let source = hashed.map_err(PipeError::Source)?;
        let back = checked.map_err(PipeError::Back)?;
        match (source, back) {
            (Some(source), Some(back)) => Ok(Streams {
                copied,
                source,
                back,
            }),
            // A stage stopped for another's failure, which was reported above.
            _ => Err(PipeError::Copy(std::io::Error::other(
                "the copy was stopped",
            ))),
        }
    })
}

/// Copies the next block of `input` into `output` at their file offsets (`at` is where the
/// block starts), then starts its writeback so the disk works while the next block is copied
/// and the final flush finds little left. Less than a block only at the end of `input`.
fn copy_block(input: &File, output: &File, at: u64) -> std::io::Result<u64> {
    let n = std::io::copy(&mut input.take(BLOCK as u64), &mut &*output)?;
    if n > 0 {
        // Starts writeback of the range (and drops whatever of it is already clean); a file
        // system that cannot say so loses nothing but the head start.
        let _ = posix_fadvise(
            output,
            at as libc::off_t,
            n as libc::off_t,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }
    Ok(n)
}

/// Reads a file from its start in [`BLOCK`]s at explicit offsets, hashing what it reads.
struct Reader<'a> {
    file: &'a File,
    storage: Vec<u8>,
    start: usize,
    hashes: Hashes,
    pos: u64,
}

impl<'a> Reader<'a> {
    fn new(file: &'a File, kinds: &[HashKind]) -> Reader<'a> {
        let storage = vec![0u8; BLOCK + ALIGN];
        // The buffer starts on an ALIGN boundary, as an O_DIRECT read requires.
        let start = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
        Reader {
            file,
            storage,
            start,
            hashes: Hashes::new(kinds),
            pos: 0,
        }
    }

    /// Reads and hashes the next block (less only at the end); 0 at the end.
    fn step(&mut self) -> std::io::Result<usize> {
        let buffer = &mut self.storage[self.start..self.start + BLOCK];
        let mut filled = 0;
        while filled < buffer.len() {
            match self
                .file
                .read_at(&mut buffer[filled..], self.pos + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // O_DIRECT refused at this offset or on this file system (the unaligned end of
                // the file, a file system that accepts the flag but not the read): read it
                // through the page cache from here on.
                Err(e) if direct_refused(&e) && drop_direct(self.file) => {}
                Err(e) => return Err(e),
            }
        }
        self.hashes.update(&buffer[..filled]);
        self.pos += filled as u64;
        Ok(filled)
    }

    fn finish(self) -> (u64, Digests) {
        (self.pos, self.hashes.finish())
    }
}

/// Whether `e` is a file system's refusal of `O_DIRECT` (on open or on a read): `EINVAL` from
/// most, `EOPNOTSUPP` (`ENOTSUP`) from some FUSE file systems and network clients. Such a file
/// is read through the page cache instead.
pub fn direct_refused(e: &std::io::Error) -> bool {
    // `ENOTSUP` is the same number as `EOPNOTSUPP` on Linux.
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
}

/// Clears `O_DIRECT` on `file`; false when it was not set (or cannot be cleared).
fn drop_direct(file: &File) -> bool {
    let Ok(flags) = fcntl(file, FcntlArg::F_GETFL) else {
        return false;
    };
    let flags = OFlag::from_bits_truncate(flags);
    flags.contains(OFlag::O_DIRECT)
        && fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT)).is_ok()
}

/// How far the copy has come, for the read-back that follows it.
#[derive(Default)]
struct Progress {
    state: Mutex<Copying>,
    moved: Condvar,
    stopped: AtomicBool,
}

#[derive(Default)]
struct Copying {
    copied: u64,
    done: bool,
}

impl Progress {
    fn advance(&self, copied: u64, done: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.copied = copied;
            state.done = done;
        }
        self.moved.notify_all();
    }

    /// Stops every stage (one of them failed).
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Taking the lock orders the flag before a waiter's check.
        drop(self.state.lock());
        self.moved.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits until `end` bytes are copied or the copy ended; whether it ended, or `None` once
    /// stopped.
    fn wait_for(&self, end: u64) -> Option<bool> {
        let mut state = self.state.lock().ok()?;
        loop {
            if self.is_stopped() {
                return None;
            }
            if state.done || state.copied >= end {
                return Some(state.done);
            }
            state = self.moved.wait(state).ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einval_and_eopnotsupp_refuse_direct_reads_and_other_errors_do_not() {
        for errno in [libc::EINVAL, libc::EOPNOTSUPP, libc::ENOTSUP] {
            assert!(
                direct_refused(&std::io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [libc::EIO, libc::EACCES, libc::ENOSPC] {
            assert!(
                !direct_refused(&std::io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(!direct_refused(&std::io::Error::other("not an errno")));
    }
}
