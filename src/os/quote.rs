//! Quoting for display: argv shown to a person (logs, `explain`, `job`) in a form a POSIX shell
//! would read back as the same bytes. Never used to build a command.

use std::fmt::Write as _;

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Quotes bytes for a POSIX shell, for display only: plain words stay bare, others are
/// single-quoted, and bytes that are not printable UTF-8 use bash's `$'\xNN'` form.
pub fn shell_quote(bytes: &[u8]) -> String {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(b);
    if !bytes.is_empty() && bytes.iter().all(plain) {
        return lossy(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => {
            format!("'{}'", text.replace('\'', r"'\''"))
        }
        _ => {
            let mut out = String::from("$'");
            for &b in bytes {
                match b {
                    b'\'' | b'\\' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    b'\n' => out.push_str("\\n"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(b as char),
                    _ => {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
            }
            out.push('\'');
            out
        }
    }
}
