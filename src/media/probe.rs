//! ffprobe: reads what a media file is (codec, size, rate, frame count, timecode).
//!
//! Used twice: on a rule's input (`probe: true`, whose values route binds as `{probe.*}`) and on
//! a product before it is published (`verify:`, compared in `deliver::verify`). Only reads;
//! knows nothing of rules or templates.
//!
//! Frame counts come from the container (`nb_frames` in MOV/MP4, `duration_ts` in MXF), which
//! costs one header read rather than decoding the movie.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::media::timecode::Rate;

/// Variables a rule with `probe: true` gets from its input file.
pub const PROBE_VARIABLES: &[&str] = &[
    "probe.timecode",
    "probe.fps",
    "probe.width",
    "probe.height",
    "probe.frames",
    "probe.codec",
    "probe.pix_fmt",
];

/// Longest ffprobe may take on one file.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// What ffprobe reported about a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    /// Video codec name (`prores`, `dnxhd`, `h264`).
    pub codec: Option<String>,
    /// Codec profile (`HQ`, `DNXHD`).
    pub profile: Option<String>,
    /// Pixel format.
    pub pix_fmt: Option<String>,
    /// Width in pixels.
    pub width: Option<u64>,
    /// Height in pixels.
    pub height: Option<u64>,
    /// Frame rate as a fraction.
    pub fps: Option<Rate>,
    /// Frames in the first video stream.
    pub frames: Option<u64>,
    /// The start timecode: the format tag (MXF), else a stream tag (MOV/MP4's `tmcd`).
    pub timecode: Option<String>,
    /// The container's `comment` tag (kept by MOV and MP4; MXF drops it).
    pub comment: Option<String>,
}

/// Runs ffprobe on `path`; `what` names the file in errors ("the input `a.mov`", "the
/// product"), since the same probe reads a rule's input and a job's product.
///
/// # Errors
/// ffprobe could not run, failed, or printed something that is not its JSON.
pub fn probe(path: &Path, what: &str) -> Result<Probed, String> {
    let args: Vec<OsString> = vec![
        "-v".into(),
        "error".into(),
        "-of".into(),
        "json".into(),
        "-show_entries".into(),
        "format_tags=timecode,comment:stream=codec_type,codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_frames,duration_ts,time_base:stream_tags=timecode".into(),
        path.as_os_str().to_owned(),
    ];
    let ffprobe = crate::os::program::command(std::ffi::OsStr::new("ffprobe"), &args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture();
    let output = crate::os::program::output_within(ffprobe, PROBE_TIMEOUT)
        .map_err(|e| format!("cannot run ffprobe on {what}: {e}"))?
        .ok_or_else(|| format!("ffprobe took longer than {PROBE_TIMEOUT:?}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffprobe cannot read {what} ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_probe(&output.stdout).map_err(|e| format!("{what}: {e}"))
}

/// Reads ffprobe's JSON.
///
/// # Errors
/// Not ffprobe's JSON, or no video stream.
pub fn parse_probe(json: &[u8]) -> Result<Probed, String> {
    let root: Value =
        serde_json::from_slice(json).map_err(|e| format!("unreadable ffprobe output: {e}"))?;
    let streams = root["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or("no video stream")?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let number = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let fps = video["r_frame_rate"]
        .as_str()
        .and_then(|r| Rate::parse(r).ok());
    // MXF leaves nb_frames unset; its duration_ts counts frames when the time base is 1/fps.
    let frames = number(&video["nb_frames"]).or_else(|| {
        let duration = number(&video["duration_ts"])?;
        let base = Rate::parse(video["time_base"].as_str()?).ok()?;
        let fps = fps?;
        (u64::from(base.num) * u64::from(fps.num) == u64::from(base.den) * u64::from(fps.den))
            .then_some(duration)
    });
    let timecode = text(&root["format"]["tags"]["timecode"])
        .or_else(|| streams.iter().find_map(|s| text(&s["tags"]["timecode"])));
    Ok(Probed {
        comment: text(&root["format"]["tags"]["comment"]),
        codec: text(&video["codec_name"]),
        profile: text(&video["profile"]),
        pix_fmt: text(&video["pix_fmt"]),
        width: number(&video["width"]),
        height: number(&video["height"]),
        fps,
        frames,
        timecode,
    })
}

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let num = |v: Option<u64>| v.map_or("?".into(), |n| n.to_string());
        write!(
            f,
            "{} {} {} {}x{} {} fps, {} frames, timecode {}",
            text(&self.codec),
            text(&self.profile),
            text(&self.pix_fmt),
            num(self.width),
            num(self.height),
            self.fps.map_or("?".into(), |r| r.to_string()),
            num(self.frames),
            self.timecode.as_deref().unwrap_or("none")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ProRes MOV as ffmpeg writes it, timecode in a `tmcd` data stream.
    const MOV: &str = r#"{"streams":[{"codec_name":"prores","profile":"HQ","codec_type":"video","width":320,"height":180,"pix_fmt":"yuv422p10le","r_frame_rate":"24/1","time_base":"1/12288","duration_ts":98304,"nb_frames":"48","tags":{"timecode":"01:00:00:00"}},{"codec_type":"data","tags":{"timecode":"01:00:00:00"}}],"format":{}}"#;
    const MXF: &str = r#"{"streams":[{"codec_name":"dnxhd","profile":"DNXHD","codec_type":"video","width":1920,"height":1080,"pix_fmt":"yuv422p","r_frame_rate":"30000/1001","time_base":"1001/30000","duration_ts":8}],"format":{"tags":{"timecode":"00:59:59;28"}}}"#;

    #[test]
    fn reads_frames_and_timecode_from_mov_and_mxf() {
        let mov = parse_probe(MOV.as_bytes()).unwrap();
        assert_eq!(
            (mov.frames, mov.timecode.as_deref()),
            (Some(48), Some("01:00:00:00"))
        );
        let mxf = parse_probe(MXF.as_bytes()).unwrap();
        assert_eq!(
            (mxf.frames, mxf.timecode.as_deref()),
            (Some(8), Some("00:59:59;28"))
        );
        assert_eq!(mxf.fps, Some(Rate::ntsc(30)));
    }
}
