//! Quoting for display: argv shown to a person (logs, `explain`, `job`) in a form a POSIX shell
//! would read back as the same bytes, and values in the text log quoted so that one event is one
//! line and no value can pass for another field. Never used to build a command.

use std::borrow::Cow;
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

/// Characters a log value may hold without quotes: nothing a reader could take for a space, a
/// quote, an `=` or a line end.
fn log_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:@+,".contains(c)
}

/// Characters that must never reach a log line raw: controls (newline, ESC, C1), and Unicode
/// line separators and bidirectional overrides, which reorder or break lines on a terminal.
fn log_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c` to a double-quoted log value, escaped when it must be.
fn push_log_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x80 && log_escaped(c) => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if log_escaped(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A value for the text log: bare when it is a plain token (letters, digits, `-_./:@+,`),
/// otherwise in double quotes with `"`, `\`, newlines, tabs, ESC (`\e`), other control
/// characters (`\xNN`, `\u{NNNN}`) escaped. So a file name holding a newline or
/// ` status=ok` stays inside its own value, on its own line.
pub fn log_value(text: &str) -> Cow<'_, str> {
    if !text.is_empty() && text.chars().all(log_plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        push_log_char(&mut out, c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// [`log_value`] for bytes: valid UTF-8 runs as text, every other byte as `\xNN`.
pub fn log_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return log_value(text);
    }
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_log_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// An event's message for the text log: as written when it holds no `=`, no `"` and nothing
/// [`log_value`] escapes, so a reader can take everything before the first `key=` as the
/// message; otherwise quoted like a value.
pub fn log_message(text: &str) -> Cow<'_, str> {
    if text.chars().any(|c| c == '=' || c == '"' || log_escaped(c)) {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            push_log_char(&mut out, c);
        }
        out.push('"');
        return Cow::Owned(out);
    }
    Cow::Borrowed(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_stay_bare() {
        for text in [
            "ok",
            "42",
            "-1.5",
            "shots/sh010/a_v001.1001.exr",
            "user@host:/x",
            "a+b,c",
        ] {
            assert_eq!(log_value(text), text);
        }
    }

    #[test]
    fn anything_else_is_quoted_and_escaped() {
        assert_eq!(log_value(""), "\"\"");
        assert_eq!(log_value("a b"), "\"a b\"");
        assert_eq!(
            log_value("x status=ok job=1\nend"),
            "\"x status=ok job=1\\nend\""
        );
        assert_eq!(log_value("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
        assert_eq!(
            log_value("\x1b[31mred\t\r\x07"),
            "\"\\e[31mred\\t\\r\\x07\""
        );
        assert_eq!(
            log_value("a\u{85}b\u{2028}c\u{202e}d"),
            "\"a\\u{85}b\\u{2028}c\\u{202e}d\""
        );
        assert_eq!(log_value("café"), "\"café\"");
    }

    #[test]
    fn bytes_escape_what_is_not_utf8() {
        assert_eq!(log_bytes(b"ok"), "ok");
        assert_eq!(log_bytes(b"a\xffb\n"), "\"a\\xffb\\n\"");
    }

    #[test]
    fn messages_stay_readable_unless_they_could_pass_for_fields() {
        assert_eq!(
            log_message("idle: every job so far has finished"),
            "idle: every job so far has finished"
        );
        assert_eq!(log_message("cannot run `x`"), "cannot run `x`");
        assert_eq!(log_message("failed\nerror: x"), "\"failed\\nerror: x\"");
        assert_eq!(log_message("a status=ok"), "\"a status=ok\"");
    }
}
