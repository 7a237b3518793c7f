//! ffmpeg's `-progress` output, for rules that say `progress: ffmpeg`: the runner adds
//! `-progress file:PATH -nostats` right after `ffmpeg` (the rest of the argv is untouched), a
//! small thread reads the key=value blocks ffmpeg appends there (about twice a second), and
//! each block's frame count and speed go to a sink (the engine's telemetry). The job never
//! waits for the reader: it only reads a file ffmpeg writes.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};

/// How often the reader looks for new blocks; ffmpeg writes one every 0.5 s by default.
const READ_EVERY: Duration = Duration::from_millis(200);

/// How far one ffmpeg step got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepProgress {
    /// Frames written so far.
    pub frame: u64,
    /// Frames the step will write, when known.
    pub total_frames: Option<u64>,
    /// Encoding speed, frames per second × 1000.
    pub fps_milli: u32,
    /// ffmpeg said `progress=end`.
    pub ended: bool,
}

/// Where a job's progress goes (the worker forwards it to the engine).
pub type ProgressSink = Box<dyn Fn(StepProgress) + Send>;

/// Whether `program` is ffmpeg (by its file name: `ffmpeg`, `/usr/bin/ffmpeg`).
pub fn is_ffmpeg(program: &OsStr) -> bool {
    Path::new(program).file_name() == Some(OsStr::new("ffmpeg"))
}

/// `argv` with `-progress file:PATH -nostats` after the program. `file:` keeps a path with a
/// colon from being read as a protocol.
pub fn with_progress_args(argv: &[OsString], path: &Path) -> Vec<OsString> {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    let mut out = Vec::with_capacity(argv.len() + 3);
    out.extend(argv.first().cloned());
    out.extend([OsString::from("-progress"), url, OsString::from("-nostats")]);
    out.extend(argv.iter().skip(1).cloned());
    out
}

/// Reads ffmpeg's key=value lines; a block ends at its `progress=` line.
#[derive(Debug, Default)]
pub struct Parser {
    partial: Vec<u8>,
    current: StepProgress,
}

impl Parser {
    /// Feeds bytes; returns the last complete block in them, if any.
    pub fn feed(&mut self, bytes: &[u8], total: Option<u64>) -> Option<StepProgress> {
        self.partial.extend_from_slice(bytes);
        let mut last = None;
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "frame" => self.current.frame = value.parse().unwrap_or(self.current.frame),
                "fps" => {
                    self.current.fps_milli = value
                        .parse::<f64>()
                        .map_or(0, |fps| (fps * 1000.0).clamp(0.0, u32::MAX as f64) as u32);
                }
                "progress" => {
                    self.current.ended = value == "end";
                    self.current.total_frames = total;
                    last = Some(self.current);
                }
                _ => {}
            }
        }
        last
    }
}

/// A reader thread over one step's progress file; [`Tail::finish`] reads what is left,
/// stops it and removes the file.
pub struct Tail {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Tail {
    /// Starts reading `path` (created empty now, so a stale file of an earlier attempt is
    /// never read) and sends each new block to `sink`.
    pub fn start(path: PathBuf, total: Option<u64>, sink: ProgressSink) -> Tail {
        let _ = std::fs::File::create(&path);
        let (stop, stopped) = bounded::<()>(1);
        let reading = path.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut parser = Parser::default();
                let mut offset = 0;
                loop {
                    let last = stopped.recv_timeout(READ_EVERY).is_ok();
                    if let Some(progress) = read_new(&reading, &mut offset, &mut parser, total) {
                        sink(progress);
                    }
                    if last {
                        return;
                    }
                }
            })
            .map_err(|e| tracing::debug!(error = %e, "cannot start a progress reader"))
            .ok();
        Tail { stop, thread, path }
    }

    /// Reads the last blocks, stops the thread and removes the file.
    pub fn finish(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The last block among the bytes appended to `path` since `offset`.
fn read_new(
    path: &Path,
    offset: &mut u64,
    parser: &mut Parser,
    total: Option<u64>,
) -> Option<StepProgress> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(*offset)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    *offset += bytes.len() as u64;
    parser.feed(&bytes, total)
}

/// The progress file of a job's log: beside it, named after it.
pub fn path_for(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_arguments_go_right_after_ffmpeg_and_leave_the_rest_alone() {
        let argv: Vec<OsString> = ["/usr/bin/ffmpeg", "-i", "a b;$(x).mov", "-y", "out.mov"]
            .iter()
            .map(OsString::from)
            .collect();
        let got = with_progress_args(&argv, Path::new("/s/logs/r:1/7.log.progress"));
        let want: Vec<OsString> = [
            "/usr/bin/ffmpeg",
            "-progress",
            "file:/s/logs/r:1/7.log.progress",
            "-nostats",
            "-i",
            "a b;$(x).mov",
            "-y",
            "out.mov",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(got, want);
        assert!(is_ffmpeg(OsStr::new("/usr/bin/ffmpeg")));
        assert!(is_ffmpeg(OsStr::new("ffmpeg")));
        assert!(!is_ffmpeg(OsStr::new("ffprobe")));
        assert!(!is_ffmpeg(OsStr::new("/opt/ffmpeg/bin/wrapper")));
    }

    #[test]
    fn blocks_are_read_across_partial_writes_and_the_end_is_seen() {
        let mut parser = Parser::default();
        let total = Some(48);
        assert_eq!(parser.feed(b"frame=12\nfps=24.5", total), None);
        let block = parser.feed(b"0\nout_time_ms=500000\nprogress=continue\nframe=2", total);
        assert_eq!(
            block,
            Some(StepProgress {
                frame: 12,
                total_frames: Some(48),
                fps_milli: 24_500,
                ended: false,
            })
        );
        let block = parser.feed(
            b"4\nfps=n/a\nprogress=continue\nframe=48\nprogress=end\n",
            total,
        );
        assert_eq!(
            block,
            Some(StepProgress {
                frame: 48,
                total_frames: Some(48),
                fps_milli: 0,
                ended: true,
            })
        );
    }
}
