//! A full decode of a movie with ffmpeg: every frame of every stream, stopping at the first
//! error. ffprobe reads only the container's header, so a product whose frames are broken
//! (a truncated or corrupted write, a bad disk) still probes fine; decoding is the only proof
//! that it plays. Costs a decode of the whole product (`benches/verify-decode`).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Longest one decode may take: hours of 4K ProRes decode in minutes, so this only stops a
/// stuck ffmpeg.
const DECODE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Decodes every frame of `path` (`ffmpeg -v error -xerror -i PATH -f null -`).
///
/// # Errors
/// ffmpeg could not run, took longer than its timeout, or failed: the first line it printed
/// (its context's address dropped), or its exit status when it printed none.
pub fn decode(path: &Path) -> Result<(), String> {
    let args: Vec<OsString> = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        "-xerror".into(),
        "-i".into(),
        path.as_os_str().to_owned(),
        "-f".into(),
        "null".into(),
        "-".into(),
    ];
    let ffmpeg = crate::os::program::command(std::ffi::OsStr::new("ffmpeg"), &args)
        .stdin_null()
        .stdout_null()
        .stderr_capture();
    let output = crate::os::program::output_within(ffmpeg, DECODE_TIMEOUT)
        .map_err(|e| format!("cannot run ffmpeg to decode the product: {e}"))?
        .ok_or_else(|| format!("decoding the product took longer than {DECODE_TIMEOUT:?}"))?;
    let first = first_error(&String::from_utf8_lossy(&output.stderr));
    match (output.status.success(), first) {
        (true, None) => Ok(()),
        (_, Some(line)) => Err(format!("the product does not decode: {line}")),
        (false, None) => Err(format!(
            "the product does not decode: ffmpeg failed ({})",
            output.status
        )),
    }
}

/// The first non-empty line of ffmpeg's errors, `[h264 @ 0x55d0c8] Invalid NAL unit` read as
/// `[h264] Invalid NAL unit` (the address differs on every run).
fn first_error(stderr: &str) -> Option<String> {
    let line = stderr.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = match (line.find(" @ 0x"), line.find(']')) {
        (Some(at), Some(end)) if line.starts_with('[') && at < end => {
            format!("{}{}", &line[..at], &line[end..])
        }
        _ => line.to_string(),
    };
    Some(line.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_line_loses_its_address() {
        let cases = [
            (
                "[NULL @ 0x55811e41edc0] Invalid NAL unit size (-1 > 35).\n[h264 @ 0x1] x\n",
                Some("[NULL] Invalid NAL unit size (-1 > 35)."),
            ),
            (
                "\n  bad.mov: Invalid data found when processing input\n",
                Some("bad.mov: Invalid data found when processing input"),
            ),
            ("", None),
            ("\n\n", None),
        ];
        for (stderr, want) in cases {
            assert_eq!(first_error(stderr).as_deref(), want, "{stderr:?}");
        }
    }
}
