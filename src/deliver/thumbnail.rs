//! The poster frame of a published product (`thumbnail: true`): one small JPEG of its middle
//! frame, kept in the state folder (`STATE/thumbs/<job id>.jpg`) for the dashboard.
//!
//! A thumbnail is a courtesy, not the product: this step never fails the job (a product ffmpeg
//! cannot draw is one log line) and gives ffmpeg a short deadline, so a job's end waits seconds
//! at most. It runs right after `Publish`, before a `move:` can take the product away, and reads
//! the published file, never the temp one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deliver::{DeliverError, Product, Step, StepContext};

/// The folder of the state folder that holds thumbnails.
pub const THUMBS_DIR: &str = "thumbs";

/// How wide a thumbnail is; its height keeps the product's aspect (even, for JPEG's chroma).
pub const WIDTH: u32 = 320;

/// Longest ffmpeg may take to draw one frame before it is killed and the thumbnail skipped.
const DEADLINE: Duration = Duration::from_secs(20);

/// Where job `id`'s thumbnail lives under `state_dir`; `None` for an id that is not a plain
/// number, so that nothing built from a request can name another file.
pub fn path_in(state_dir: &Path, id: &str) -> Option<PathBuf> {
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| state_dir.join(THUMBS_DIR).join(format!("{id}.jpg")))
}

/// The step that draws the published product's middle frame into [`Thumbnail::to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The JPEG to write (written beside as a temp file, then renamed: never seen half done).
    pub to: PathBuf,
    /// The product's frame count when the plan knows it (a sequence's length); else ffprobe's.
    pub frames: Option<u64>,
}

impl Step for Thumbnail {
    fn name(&self) -> &'static str {
        "thumbnail"
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        let Some(published) = product.published.clone() else {
            return Ok(());
        };
        match self.draw(&published) {
            Ok(()) => cx.note(format!("== thumbnail {}", self.to.display())),
            Err(reason) => {
                tracing::warn!(product = %published.display(), %reason, "thumbnail not made");
                cx.note(format!(
                    "== thumbnail not made (the job is not failed): {reason}"
                ));
            }
        }
        Ok(())
    }
}

impl Thumbnail {
    /// Draws the frame; the reason when it could not.
    fn draw(&self, product: &Path) -> Result<(), String> {
        let seek = middle_seconds(product, self.frames);
        let dir = self.to.parent().ok_or("the thumbnail path has no folder")?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot make `{}`: {e}", dir.display()))?;
        let mut temp = self.to.clone().into_os_string();
        temp.push(".part");
        let temp = PathBuf::from(temp);
        let args = ffmpeg_args(product, seek, &temp);
        let run = || -> Result<(), String> {
            let ffmpeg = crate::os::program::command(std::ffi::OsStr::new("ffmpeg"), &args)
                .stdin_null()
                .stdout_null()
                .stderr_capture();
            let output = crate::os::program::output_within(ffmpeg, DEADLINE)
                .map_err(|e| format!("cannot run ffmpeg: {e}"))?
                .ok_or_else(|| format!("ffmpeg took longer than {DEADLINE:?}"))?;
            if !output.status.success() {
                return Err(format!(
                    "ffmpeg {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            match std::fs::metadata(&temp) {
                Ok(m) if m.len() > 0 => {}
                _ => return Err("ffmpeg wrote no frame".into()),
            }
            std::fs::rename(&temp, &self.to)
                .map_err(|e| format!("cannot rename into `{}`: {e}", self.to.display()))
        };
        let result = run();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

/// Where the middle frame is, in seconds from the start; `None` (the first frame) for a still,
/// or when neither the plan nor ffprobe knows the length and rate.
fn middle_seconds(product: &Path, frames: Option<u64>) -> Option<f64> {
    let probed = crate::media::probe::probe(product, "the product").ok()?;
    let frames = frames.or(probed.frames)?;
    let fps = probed.fps?.fps();
    (frames > 1 && fps > 0.0).then(|| (frames / 2) as f64 / fps)
}

/// ffmpeg's arguments: seek before the input (a fast seek to the nearest key frame, then
/// decoded up to the frame), one frame scaled to [`WIDTH`], written as a JPEG.
fn ffmpeg_args(product: &Path, seek: Option<f64>, to: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-nostdin", "-v", "error", "-y"]
        .iter()
        .map(OsString::from)
        .collect();
    if let Some(seconds) = seek {
        args.push("-ss".into());
        args.push(format!("{seconds:.3}").into());
    }
    args.push("-i".into());
    args.push(product.as_os_str().to_owned());
    for arg in [
        "-frames:v".to_string(),
        "1".into(),
        "-vf".into(),
        format!("scale={WIDTH}:-2"),
        "-q:v".into(),
        "4".into(),
        "-f".into(),
        "image2".into(),
    ] {
        args.push(arg.into());
    }
    args.push(to.as_os_str().to_owned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_job_number_names_a_thumbnail() {
        let state = Path::new("/state");
        assert_eq!(
            path_in(state, "42"),
            Some(PathBuf::from("/state/thumbs/42.jpg"))
        );
        for bad in ["", "../42", "4/2", "42.jpg", "-1", "x"] {
            assert_eq!(path_in(state, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ffmpeg_seeks_before_its_input_and_writes_one_scaled_frame() {
        let args = ffmpeg_args(Path::new("/p/a.mov"), Some(2.0), Path::new("/t/1.jpg.part"));
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |s: &str| text.iter().position(|a| a == s).expect(s);
        assert!(at("-ss") < at("-i"), "{text:?}");
        assert_eq!(text[at("-ss") + 1], "2.000");
        assert_eq!(text[at("-vf") + 1], "scale=320:-2");
        assert_eq!(text[at("-frames:v") + 1], "1");
        assert_eq!(text.last().map(String::as_str), Some("/t/1.jpg.part"));
    }

    /// ffmpeg must be here; only `SHOTROUTER_ALLOW_SKIP=1` lets a test without it pass.
    fn ffmpeg_or_skip() -> bool {
        if crate::os::program::find_program(std::ffi::OsStr::new("ffmpeg")).is_some() {
            return true;
        }
        assert!(
            std::env::var_os("SHOTROUTER_ALLOW_SKIP").is_some_and(|v| v == "1"),
            "ffmpeg is not on PATH (SHOTROUTER_ALLOW_SKIP=1 skips)"
        );
        eprintln!("skipped: ffmpeg is not on PATH");
        false
    }

    #[test]
    fn the_middle_frame_of_a_movie_becomes_a_small_jpeg() {
        if !ffmpeg_or_skip() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let product = dir.path().join("a.mov");
        let made = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=size=640x360:rate=24:duration=2")
            .arg(&product)
            .status()
            .expect("ffmpeg");
        assert!(made.success());
        let step = Thumbnail {
            to: dir.path().join("thumbs").join("7.jpg"),
            frames: None,
        };
        step.draw(&product).expect("drawn");
        let jpeg = std::fs::read(&step.to).expect("thumbnail");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
        let probed = crate::media::probe::probe(&step.to, "the thumbnail").expect("probe");
        assert_eq!((probed.width, probed.height), (Some(320), Some(180)));
    }

    #[test]
    fn a_product_ffmpeg_cannot_read_is_a_reason_not_a_panic() {
        if !ffmpeg_or_skip() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let product = dir.path().join("not-a-movie.mov");
        std::fs::write(&product, b"no frames here").expect("write");
        let step = Thumbnail {
            to: dir.path().join("thumbs").join("1.jpg"),
            frames: None,
        };
        assert!(step.draw(&product).is_err());
        assert!(!step.to.exists());
        assert!(!dir.path().join("thumbs").join("1.jpg.part").exists());
    }
}
