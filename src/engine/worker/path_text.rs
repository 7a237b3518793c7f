//! Paths in a plan's JSON text: lossless for any bytes, so a watcher's non-UTF-8 file names
//! reach a worker unchanged.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A path as JSON text without loss: `%` and bytes that are not UTF-8 as `%XX`.
pub(crate) fn escape(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(&text.replace('%', "%25"));
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(
                    &std::str::from_utf8(good)
                        .unwrap_or_default()
                        .replace('%', "%25"),
                );
                let n = e.error_len().unwrap_or(bad.len());
                for byte in &bad[..n] {
                    out.push_str(&format!("%{byte:02X}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

/// A path from its [`escape`]d text.
pub(crate) fn unescape(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}
