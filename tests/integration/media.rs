//! Real media for the sequence tests: 16-bit TIFF frames made by ffmpeg, written into a watched
//! tree the way a renderer does, and products read back with ffprobe.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Renders `count` 16-bit RGB TIFF frames of `size` into `dir`, named `name.%04d.tif` from
/// `first` (which must not be negative; see [`renumber`]). `pattern` picks the lavfi source, so
/// a re-render can differ from the first render.
pub fn render_tiffs(dir: &Path, name: &str, first: i64, count: usize, size: &str, pattern: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("{pattern}=size={size}:rate=24"))
        .args(["-frames:v", &count.to_string(), "-pix_fmt", "rgb48le"])
        .args([
            "-compression_algo",
            "deflate",
            "-start_number",
            &first.to_string(),
        ])
        .arg(dir.join(format!("{name}.%04d.tif")))
        .status()
        .expect("ffmpeg runs");
    assert!(
        status.success(),
        "ffmpeg could not render the fixture frames"
    );
}

/// The frames a [`render_tiffs`] call made, in frame order.
pub fn frames_in(dir: &Path) -> Vec<PathBuf> {
    let mut frames: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read staging dir")
        .map(|e| e.expect("entry").path())
        .collect();
    frames.sort();
    frames
}

/// Delivers frames into `dest` one by one as a renderer does: even-numbered ones are written in
/// place (open, write, close), odd ones are written to a hidden temp name and renamed in.
pub fn deliver(frames: &[PathBuf], dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir dest");
    for (i, frame) in frames.iter().enumerate() {
        let name = frame.file_name().expect("name");
        let bytes = std::fs::read(frame).expect("read frame");
        if i % 2 == 0 {
            std::fs::write(dest.join(name), &bytes).expect("write frame");
        } else {
            let temp = dest.join(format!(".{}.part", name.to_string_lossy()));
            std::fs::write(&temp, &bytes).expect("write temp");
            std::fs::rename(&temp, dest.join(name)).expect("rename into place");
        }
    }
}

/// ffprobe's view of a product, as JSON.
pub fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-count_frames", "-show_entries"])
        .arg("format_tags=timecode,comment:stream=codec_type,codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_read_frames:stream_tags=timecode")
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// The first video stream of a probe.
pub fn video(probe: &serde_json::Value) -> &serde_json::Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .expect("a video stream")
}

/// Frames decoded from the product (counted by decoding, not taken from the header).
pub fn decoded_frames(probe: &serde_json::Value) -> u64 {
    video(probe)["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("nb_read_frames")
}

/// The start timecode, wherever the container keeps it.
pub fn timecode(probe: &serde_json::Value) -> String {
    probe["format"]["tags"]["timecode"]
        .as_str()
        .or_else(|| video(probe)["tags"]["timecode"].as_str())
        .unwrap_or("none")
        .to_string()
}

/// A string field of the video stream.
pub fn field<'a>(probe: &'a serde_json::Value, key: &str) -> &'a str {
    video(probe)[key].as_str().unwrap_or("")
}

/// A numeric field of the video stream.
pub fn number(probe: &serde_json::Value, key: &str) -> u64 {
    video(probe)[key].as_u64().unwrap_or(0)
}

/// Renames frames `name.0000.tif…` to start at `first` (which may be negative), printf-padded.
pub fn renumber(frames: &[PathBuf], name: &str, first: i64) -> Vec<PathBuf> {
    frames
        .iter()
        .zip(first..)
        .map(|(frame, n)| {
            let to = frame.with_file_name(format!("{name}.{n:04}.tif"));
            std::fs::rename(frame, &to).expect("renumber");
            to
        })
        .collect()
}
