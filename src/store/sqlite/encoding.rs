//! How the SQLite backend stores what SQL has no type for: paths as raw bytes (so non-UTF-8
//! names survive), argv lists as length-prefixed bytes, and how it waits for a busy lock.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::RawArgv;

/// `application_id` of a shotrouter state file ("SROU").
pub(super) const APPLICATION_ID: i32 = 0x5352_4F55;
/// The database file inside the state folder.
pub const DB_FILE: &str = "shotrouter.db";

pub(super) fn blob(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

pub(super) fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// argv lists as bytes: each argument as `<len>:<bytes>`, steps separated by `\n`.
pub(super) fn encode_steps(steps: &[Vec<std::ffi::OsString>]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        for arg in step {
            out.extend_from_slice(arg.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

pub(super) fn decode_steps(bytes: &[u8]) -> Vec<RawArgv> {
    let mut steps = Vec::new();
    let mut step = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\n' {
            steps.push(std::mem::take(&mut step));
            at += 1;
            continue;
        }
        let Some(colon) = bytes[at..].iter().position(|&b| b == b':').map(|p| at + p) else {
            break;
        };
        let Some(len) = std::str::from_utf8(&bytes[at..colon])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        let end = (colon + 1 + len).min(bytes.len());
        step.push(bytes[colon + 1..end].to_vec());
        at = end;
    }
    steps
}

/// Waits for a lock held by another connection: 50 µs at a time, for up to 30 s. Our writes hold
/// the lock for tens of microseconds; SQLite's default handler sleeps 1 to 100 ms per retry,
/// which under the daemon's steady trickle of writes costs far more than the writes themselves.
pub(super) fn retry_soon(attempts: i32) -> bool {
    const PAUSE: Duration = Duration::from_micros(50);
    if attempts >= 600_000 {
        return false;
    }
    std::thread::sleep(PAUSE);
    true
}

/// Tags as stored: sorted, each between commas (`,gpu,linux,`), so "holds tag t" is a
/// substring test on `,t,`; empty for none.
pub(super) fn encode_tags(tags: &[String]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<&str> = tags.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    format!(",{},", sorted.join(","))
}

pub(super) fn decode_tags(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
