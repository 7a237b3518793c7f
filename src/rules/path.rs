//! Lexical path arithmetic: watch roots and outputs are resolved against the rules file's folder
//! without touching the file system, so a rules file checks the same on any machine.

use std::path::{Component, Path, PathBuf};

/// Makes a path absolute without touching the file system (no symlink resolution), removing `.`
/// and resolving `..` lexically.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    normalize(&joined)
}

/// Removes `.` and resolves `..` lexically; `..` never climbs above `/`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
