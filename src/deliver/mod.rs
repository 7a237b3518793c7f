//! What happens to a product after its commands exit 0 and before anyone may see it: a list of
//! [`Step`]s run in order (verification with ffprobe or an image's own header, an ALE's temp
//! file, the temp-then-rename publish, the ALE's rename, a poster frame for the dashboard (`thumbnail`), then a verified copy or move with its
//! ASC MHL record (`copy`, `mhl`)).
//!
//! exec decides when steps run and turns their errors into the job's outcome; steps know nothing
//! of processes, rules or the store. Invariant: the final path is touched only by `Publish`, and
//! only after every step before it has passed.

pub mod ale;
pub mod copy;
pub mod hash;
pub mod mhl;
pub mod publish;
pub mod thumbnail;
pub mod verify;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::os::dir_handle::DirHandle;
use crate::os::version::FileVersion;
use publish::OutputPaths;

/// The product of one job on its way out: the temp file the commands wrote and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The rule that made it, for messages and for steps that name files after it.
    pub rule: String,
    /// The hidden temp file the commands wrote (`{out}`).
    pub temp_path: PathBuf,
    /// Where it is published.
    pub final_path: PathBuf,
    /// Set once the product is renamed into place; steps after publishing (copies, hash lists)
    /// start from here.
    pub published: Option<PathBuf>,
    /// Files a step wrote besides the product (a sidecar, a hash list), so that clean-up after a
    /// failure and the job's record can find them.
    pub extra_files: Vec<PathBuf>,
    /// The output folder, opened and checked by `Publish::prepare`: the temp file is written,
    /// read, renamed and removed through it, never by a path that could be swapped meanwhile.
    pub dir: Option<Arc<DirHandle>>,
}

impl Product {
    /// The product a rule `rule` writes at `output`'s temp path.
    pub fn new(rule: &str, output: &OutputPaths) -> Product {
        Product {
            rule: rule.to_string(),
            temp_path: output.temp_path.clone(),
            final_path: output.final_path.clone(),
            published: None,
            extra_files: Vec::new(),
            dir: None,
        }
    }

    /// The temp file's name in its folder.
    pub fn temp_name(&self) -> &OsStr {
        self.temp_path.file_name().unwrap_or_default()
    }

    /// The path to open the temp file by: through the checked folder's handle once there is
    /// one (`/proc/<pid>/fd/<n>/.name`, what commands get as `{out}`), else its plain path.
    pub fn temp_access(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.via(self.temp_name()),
            None => self.temp_path.clone(),
        }
    }

    /// Removes what a failed or cancelled job leaves behind: the temp file and any extra files.
    /// A published product stays: once visible, it is someone else's.
    pub fn discard(&self) {
        match &self.dir {
            Some(dir) => {
                let _ = dir.remove(self.temp_name());
            }
            None => {
                let _ = std::fs::remove_file(&self.temp_path);
            }
        }
        for path in &self.extra_files {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What delivery reports to whoever records the job, at the moments that must be durable.
pub trait DeliveryHooks {
    /// The product is about to be renamed to `path` with this version: recorded first, so the
    /// rename's own file event, and recovery after a crash between the two, recognise it.
    /// Returning false refuses the rename: the attempt no longer holds the job's claim.
    fn publishing(&mut self, path: &Path, version: FileVersion) -> bool;
}

/// What a step gets besides the product: the job's log and the hooks.
pub struct StepContext<'a> {
    /// The job's log file: each step writes its own `== ...` lines, failures included.
    pub log: &'a mut dyn Write,
    /// Where durable events are reported.
    pub hooks: &'a mut dyn DeliveryHooks,
}

impl StepContext<'_> {
    /// Appends one line to the job log.
    pub fn note(&mut self, line: impl Into<String>) {
        note(self.log, line.into());
    }
}

/// One post-command delivery step.
///
/// Steps run in order after every command exited 0; the first error stops the job, and the
/// runner then discards the [`Product`]. A step that makes files adds them to
/// [`Product::extra_files`]; a step that needs the published path runs after `Publish` and reads
/// [`Product::published`].
pub trait Step {
    /// A short name for logs (`verify`, `publish`).
    fn name(&self) -> &'static str;

    /// Checks made before any command runs, so a job that could never be delivered wastes no
    /// render (an output folder outside the allowed roots); a step may keep what it opened for
    /// the check in the product. The default checks nothing.
    ///
    /// # Errors
    /// Why the product could not be delivered; the step has logged it.
    fn prepare(&self, product: &mut Product, log: &mut dyn Write) -> Result<(), DeliverError> {
        let _ = (product, log);
        Ok(())
    }

    /// Does the step's work on the product.
    ///
    /// # Errors
    /// Why the product must not be delivered; the step has logged it.
    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError>;
}

/// Why a product was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// Every command succeeded but none wrote the product.
    #[error("the commands exited 0 but did not write `{}`", .0.display())]
    NoOutput(PathBuf),
    /// The output folder or the final rename failed, or it leads outside the allowed roots.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The product was written but is not what the rule's `verify:` asks for.
    #[error("verification failed: {0}")]
    Verify(String),
    /// A `copy:` or `move:` did not deliver a verified file (the message says what was left).
    #[error("{0}")]
    Transfer(String),
    /// The ALE beside the product could not be written or published.
    #[error("ale: {0}")]
    Ale(String),
}

/// Appends `line` and a newline to `log` in one write (an unbuffered `writeln!` would issue one
/// system call per formatting fragment).
fn note(log: &mut dyn Write, mut line: String) {
    line.push('\n');
    let _ = log.write_all(line.as_bytes());
}
