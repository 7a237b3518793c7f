//! Reading a cut file: its format by extension or content, an `.otio` file's own rate, AAF
//! and FCP XML through OpenTimelineIO's `otioconvert`. The readers themselves are
//! `crate::edit`'s, which does no I/O.

use std::path::{Path, PathBuf};

use crate::edit::{Cut, EditError, cmx3600, otio};
use crate::media::timecode::Rate;
use crate::store::now_ms;

/// Why a cut file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The file cannot be read.
    #[error("cannot read cut file `{}`: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cut the readers understand; the reader's error names the line or clip.
    #[error("`{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the reader refused, and where.
        #[source]
        source: EditError,
    },
    /// An EDL with no rate to read it at.
    #[error(
        "`{}` is an EDL, which carries no frame rate; give `--fps` (e.g. `--fps 24`) or `fps:` in the rules' `cuts:` block",
        path.display()
    )]
    NoRate {
        /// The file.
        path: PathBuf,
    },
    /// An `.otio` file whose rate is none shotrouter knows, with no `--fps`.
    #[error(
        "`{}` counts at {rate} fps, which is no rate shotrouter knows; give `--fps` (e.g. `--fps 23.976`)",
        path.display()
    )]
    OddRate {
        /// The file.
        path: PathBuf,
        /// The rate the file gives.
        rate: f64,
    },
    /// AAF or FCP XML, and no `otioconvert` to turn it into `.otio`.
    #[error(
        "`{}` is {format}, which shotrouter reads through OpenTimelineIO's `otioconvert`, and `otioconvert` is not on PATH; install it (`pip install opentimelineio otio-aaf-adapter otio-fcp-adapter`) or export the cut as an EDL or .otio",
        path.display()
    )]
    NoConverter {
        /// The file.
        path: PathBuf,
        /// `AAF`, `FCP XML`.
        format: &'static str,
    },
    /// `otioconvert` ran and failed.
    #[error("`otioconvert` cannot convert `{}`: {reason}", path.display())]
    Convert {
        /// The file.
        path: PathBuf,
        /// Its last line of stderr, or how it ended.
        reason: String,
    },
}

/// What kind of cut file a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Edl,
    Otio,
    /// Read through `otioconvert`, named for messages.
    Converted(&'static str),
}

/// The format by extension, else by content: JSON is OTIO, anything else an EDL.
fn format_of(path: &Path, bytes: &[u8]) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("edl") => Format::Edl,
        Some("otio") => Format::Otio,
        Some("aaf") => Format::Converted("AAF"),
        Some("xml" | "fcpxml") => Format::Converted("FCP XML"),
        _ if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => Format::Otio,
        _ => Format::Edl,
    }
}

/// Reads `bytes` as the cut file `path` holds, at `fps` (required for an EDL; an .otio file
/// gives its own when not told).
pub fn read_cut(path: &Path, bytes: &[u8], fps: Option<Rate>) -> Result<(Cut, Rate), CutError> {
    let read = |source| CutError::Read {
        path: path.to_path_buf(),
        source,
    };
    // EDLs come from many editors; a stray Latin-1 byte in a clip name should not refuse
    // the whole list.
    let text = String::from_utf8_lossy(bytes);
    match format_of(path, bytes) {
        Format::Edl => {
            let rate = fps.ok_or_else(|| CutError::NoRate {
                path: path.to_path_buf(),
            })?;
            Ok((cmx3600::parse(&text, rate).map_err(read)?, rate))
        }
        Format::Otio => {
            let rate = match fps {
                Some(rate) => rate,
                None => otio_rate(path, &text)?,
            };
            Ok((otio::parse(&text, rate).map_err(read)?, rate))
        }
        Format::Converted(format) => {
            let converted = convert(path, format)?;
            let rate = match fps {
                Some(rate) => rate,
                None => otio_rate(path, &converted)?,
            };
            Ok((otio::parse(&converted, rate).map_err(read)?, rate))
        }
    }
}

/// The rate of an .otio file: that of its first time, mapped to the rate shotrouter knows it
/// as (23.976023976... is 24000/1001).
fn otio_rate(path: &Path, text: &str) -> Result<Rate, CutError> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| CutError::Read {
        path: path.to_path_buf(),
        source: EditError::Json(e),
    })?;
    let Some(rate) = first_rate(&root) else {
        // No times at all: an empty timeline; any rate reads it.
        return Ok(Rate::parse("24").expect("24 is a rate"));
    };
    let known = [
        "23.976", "24", "25", "29.97", "30", "47.952", "48", "50", "59.94", "60",
    ];
    known
        .iter()
        .map(|t| Rate::parse(t).expect("a known rate"))
        .find(|r| (r.fps() - rate).abs() < 0.001)
        .or_else(|| {
            (rate.fract() == 0.0 && (1.0..=1000.0).contains(&rate))
                .then(|| Rate::parse(&format!("{rate}")).ok())
                .flatten()
        })
        .ok_or(CutError::OddRate {
            path: path.to_path_buf(),
            rate,
        })
}

/// The `rate` of the first `RationalTime` in the document, depth first.
fn first_rate(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Object(map) => {
            let is_time = map
                .get("OTIO_SCHEMA")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("RationalTime"));
            if is_time && let Some(rate) = map.get("rate").and_then(|r| r.as_f64()) {
                return Some(rate);
            }
            map.values().find_map(first_rate)
        }
        serde_json::Value::Array(items) => items.iter().find_map(first_rate),
        _ => None,
    }
}

/// AAF or FCP XML as .otio text, through `otioconvert` into a temp file.
fn convert(path: &Path, format: &'static str) -> Result<String, CutError> {
    let Some(program) = crate::os::program::find_program("otioconvert".as_ref()) else {
        return Err(CutError::NoConverter {
            path: path.to_path_buf(),
            format,
        });
    };
    let failed = |reason: String| CutError::Convert {
        path: path.to_path_buf(),
        reason,
    };
    // A name of this process's own: otioconvert writes the file, this reads then removes it.
    let out = std::env::temp_dir().join(format!(
        "shotrouter-cut-{}-{}.otio",
        std::process::id(),
        now_ms()
    ));
    let run = std::process::Command::new(program)
        .arg("-i")
        .arg(path)
        .arg("-o")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(failed(
            last.map_or_else(|| run.status.to_string(), |l| l.trim().to_string()),
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| failed(format!("no output: {e}")));
    let _ = std::fs::remove_file(&out);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension_then_content() {
        let cases = [
            ("a.EDL", "{", Format::Edl),
            ("a.otio", "TITLE", Format::Otio),
            ("a.aaf", "", Format::Converted("AAF")),
            ("a.fcpxml", "", Format::Converted("FCP XML")),
            ("cut", "  {\"OTIO_SCHEMA\"", Format::Otio),
            ("cut.txt", "TITLE: x", Format::Edl),
        ];
        for (path, text, want) in cases {
            assert_eq!(format_of(Path::new(path), text.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn otio_rates_map_to_known_ones_and_odd_ones_ask_for_fps() {
        let time = |rate: f64| {
            format!(
                "{{\"OTIO_SCHEMA\": \"Timeline.1\", \"global_start_time\": {{\"OTIO_SCHEMA\": \"RationalTime.1\", \"rate\": {rate}, \"value\": 0}}}}"
            )
        };
        let rate = |r: f64| otio_rate(Path::new("a.otio"), &time(r)).map(|r| r.to_string());
        assert_eq!(rate(24.0).unwrap(), "24");
        assert_eq!(rate(23.976023976023978).unwrap(), "23.976");
        assert_eq!(rate(29.97002997002997).unwrap(), "29.97");
        assert_eq!(rate(120.0).unwrap(), "120");
        let err = rate(23.5).unwrap_err().to_string();
        assert_eq!(
            err,
            "`a.otio` counts at 23.5 fps, which is no rate shotrouter knows; give `--fps` (e.g. `--fps 23.976`)"
        );
    }
}
