//! Publishing: a product written under a hidden temp name appears at its final path in one
//! atomic rename, never half-written, and only inside the allowed roots.
//!
//! The temp file sits beside the final one (route picks its name), so the rename stays on one
//! file system. Before any command runs, the output folder is made and opened one component at
//! a time from its root, each handle checked (symlinks followed) against the watch roots and
//! `outputs:` folders; route checked the same lexically. From then on the product is written,
//! renamed and flushed through that handle ([`DirHandle`]), so a folder swapped for a symlink
//! while the job runs cannot send it anywhere else; a folder moved meanwhile fails the job.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::deliver::{DeliverError, Product, Step, StepContext, note};
use crate::os::dir_handle::DirHandle;
use crate::os::version::FileVersion;

/// Where a product is written and where it is published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputPaths {
    /// The published path.
    #[serde(with = "crate::os::path_text::path")]
    pub final_path: PathBuf,
    /// The hidden temp path the commands write (`{out}`).
    #[serde(with = "crate::os::path_text::path")]
    pub temp_path: PathBuf,
    /// The ALE published beside the product, when the rule has `ale:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ale: Option<crate::deliver::ale::AleSheet>,
}

/// `dir/.name.TAG.ext` for `dir/name.ext`: hidden (ignored by the default rules), in the same
/// folder (so the final rename is atomic), with the same extension (so ffmpeg picks the format).
pub fn temp_beside(final_path: &Path, tag: &str) -> Option<PathBuf> {
    let stem = final_path.file_stem()?;
    let mut name = b".".to_vec();
    name.extend_from_slice(stem.as_bytes());
    name.extend_from_slice(b".");
    name.extend_from_slice(tag.as_bytes());
    if let Some(ext) = final_path.extension() {
        name.push(b'.');
        name.extend_from_slice(ext.as_bytes());
    }
    Some(final_path.with_file_name(OsString::from_vec(name)))
}

/// The temp tag of job `id`'s attempt under claim `token`: the store can name every temp output
/// a job's attempts may have written from its row alone, so a start-up after a crash finds them
/// even when no start was recorded, and a user's own file never has such a name by chance.
pub fn claim_tag(id: i64, token: i64) -> String {
    format!("srjob{id}-{token}")
}

/// The step that renames the product into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Where products may be published: the watch roots and the `outputs:` folders.
    pub allowed_roots: Vec<PathBuf>,
}

impl Step for Publish {
    fn name(&self) -> &'static str {
        "publish"
    }

    fn prepare(&self, product: &mut Product, log: &mut dyn Write) -> Result<(), DeliverError> {
        match prepare_output(&product.final_path, &product.temp_path, &self.allowed_roots) {
            Ok(dir) => {
                product.dir = Some(Arc::new(dir));
                Ok(())
            }
            Err(reason) => {
                let error = DeliverError::Publish(reason);
                note(log, format!("== {error}"));
                Err(error)
            }
        }
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        if product.dir.is_none() {
            self.prepare(product, cx.log)?;
        }
        match rename_into_place(product, cx) {
            Ok(()) => {
                cx.note(format!("== published {}", product.final_path.display()));
                product.published = Some(product.final_path.clone());
                Ok(())
            }
            Err(error) => {
                cx.note(format!("== {error}"));
                Err(error)
            }
        }
    }
}

/// Makes and opens the output's folder from the allowed root it lies in, refusing one that
/// resolves (through symlinks) outside the allowed roots; removes a stale temp file from an
/// earlier, killed attempt. Returns the checked folder's handle.
pub(crate) fn prepare_output(
    final_path: &Path,
    temp_path: &Path,
    allowed: &[PathBuf],
) -> Result<DirHandle, String> {
    let handle = open_output(final_path, allowed)?;
    let name = temp_path.file_name().unwrap_or_default();
    handle
        .remove(name)
        .map_err(|e| format!("cannot remove stale `{}`: {e}", temp_path.display()))?;
    Ok(handle)
}

/// Opens (making it when missing) the output's folder from the allowed root it lies in,
/// refusing one that resolves outside the allowed roots, and leaves what is in it alone: the
/// product a farm task wrote there is published through this handle.
pub(crate) fn open_output(final_path: &Path, allowed: &[PathBuf]) -> Result<DirHandle, String> {
    let dir = final_path
        .parent()
        .ok_or_else(|| format!("output `{}` has no folder", final_path.display()))?;
    let root = allowed
        .iter()
        .filter(|root| dir.starts_with(root))
        .max_by_key(|root| root.as_os_str().len())
        .ok_or_else(|| {
            format!(
                "output folder `{}` is outside the watch roots and `outputs:` folders",
                dir.display()
            )
        })?;
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
    let real_roots: Vec<PathBuf> = allowed
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .collect();
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    DirHandle::open_checked(root, rel, &real_roots)
}

fn rename_into_place(product: &Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
    let (temp, target) = (&product.temp_path, &product.final_path);
    let Some(dir) = product.dir.as_deref() else {
        return Err(DeliverError::Publish(format!(
            "the folder of `{}` was not opened",
            target.display()
        )));
    };
    let via = product.temp_access();
    let Some(version) = FileVersion::of(&via) else {
        return Err(DeliverError::NoOutput(temp.clone()));
    };
    // The data first, so the name never points at contents still in the page cache when the
    // machine loses power.
    File::open(&via)
        .and_then(|file| file.sync_all())
        .map_err(|e| DeliverError::Publish(format!("cannot flush `{}`: {e}", temp.display())))?;
    // The product is renamed within the checked folder whatever its path leads to now; but a
    // folder moved while the job ran is no longer where the product is expected: not published.
    let now = dir.real_path().map_err(|e| {
        DeliverError::Publish(format!(
            "cannot locate the output folder of `{}`: {e}",
            target.display()
        ))
    })?;
    if now != dir.checked_path() {
        return Err(DeliverError::Publish(format!(
            "the output folder `{}` was moved to `{}` while the job ran; not published there",
            dir.checked_path().display(),
            now.display()
        )));
    }
    // Recorded before the rename: the rename's own inotify event already finds it, and a crash
    // between the two is recognisable at recovery.
    if !cx.hooks.publishing(target, version) {
        return Err(DeliverError::Publish(
            "the store did not confirm this attempt's claim (claimed again, cancelled, superseded by a newer version, or the store unreachable: see the daemon's log); its product was discarded"
                .into(),
        ));
    }
    let final_name = target.file_name().unwrap_or_default();
    dir.rename(product.temp_name(), final_name).map_err(|e| {
        DeliverError::Publish(format!(
            "cannot rename `{}` to `{}`: {e}",
            temp.display(),
            target.display()
        ))
    })?;
    // Then the folder, so the rename itself survives a crash. Some file systems refuse to sync
    // a folder; the product is in place either way, so that is no reason to fail the job.
    let _ = dir.sync();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::DeliveryHooks;

    /// Records each `publishing` call with whether the final path existed then.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(PathBuf, FileVersion, bool)>,
        /// Answer as a store does when the attempt's claim is stale.
        refuse: bool,
    }

    impl DeliveryHooks for Recorder {
        fn publishing(&mut self, path: &Path, version: FileVersion) -> bool {
            self.calls
                .push((path.to_path_buf(), version, path.exists()));
            !self.refuse
        }
    }

    fn product(dir: &Path) -> Product {
        Product::new(
            "review",
            &OutputPaths {
                final_path: dir.join("out/sh010.mov"),
                temp_path: dir.join("out/.sh010.t.mov"),
                ale: None,
            },
        )
    }

    fn run_publish(
        product: &mut Product,
        recorder: &mut Recorder,
    ) -> (Result<(), DeliverError>, String) {
        let mut log = Vec::new();
        let step = Publish {
            allowed_roots: vec![product.final_path.parent().expect("folder").to_path_buf()],
        };
        let result = step.run(
            product,
            &mut StepContext {
                log: &mut log,
                hooks: recorder,
            },
        );
        (result, String::from_utf8(log).expect("utf-8 log"))
    }

    #[test]
    fn publish_reports_the_version_then_renames() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut product = product(dir.path());
        let step = Publish {
            allowed_roots: vec![dir.path().to_path_buf()],
        };
        step.prepare(&mut product, &mut Vec::new())
            .expect("inside the root");
        std::fs::write(&product.temp_path, b"movie").expect("write temp");
        let version = FileVersion::of(&product.temp_path).expect("temp exists");
        let mut recorder = Recorder::default();
        let (result, log) = run_publish(&mut product, &mut recorder);
        result.expect("published");
        let final_path = dir.path().join("out/sh010.mov");
        assert_eq!(
            recorder.calls,
            [(final_path.clone(), version, false)],
            "reported once, before the final path existed"
        );
        assert_eq!(log, format!("== published {}\n", final_path.display()));
        assert_eq!(product.published.as_deref(), Some(final_path.as_path()));
        assert!(!product.temp_path.exists());
        assert_eq!(std::fs::read(&final_path).expect("published"), b"movie");
    }

    #[test]
    fn a_refused_publish_renames_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut product = product(dir.path());
        Publish {
            allowed_roots: vec![dir.path().to_path_buf()],
        }
        .prepare(&mut product, &mut Vec::new())
        .expect("inside the root");
        std::fs::write(&product.temp_path, b"stale movie").expect("write temp");
        let mut recorder = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        let (result, _) = run_publish(&mut product, &mut recorder);
        assert!(
            matches!(&result, Err(DeliverError::Publish(reason)) if reason.contains("superseded")),
            "{result:?}"
        );
        assert!(!product.final_path.exists(), "nothing was published");
        assert_eq!(recorder.calls.len(), 1);
    }

    #[test]
    fn a_product_never_written_is_no_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut product = product(dir.path());
        let mut recorder = Recorder::default();
        let (result, log) = run_publish(&mut product, &mut recorder);
        let temp = dir.path().join("out/.sh010.t.mov");
        assert_eq!(result, Err(DeliverError::NoOutput(temp.clone())));
        assert_eq!(
            log,
            format!(
                "== the commands exited 0 but did not write `{}`\n",
                temp.display()
            )
        );
        assert!(recorder.calls.is_empty());
    }

    #[test]
    fn prepare_refuses_a_folder_that_leads_outside_through_a_symlink() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (root, elsewhere) = (dir.path().join("root"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&elsewhere).expect("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, root.join("out")).expect("symlink");
        let mut product = product(&root);
        let mut log = Vec::new();
        let error = Publish {
            allowed_roots: vec![root.clone()],
        }
        .prepare(&mut product, &mut log)
        .expect_err("outside");
        let real = elsewhere.canonicalize().expect("real");
        let reason = format!(
            "output folder `{}` resolves to `{}`, outside the watch roots and `outputs:` folders",
            root.join("out").display(),
            real.display()
        );
        assert_eq!(error, DeliverError::Publish(reason.clone()));
        assert_eq!(
            String::from_utf8(log).expect("utf-8"),
            format!("== cannot publish: {reason}\n")
        );
    }

    #[test]
    fn prepare_removes_a_stale_temp_and_discard_removes_what_steps_made() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut product = product(dir.path());
        std::fs::create_dir_all(dir.path().join("out")).expect("folder");
        std::fs::write(&product.temp_path, b"half").expect("stale temp");
        Publish {
            allowed_roots: vec![dir.path().to_path_buf()],
        }
        .prepare(&mut product, &mut Vec::new())
        .expect("prepared");
        assert!(!product.temp_path.exists());

        let sidecar = dir.path().join("out/.sh010.t.ale");
        std::fs::write(&product.temp_path, b"movie").expect("temp");
        std::fs::write(&sidecar, b"ale").expect("sidecar");
        product.extra_files.push(sidecar.clone());
        product.discard();
        assert!(!product.temp_path.exists() && !sidecar.exists());
    }
}
