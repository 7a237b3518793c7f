//! Verified copies and moves (`copy:` and `move:` in a rule): built in, no `cp`.
//!
//! The source is read once in large blocks, hashed as it is read and written to a hidden temp
//! file in the destination folder (opened and checked like a product's, [`DirHandle`]); the temp
//! file is flushed, read back and hashed again, and only identical hashes let it be renamed into
//! place (then the folder is flushed). A move removes its source only after that, and never when
//! the source changed while it was read. Any failure removes the temp file and leaves the source
//! alone. With `mhl: true` the destination's ASC MHL history gets a generation ([`mhl`]) while
//! its lock is held, so concurrent deliveries into one folder never lose one another's records.
//!
//! [`mhl`]: crate::deliver::mhl

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::deliver::hash::{HashKind, Hashes};
use crate::deliver::mhl::{self, MhlEntry};
use crate::deliver::publish::temp_beside;
use crate::deliver::{DeliverError, DeliveryHooks, Product, Step, StepContext, note};
use crate::os::dir_handle::DirHandle;
use crate::os::version::FileVersion;

/// Size of one read or write: large enough that system calls and hashing setup vanish next to
/// the bytes moved, small enough that a few in flight cost little memory.
pub const BLOCK: usize = 8 << 20;

/// Whether a delivery keeps its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// The source stays.
    Copy,
    /// The source is removed once the destination is verified.
    Move,
}

impl TransferKind {
    /// `copy` or `move`, as in `rules.yaml` and the job log.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Copy => "copy",
            TransferKind::Move => "move",
        }
    }
}

/// A job's copy or move as route plans it: every path expanded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPlan {
    /// Copy or move.
    pub kind: TransferKind,
    /// The destination file, inside the watch roots or `outputs:` folders.
    pub to: PathBuf,
    /// The hashes to compute (at least one).
    pub hashes: Vec<HashKind>,
    /// The folder whose ASC MHL history records the delivery (`mhl: true`).
    pub mhl_root: Option<PathBuf>,
}

/// One verified copy or move to a destination file, as a job runs it.
#[derive(Debug)]
pub struct Transfer {
    /// Copy or move.
    pub kind: TransferKind,
    /// The destination file.
    pub to: PathBuf,
    /// The hashes computed while copying and again on the destination (at least one).
    pub hashes: Vec<HashKind>,
    /// The folder whose ASC MHL history records the delivery (`mhl: true`).
    pub mhl_root: Option<PathBuf>,
    /// Where deliveries may land: the watch roots and the `outputs:` folders.
    pub allowed_roots: Vec<PathBuf>,
    /// Makes the temp name unique to this job's attempt.
    pub tag: String,
    /// The destination folder, opened and checked by [`Transfer::prepare_destination`].
    dir: OnceLock<DirHandle>,
}

/// What a transfer did, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Bytes copied.
    pub bytes: u64,
    /// The hashes of the source, identical on the destination.
    pub hashes: Vec<(HashKind, String)>,
    /// Copy and read-back, without the MHL.
    pub elapsed: Duration,
    /// The source's version as it was read: a move removes it only while it is still this one.
    pub source: FileVersion,
}

impl Transfer {
    /// The transfer `plan` describes, for the attempt tagged `tag`; nothing is opened yet.
    pub fn planned(plan: &TransferPlan, allowed_roots: Vec<PathBuf>, tag: String) -> Transfer {
        Transfer::new(
            plan.kind,
            plan.to.clone(),
            plan.hashes.clone(),
            plan.mhl_root.clone(),
            allowed_roots,
            tag,
        )
    }

    /// A transfer to `to`; nothing is opened yet.
    pub fn new(
        kind: TransferKind,
        to: PathBuf,
        hashes: Vec<HashKind>,
        mhl_root: Option<PathBuf>,
        allowed_roots: Vec<PathBuf>,
        tag: String,
    ) -> Transfer {
        Transfer {
            kind,
            to,
            hashes,
            mhl_root,
            allowed_roots,
            tag,
            dir: OnceLock::new(),
        }
    }

    /// Makes and opens the destination folder from the allowed root it lies in, refusing one
    /// that resolves outside the allowed roots; done before any command runs, so a job that
    /// could never be delivered renders nothing.
    ///
    /// # Errors
    /// [`DeliverError::Transfer`] naming the folder and why.
    pub fn prepare_destination(&self) -> Result<(), DeliverError> {
        if self.dir.get().is_some() {
            return Ok(());
        }
        let temp = self.temp_path()?;
        let handle = crate::deliver::publish::prepare_output(&self.to, &temp, &self.allowed_roots)
            .map_err(|reason| self.failure(&reason))?;
        let _ = self.dir.set(handle);
        Ok(())
    }

    fn temp_path(&self) -> Result<PathBuf, DeliverError> {
        temp_beside(&self.to, &self.tag).ok_or_else(|| {
            DeliverError::Transfer(format!(
                "the {} destination `{}` names no file",
                self.kind.as_str(),
                self.to.display()
            ))
        })
    }

    fn failure(&self, reason: &str) -> DeliverError {
        DeliverError::Transfer(format!(
            "cannot {} to `{}`: {reason}",
            self.kind.as_str(),
            self.to.display()
        ))
    }

    /// Copies or moves `source` to the destination, verified, recorded in the MHL history when
    /// asked, and logged (each hash on its own line).
    ///
    /// # Errors
    /// [`DeliverError::Transfer`]: nothing is left at the destination (unless the rename itself
    /// succeeded and only a later step failed, which the message says) and a move's source is
    /// intact.
    pub fn deliver(
        &self,
        source: &Path,
        log: &mut dyn Write,
        hooks: &mut dyn DeliveryHooks,
    ) -> Result<Delivered, DeliverError> {
        let result = self.deliver_inner(source, log, hooks);
        if let Err(error) = &result {
            note(log, format!("== {error}"));
        }
        result
    }

    fn deliver_inner(
        &self,
        source: &Path,
        log: &mut dyn Write,
        hooks: &mut dyn DeliveryHooks,
    ) -> Result<Delivered, DeliverError> {
        self.prepare_destination()?;
        let dir = self
            .dir
            .get()
            .ok_or_else(|| self.failure("the destination folder was not opened"))?;
        let temp = self.temp_path()?;
        let temp_name = temp.file_name().unwrap_or_default().to_os_string();
        let final_name = self.to.file_name().unwrap_or_default().to_os_string();
        if FileVersion::of(source).is_some()
            && same_file(source, &dir.via(&final_name)).unwrap_or(false)
        {
            return Err(self.failure(&format!("`{}` is the destination itself", source.display())));
        }
        note(
            log,
            format!(
                "== {} {} -> {}",
                self.kind.as_str(),
                source.display(),
                self.to.display()
            ),
        );
        let copied = copy_verified(source, dir, &temp_name, &self.hashes).map_err(|reason| {
            let _ = dir.remove(&temp_name);
            self.failure(&format!(
                "{reason}; {}nothing was left at the destination",
                if self.kind == TransferKind::Move {
                    "the source is intact and "
                } else {
                    ""
                }
            ))
        })?;
        let Some(version) = FileVersion::of(&dir.via(&temp_name)) else {
            return Err(self.failure("the verified temp file vanished before its rename"));
        };
        let rename = |hooks: &mut dyn DeliveryHooks| -> Result<(), DeliverError> {
            if !hooks.publishing(&self.to, version) {
                return Err(self.failure(
                    "the store did not confirm this attempt's claim; the copy was discarded",
                ));
            }
            dir.rename(&temp_name, &final_name).map_err(|e| {
                self.failure(&format!("cannot rename the verified copy into place: {e}"))
            })?;
            // Some file systems refuse to sync a folder; the copy is in place either way.
            let _ = dir.sync();
            Ok(())
        };
        let placed = match &self.mhl_root {
            None => rename(hooks),
            Some(root) => {
                let rel = self.to.strip_prefix(root).unwrap_or(&self.to);
                let entry = MhlEntry {
                    rel: rel.to_path_buf(),
                    size: copied.bytes,
                    hashes: copied.hashes.clone(),
                };
                match mhl::record(root, &entry, || rename(hooks)) {
                    Ok(Ok(generation)) => {
                        note(
                            log,
                            format!(
                                "== ascmhl: generation {} in {}",
                                generation.display(),
                                root.display()
                            ),
                        );
                        Ok(())
                    }
                    Ok(Err(error)) => Err(error),
                    Err(mhl::MhlFailure::Before(reason)) => Err(self.failure(&reason)),
                    Err(mhl::MhlFailure::After(reason)) => Err(self.failure(&format!(
                        "the verified copy is in place, but its ASC MHL record failed: {reason}"
                    ))),
                }
            }
        };
        if let Err(error) = placed {
            let _ = dir.remove(&temp_name);
            return Err(error);
        }
        for (kind, hex) in &copied.hashes {
            note(log, format!("== {kind} {hex} {}", self.to.display()));
        }
        if self.kind == TransferKind::Move {
            self.remove_source(source, &copied)?;
            note(log, format!("== removed the source {}", source.display()));
        }
        let seconds = copied.elapsed.as_secs_f64().max(1e-9);
        note(
            log,
            format!(
                "== {} verified: {} bytes in {:.3}s ({:.0} MB/s, read back and compared)",
                self.kind.as_str(),
                copied.bytes,
                seconds,
                copied.bytes as f64 / seconds / 1e6
            ),
        );
        Ok(copied)
    }

    /// Removes a moved source, unless it changed since it was read (then the copy stays and
    /// the job fails: the newer contents are the user's, not ours to delete).
    fn remove_source(&self, source: &Path, copied: &Delivered) -> Result<(), DeliverError> {
        match FileVersion::of(source) {
            None => {
                return Err(self.failure(&format!(
                    "the source `{}` vanished after it was copied; the copy is in place",
                    source.display()
                )));
            }
            Some(now) if now != copied.source => {
                return Err(self.failure(&format!(
                    "the source `{}` changed after it was copied; it was not removed (the copy of the version read is in place)",
                    source.display()
                )));
            }
            Some(_) => {}
        }
        std::fs::remove_file(source).map_err(|e| {
            self.failure(&format!(
                "the copy is verified and in place, but the source `{}` could not be removed: {e}",
                source.display()
            ))
        })?;
        // The removal is durable only once its folder is flushed.
        if let Some(parent) = source.parent()
            && let Ok(folder) = File::open(parent)
        {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

impl Step for Transfer {
    fn name(&self) -> &'static str {
        match self.kind {
            TransferKind::Copy => "copy",
            TransferKind::Move => "move",
        }
    }

    fn prepare(&self, _product: &mut Product, log: &mut dyn Write) -> Result<(), DeliverError> {
        self.prepare_destination().inspect_err(|error| {
            note(log, format!("== {error}"));
        })
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        let Some(published) = product.published.clone() else {
            let error =
                self.failure("the product was not published, so there is nothing to deliver");
            cx.note(format!("== {error}"));
            return Err(error);
        };
        self.deliver(&published, cx.log, cx.hooks).map(|_| ())
    }
}

fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

fn is_regular(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.is_file())
}

fn version_of(file: &File) -> std::io::Result<FileVersion> {
    let meta = file.metadata()?;
    Ok(FileVersion {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

/// Copies `source` to `temp_name` in `dir` (a new file), hashing while copying, flushes it,
/// reads it back and compares the hashes. The caller removes the temp file on failure.
///
/// # Errors
/// Why, in words for the job log (the OS's reason included).
pub fn copy_verified(
    source: &Path,
    dir: &DirHandle,
    temp_name: &OsStr,
    kinds: &[HashKind],
) -> Result<Delivered, String> {
    copy_verified_with(source, dir, temp_name, kinds, Overlap::Threads)
}

/// How a copy overlaps its reads, hashing and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// A reading thread beside the writing one, handing blocks over (the default): fastest on
    /// an idle machine.
    Threads,
    /// One thread reads, hashes and writes in turn: no hand-over waits for the scheduler, which
    /// matters on a machine whose cores are all busy.
    Single,
}

/// [`copy_verified`] with the given [`Overlap`] (the benchmark compares both).
///
/// # Errors
/// As [`copy_verified`].
pub fn copy_verified_with(
    source: &Path,
    dir: &DirHandle,
    temp_name: &OsStr,
    kinds: &[HashKind],
    overlap: Overlap,
) -> Result<Delivered, String> {
    let started = Instant::now();
    // Checked before opening: opening a FIFO would wait for a writer.
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(format!("`{}` is not a regular file", source.display())),
        Err(e) => return Err(format!("cannot open `{}`: {e}", source.display())),
    }
    let mut input =
        File::open(source).map_err(|e| format!("cannot open `{}`: {e}", source.display()))?;
    let before =
        version_of(&input).map_err(|e| format!("cannot stat `{}`: {e}", source.display()))?;
    if !is_regular(&input) {
        return Err(format!("`{}` is not a regular file", source.display()));
    }
    let temp_via = dir.via(temp_name);
    // A stale temp from a killed attempt of this job is ours to replace.
    let _ = dir.remove(temp_name);
    let mut output = File::options()
        .write(true)
        .create_new(true)
        .open(&temp_via)
        .map_err(|e| format!("cannot create the temp file: {e}"))?;
    let (bytes, written) = pipe(&mut input, kinds, HashSide::Reader, overlap, |block| {
        output.write_all(block)
    })
    .map_err(|e| match e {
        PipeError::Read(e) => format!("cannot read `{}`: {e}", source.display()),
        PipeError::Sink(e) => format!("cannot write the copy: {e}"),
    })?;
    output
        .sync_all()
        .map_err(|e| format!("cannot flush the copy to disk: {e}"))?;
    drop(output);
    let after =
        version_of(&input).map_err(|e| format!("cannot stat `{}`: {e}", source.display()))?;
    let at_path = FileVersion::of(source);
    if after != before || at_path != Some(before) || bytes != before.size {
        return Err(format!(
            "`{}` changed while it was copied (size or modification time moved, or it was replaced)",
            source.display()
        ));
    }
    let mut back =
        File::open(&temp_via).map_err(|e| format!("cannot reopen the copy to verify it: {e}"))?;
    let (back_bytes, read_back) = pipe(&mut back, kinds, HashSide::Consumer, overlap, |_| Ok(()))
        .map_err(|e| {
        format!(
            "cannot read the copy back: {}",
            match e {
                PipeError::Read(e) | PipeError::Sink(e) => e,
            }
        )
    })?;
    if back_bytes != bytes || read_back != written {
        let show = |h: &[(HashKind, String)]| {
            h.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "the copy read back differs from the source ({bytes} bytes, {} read; source {}, copy {})",
            back_bytes,
            show(&written),
            show(&read_back)
        ));
    }
    Ok(Delivered {
        bytes,
        hashes: written,
        elapsed: started.elapsed(),
        source: before,
    })
}

enum PipeError {
    Read(std::io::Error),
    Sink(std::io::Error),
}

/// Each requested hash of a stream, as [`Hashes::finish`] gives them.
type Digests = Vec<(HashKind, String)>;

/// Where a [`pipe`] hashes the blocks: beside the reads when the consumer has work of its own
/// (writing the copy), else beside the consumer (a read-back), so both threads stay busy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HashSide {
    Reader,
    Consumer,
}

/// Reads `input` to its end in [`BLOCK`]s on a helper thread while this thread hands the blocks
/// to `sink`; the blocks are hashed on `side`. Reading, hashing and writing overlap.
fn pipe(
    input: &mut File,
    kinds: &[HashKind],
    side: HashSide,
    overlap: Overlap,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(u64, Digests), PipeError> {
    if overlap == Overlap::Single {
        let mut hashes = Hashes::new(kinds);
        let mut buffer = vec![0u8; BLOCK];
        let mut total = 0u64;
        loop {
            let filled = fill(input, &mut buffer).map_err(PipeError::Read)?;
            if filled == 0 {
                return Ok((total, hashes.finish()));
            }
            hashes.update(&buffer[..filled]);
            sink(&buffer[..filled]).map_err(PipeError::Sink)?;
            total += filled as u64;
        }
    }
    const IN_FLIGHT: usize = 3;
    let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(IN_FLIGHT);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        let _ = empty_tx.send(vec![0u8; BLOCK]);
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<(u64, Option<Digests>)> {
            let mut hashes = (side == HashSide::Reader).then(|| Hashes::new(kinds));
            let mut total = 0u64;
            while let Ok(mut buffer) = empty_rx.recv() {
                let filled = fill(input, &mut buffer)?;
                if filled == 0 {
                    break;
                }
                if let Some(hashes) = &mut hashes {
                    hashes.update(&buffer[..filled]);
                }
                total += filled as u64;
                if full_tx.send((buffer, filled)).is_err() {
                    break;
                }
            }
            Ok((total, hashes.map(Hashes::finish)))
        });
        let mut hashes = (side == HashSide::Consumer).then(|| Hashes::new(kinds));
        let mut sink_error = None;
        for (buffer, filled) in full_rx.iter() {
            if let Some(hashes) = &mut hashes {
                hashes.update(&buffer[..filled]);
            }
            if let Err(e) = sink(&buffer[..filled]) {
                sink_error = Some(e);
                // Stop the reader: its next send or receive finds the channels closed.
                break;
            }
            let _ = empty_tx.send(buffer);
        }
        drop(empty_tx);
        drop(full_rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked")));
        match (sink_error, read) {
            (Some(e), _) => Err(PipeError::Sink(e)),
            (None, Err(e)) => Err(PipeError::Read(e)),
            (None, Ok((total, from_reader))) => Ok((
                total,
                from_reader
                    .or_else(|| hashes.map(Hashes::finish))
                    .unwrap_or_default(),
            )),
        }
    })
}

/// Reads until `buffer` is full or the file ends; 0 only at the end.
fn fill(input: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The temp name a transfer to `to` uses under job tag `tag` (for recovery and tests).
pub fn temp_name(to: &Path, tag: &str) -> Option<OsString> {
    temp_beside(to, tag).and_then(|p| p.file_name().map(OsStr::to_os_string))
}

#[cfg(test)]
mod tests;
