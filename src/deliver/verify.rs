//! `verify:`: a product is read back with ffprobe before it is published.
//!
//! ffmpeg exits 0 after writing a short movie (a gap in the frames), a movie without timecode
//! (a label it could not parse) or the wrong pixel format, so exit status proves nothing. Each
//! check compares one property ffprobe reports with the rule's expectation; a product that
//! fails is not published and the job fails naming every difference.
//!
//! Frame counts come from the container (`nb_frames` in MOV/MP4, `duration_ts` in MXF), which
//! costs one header read rather than decoding the movie.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::media::timecode::Rate;
use crate::rules::template::{Bindings, MissingVariable, Template};

/// The properties `verify:` can check, by their key in the rules file.
pub const KEYS: &[&str] = &[
    "frames", "timecode", "codec", "profile", "pix_fmt", "width", "height", "fps", "comment",
];

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

/// Longest ffprobe may take on one product.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// A rule's `verify:` mapping: key → template of the expected value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRule {
    /// (key, expected value) in file order.
    pub checks: Vec<(String, Template)>,
}

impl VerifyRule {
    /// Expands every expectation for one job.
    ///
    /// # Errors
    /// A variable without a value for this job.
    pub fn expand(&self, vars: &Bindings) -> Result<Expectations, MissingVariable> {
        let checks = self
            .checks
            .iter()
            .map(|(key, t)| {
                t.expand(vars)
                    .map(|v| (key.clone(), v.to_string_lossy().into_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Expectations { checks })
    }
}

/// What one job's product must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// (key, expected value).
    pub checks: Vec<(String, String)>,
}

/// What ffprobe reported about a product.
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

/// Runs ffprobe on `path`.
///
/// # Errors
/// ffprobe could not run, failed, or printed something that is not its JSON.
pub fn probe(path: &Path) -> Result<Probed, String> {
    let args: Vec<OsString> = vec![
        "-v".into(),
        "error".into(),
        "-of".into(),
        "json".into(),
        "-show_entries".into(),
        "format_tags=timecode,comment:stream=codec_type,codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_frames,duration_ts,time_base:stream_tags=timecode".into(),
        path.as_os_str().to_owned(),
    ];
    let program = crate::os::program::resolve_program(&OsString::from("ffprobe"));
    let handle = duct::cmd(program, args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    let output = match handle.wait_timeout(PROBE_TIMEOUT) {
        Ok(Some(output)) => output.clone(),
        Ok(None) => {
            let _ = handle.kill();
            return Err(format!("ffprobe took longer than {PROBE_TIMEOUT:?}"));
        }
        Err(e) => return Err(format!("ffprobe: {e}")),
    };
    if !output.status.success() {
        return Err(format!(
            "ffprobe cannot read the product ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_probe(&output.stdout)
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
        .ok_or("the product has no video stream")?;
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

impl Probed {
    /// Adds the `{probe.*}` variables that have a value (a file without timecode has no
    /// `{probe.timecode}`, and a rule using it then fails to plan, naming the variable).
    pub fn bind(&self, vars: &mut crate::rules::template::Bindings) {
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                vars.insert(name, value);
            }
        };
        put("probe.timecode", self.timecode.clone());
        put("probe.fps", self.fps.map(|r| r.fraction()));
        put("probe.width", self.width.map(|n| n.to_string()));
        put("probe.height", self.height.map(|n| n.to_string()));
        put("probe.frames", self.frames.map(|n| n.to_string()));
        put("probe.codec", self.codec.clone());
        put("probe.pix_fmt", self.pix_fmt.clone());
    }
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

impl Expectations {
    /// Every difference between `probed` and the expectations; empty when the product is right.
    pub fn differences(&self, probed: &Probed) -> Vec<String> {
        let mut out = Vec::new();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
        for (key, want) in &self.checks {
            let (got, ok) = match key.as_str() {
                "frames" => {
                    let got = probed.frames.map(|n| n.to_string());
                    (show(&got), got.as_deref() == Some(want.trim()))
                }
                "width" | "height" => {
                    let got = if key == "width" {
                        probed.width
                    } else {
                        probed.height
                    };
                    let got = got.map(|n| n.to_string());
                    (show(&got), got.as_deref() == Some(want.trim()))
                }
                "fps" => {
                    let want_rate = Rate::parse(want).ok();
                    let got = probed.fps.map(|r| r.to_string());
                    (show(&got), want_rate.is_some() && probed.fps == want_rate)
                }
                "timecode" => (
                    show(&probed.timecode),
                    probed.timecode.as_deref() == Some(want.as_str()),
                ),
                "comment" => (
                    show(&probed.comment),
                    probed.comment.as_deref() == Some(want.as_str()),
                ),
                "codec" | "profile" | "pix_fmt" => {
                    let got = match key.as_str() {
                        "codec" => &probed.codec,
                        "profile" => &probed.profile,
                        _ => &probed.pix_fmt,
                    };
                    (
                        show(got),
                        got.as_deref()
                            .is_some_and(|g| g.eq_ignore_ascii_case(want.trim())),
                    )
                }
                _ => continue,
            };
            if !ok {
                out.push(format!("{key} is {got}, expected {want}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOV: &str = r#"{"streams":[{"codec_name":"prores","profile":"HQ","codec_type":"video","width":320,"height":180,"pix_fmt":"yuv422p10le","r_frame_rate":"24/1","time_base":"1/12288","duration_ts":98304,"nb_frames":"48","tags":{"timecode":"01:00:00:00"}},{"codec_type":"data","tags":{"timecode":"01:00:00:00"}}],"format":{}}"#;
    const MXF: &str = r#"{"streams":[{"codec_name":"dnxhd","profile":"DNXHD","codec_type":"video","width":1920,"height":1080,"pix_fmt":"yuv422p","r_frame_rate":"30000/1001","time_base":"1001/30000","duration_ts":8}],"format":{"tags":{"timecode":"00:59:59;28"}}}"#;

    fn expect(pairs: &[(&str, &str)]) -> Expectations {
        Expectations {
            checks: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

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

    #[test]
    fn reports_each_difference() {
        let mov = parse_probe(MOV.as_bytes()).unwrap();
        let ok = expect(&[
            ("frames", "48"),
            ("codec", "ProRes"),
            ("profile", "hq"),
            ("fps", "24"),
            ("width", "320"),
        ]);
        assert!(ok.differences(&mov).is_empty());
        let bad = expect(&[
            ("frames", "46"),
            ("timecode", "01:00:00:01"),
            ("pix_fmt", "yuv422p"),
        ]);
        assert_eq!(
            bad.differences(&mov),
            [
                "frames is 48, expected 46",
                "timecode is 01:00:00:00, expected 01:00:00:01",
                "pix_fmt is yuv422p10le, expected yuv422p"
            ]
        );
        let none = Probed::default();
        assert_eq!(
            expect(&[("timecode", "01:00:00:00")]).differences(&none),
            ["timecode is none, expected 01:00:00:00"]
        );
    }
}
