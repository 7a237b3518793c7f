//! Verified copies and moves (`copy:` and `move:` in a rule): built in, no `cp`.
//!
//! The kernel copies the source into a hidden temp file in the destination folder (opened and
//! checked like a product's, [`DirHandle`]; named and locked per claim, [`TempFile`]) while the
//! source is hashed beside it and each copied block is read back and hashed again; the temp
//! file is flushed, and only identical hashes let it be renamed into place (then the folder is
//! flushed). A move removes its source only after that, and never when the source changed
//! while it was read. Any failure removes the temp file and leaves the source
//! alone. With `mhl: true` the destination's ASC MHL history gets a generation ([`mhl`]) while
//! its lock is held, so concurrent deliveries into one folder never lose one another's records.
//!
//! [`mhl`]: crate::deliver::mhl

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::deliver::hash::HashKind;
use crate::deliver::mhl::{self, MhlEntry};
use crate::deliver::publish::temp_beside;
use crate::deliver::{DeliverError, DeliveryHooks, Product, Step, StepContext, note};
use crate::os::dir_handle::DirHandle;
use crate::os::version::FileVersion;

mod pipe;
mod temp;

use self::pipe::PipeError;
pub use self::pipe::{BLOCK, Overlap};
pub use self::temp::{TempFile, attempt_tag};

/// Whether a delivery keeps its source (`copy` or `move` in a plan's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransferPlan {
    /// Copy or move.
    pub kind: TransferKind,
    /// The destination file, inside the watch roots or `outputs:` folders.
    #[serde(with = "crate::os::path_text::path")]
    pub to: PathBuf,
    /// The hashes to compute (at least one).
    pub hashes: Vec<HashKind>,
    /// The folder whose ASC MHL history records the delivery (`mhl: true`).
    #[serde(default, with = "crate::os::path_text::opt_path")]
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
    /// Makes the temp name unique to this job's claim ([`attempt_tag`]).
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

    /// Removes the temp files and lock sidecars that killed attempts of this job left at the
    /// destination, for an attempt that finds the delivery already made and runs nothing there.
    pub fn remove_abandoned(&self, log: &mut dyn Write) {
        if self.prepare_destination().is_ok()
            && let Some(dir) = self.dir.get()
        {
            remove_abandoned_in(dir, &self.to, &self.tag, log);
        }
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
        remove_abandoned_in(dir, &self.to, &self.tag, log);
        // Held until the rename or removal: another claim's attempt leaves it alone meanwhile.
        let held = TempFile::create(dir, &temp_name)
            .map_err(|e| format!("cannot create the temp file: {e}"));
        let copied = held
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|held| {
                copy_verified_with(
                    source,
                    dir,
                    &temp_name,
                    held,
                    &self.hashes,
                    Overlap::Threads,
                    ReadBack::Disk,
                )
            })
            .map_err(|reason| {
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
        drop(held);
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

/// Copies `source` to `temp_name` in `dir` (a new file, locked while it is made), hashing
/// while copying, reads it back, flushes it and compares the hashes. The caller removes the
/// temp file on failure.
///
/// # Errors
/// Why, in words for the job log (the OS's reason included).
pub fn copy_verified(
    source: &Path,
    dir: &DirHandle,
    temp_name: &OsStr,
    kinds: &[HashKind],
) -> Result<Delivered, String> {
    let temp = TempFile::create(dir, temp_name)
        .map_err(|e| format!("cannot create the temp file: {e}"))?;
    copy_verified_with(
        source,
        dir,
        temp_name,
        &temp,
        kinds,
        Overlap::Threads,
        ReadBack::Disk,
    )
}

/// Where a copy's read-back reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// Past the page cache (`O_DIRECT`) where the file system allows it, so the read checks
    /// what reached the disk (the default); through the cache where not (tmpfs, some network
    /// file systems).
    Disk,
    /// Through the page cache: what the file system was given, as any later reader sees it.
    Cache,
}

/// [`copy_verified`] into `temp` (made by [`TempFile::create`] as `temp_name`), with the given
/// [`Overlap`] and [`ReadBack`] (the benchmark compares them).
///
/// # Errors
/// As [`copy_verified`].
pub fn copy_verified_with(
    source: &Path,
    dir: &DirHandle,
    temp_name: &OsStr,
    temp: &TempFile,
    kinds: &[HashKind],
    overlap: Overlap,
    read_back: ReadBack,
) -> Result<Delivered, String> {
    let started = Instant::now();
    // Checked before opening: opening a FIFO would wait for a writer.
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(format!("`{}` is not a regular file", source.display())),
        Err(e) => return Err(format!("cannot open `{}`: {e}", source.display())),
    }
    let input =
        File::open(source).map_err(|e| format!("cannot open `{}`: {e}", source.display()))?;
    let before =
        version_of(&input).map_err(|e| format!("cannot stat `{}`: {e}", source.display()))?;
    if !is_regular(&input) {
        return Err(format!("`{}` is not a regular file", source.display()));
    }
    let output = temp.file();
    let back = open_back(&dir.via(temp_name), read_back)
        .map_err(|e| format!("cannot reopen the copy to verify it: {e}"))?;
    let inode = |f: &File| version_of(f).ok().map(|v| (v.dev, v.ino));
    if inode(&back).is_none() || inode(&back) != inode(output) {
        return Err("the temp file was replaced before it was written".into());
    }
    let streams = pipe::run(&input, output, &back, kinds, overlap).map_err(|e| match e {
        PipeError::Copy(e) => format!("cannot write the copy: {e}"),
        PipeError::Source(e) => format!("cannot read `{}`: {e}", source.display()),
        PipeError::Back(e) => format!("cannot read the copy back: {e}"),
    })?;
    output
        .sync_all()
        .map_err(|e| format!("cannot flush the copy to disk: {e}"))?;
    let after =
        version_of(&input).map_err(|e| format!("cannot stat `{}`: {e}", source.display()))?;
    let at_path = FileVersion::of(source);
    let (bytes, written) = streams.source;
    if after != before || at_path != Some(before) || bytes != before.size || streams.copied != bytes
    {
        return Err(format!(
            "`{}` changed while it was copied (size or modification time moved, or it was replaced)",
            source.display()
        ));
    }
    let (back_bytes, read_back) = streams.back;
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

/// Opens the temp file again to read it back: past the page cache (`O_DIRECT`) where the file
/// system allows, so the read checks the disk; through it where not (tmpfs before Linux 6.6,
/// FUSE file systems that answer `EOPNOTSUPP`).
fn open_back(path: &Path, read_back: ReadBack) -> std::io::Result<File> {
    if read_back == ReadBack::Cache {
        return File::open(path);
    }
    match File::options()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Err(e) if pipe::direct_refused(&e) => File::open(path),
        opened => opened,
    }
}

/// The temp name a transfer to `to` uses under job tag `tag` (for recovery and tests).
pub fn temp_name(to: &Path, tag: &str) -> Option<OsString> {
    temp_beside(to, tag).and_then(|p| p.file_name().map(OsStr::to_os_string))
}

/// Removes what killed attempts of the job tagged `tag` left beside `to`, each named in the log.
fn remove_abandoned_in(dir: &DirHandle, to: &Path, tag: &str, log: &mut dyn Write) {
    for name in temp::remove_abandoned(dir, to, tag) {
        note(
            log,
            format!(
                "== removed {}, left by a killed attempt of this job",
                dir.checked_path().join(name).display()
            ),
        );
    }
}

#[cfg(test)]
mod tests;
