//! How every backend stores what SQL has no type for: paths as raw bytes (so non-UTF-8 names
//! survive), argv lists as length-prefixed bytes, versions without the device, process groups
//! as three nullable columns, and rooted paths shown to people.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::os::version::FileVersion;
use crate::store::RawArgv;

pub(crate) fn blob(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

pub(crate) fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// argv lists as bytes: each argument as `<len>:<bytes>`, steps separated by `\n`.
pub(crate) fn encode_steps(steps: &[Vec<std::ffi::OsString>]) -> Vec<u8> {
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

pub(crate) fn decode_steps(bytes: &[u8]) -> Vec<RawArgv> {
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

/// A version as stored: `(ino, size, mtime_ns)`; the device number is left out on purpose,
/// since it differs between the machines that share a tree.
pub(crate) fn stored(v: FileVersion) -> (i64, i64, i64) {
    (v.ino as i64, v.size as i64, v.mtime_ns as i64)
}

/// A version [`stored`] in three nullable columns `[ino, size, mtime_ns]`; `None` unless all
/// three are set.
pub(crate) fn loaded([ino, size, mtime]: [Option<i64>; 3]) -> Option<FileVersion> {
    Some(FileVersion {
        dev: 0,
        ino: ino? as u64,
        size: size? as u64,
        mtime_ns: mtime? as i128,
    })
}

/// A rooted path for people: absolute on this node when its root is registered, else
/// `root:rel`; lossy UTF-8.
pub(crate) fn display_path(root: &str, rel: &[u8], root_path: Option<&[u8]>) -> String {
    match (root, root_path) {
        ("", _) => lossy(rel),
        (_, Some(base)) if rel.is_empty() => lossy(base),
        (_, Some(base)) => lossy(
            Path::new(OsStr::from_bytes(base))
                .join(OsStr::from_bytes(rel))
                .as_os_str()
                .as_bytes(),
        ),
        (root, None) => format!("{root}:{}", lossy(rel)),
    }
}
