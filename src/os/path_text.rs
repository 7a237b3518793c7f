//! Paths in a plan's JSON text: lossless for any bytes, so a watcher's non-UTF-8 file names
//! reach a worker unchanged.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A path as JSON text without loss: `%` and bytes that are not UTF-8 as `%XX`.
pub fn escape(path: &Path) -> String {
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
pub fn unescape(text: &str) -> PathBuf {
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

/// `#[serde(with = "crate::os::path_text::path")]`: a path as its [`escape`]d text.
pub mod path {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the escaped text.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::escape(path))
    }

    /// Reads the escaped text.
    ///
    /// # Errors
    /// Not a string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(super::unescape(&String::deserialize(d)?))
    }
}

/// `#[serde(with = "crate::os::path_text::opt_path")]`: an optional path as escaped text.
pub mod opt_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the escaped text, or null.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => s.serialize_some(&super::escape(path)),
            None => s.serialize_none(),
        }
    }

    /// Reads the escaped text, or null.
    ///
    /// # Errors
    /// Not a string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|t| super::unescape(&t)))
    }
}

/// `#[serde(with = "crate::os::path_text::pairs")]`: pairs of paths (a view's links).
pub mod pairs {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes each pair as two escaped texts.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(pairs: &[(PathBuf, PathBuf)], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (super::escape(a), super::escape(b)))
            .collect();
        text.serialize(s)
    }

    /// Reads pairs of escaped texts.
    ///
    /// # Errors
    /// Not a list of string pairs.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(PathBuf, PathBuf)>, D::Error> {
        Ok(Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(a, b)| (super::unescape(&a), super::unescape(&b)))
            .collect())
    }
}

/// `#[serde(with = "crate::os::path_text::argvs")]`: each step's argv, every argument as
/// escaped text (arguments are bytes, like paths).
pub mod argvs {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes each argument's escaped text.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(steps: &[Vec<OsString>], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<Vec<String>> = steps
            .iter()
            .map(|argv| argv.iter().map(|a| super::escape(Path::new(a))).collect())
            .collect();
        text.serialize(s)
    }

    /// Reads each argument's escaped text.
    ///
    /// # Errors
    /// Not a list of string lists.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<OsString>>, D::Error> {
        Ok(Vec::<Vec<String>>::deserialize(d)?
            .into_iter()
            .map(|argv| {
                argv.iter()
                    .map(|a| PathBuf::into_os_string(super::unescape(a)))
                    .collect()
            })
            .collect())
    }
}

/// `#[serde(with = "crate::os::path_text::list")]`: paths as escaped texts.
pub mod list {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes each path's escaped text.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = paths.iter().map(|p| super::escape(p)).collect();
        text.serialize(s)
    }

    /// Reads escaped texts.
    ///
    /// # Errors
    /// Not a list of strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| super::unescape(t))
            .collect())
    }
}

/// `#[serde(with = "crate::os::path_text::named")]`: (name, path) pairs, the path escaped.
pub mod named {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes each pair with the path's escaped text.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(named: &[(String, PathBuf)], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<(&str, String)> = named
            .iter()
            .map(|(n, p)| (n.as_str(), super::escape(p)))
            .collect();
        text.serialize(s)
    }

    /// Reads (name, escaped text) pairs.
    ///
    /// # Errors
    /// Not a list of string pairs.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, PathBuf)>, D::Error> {
        Ok(Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(n, t)| (n, super::unescape(&t)))
            .collect())
    }
}
