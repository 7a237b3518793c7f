//! What a run used, gathered by the executor that runs it: the version of each declared input
//! when the attempt starts, and each program its steps run with its version (asked once per
//! binary and cached: a night of ffmpeg jobs asks ffmpeg once).
//!
//! Only programs known to answer `--version` (or `-version`) and do nothing else are asked: a
//! studio's wrapper script may ignore its arguments and do its real work, so every other
//! program is identified by a hash of its contents instead, read once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::exec::plan::JobPlan;
use crate::os::version::FileVersion;
use crate::store::lineage::{RunUse, UsedInput, UsedProgram};

/// Longest a program may take to tell its version before it is killed and recorded without one.
const VERSION_TIMEOUT: Duration = Duration::from_secs(3);

/// Programs that print their version for `--version` or `-version` and exit: the converters and
/// tools this field runs. Any other program is never started to ask.
const ASKABLE: &[&str] = &[
    "ffmpeg",
    "ffprobe",
    "oiiotool",
    "iinfo",
    "maketx",
    "exrheader",
    "exrmaketiled",
    "mediainfo",
    "cp",
    "mv",
    "rsync",
    "install",
    "ln",
    "cat",
    "tar",
    "gzip",
    "zstd",
    "xz",
    "sox",
    "convert",
    "magick",
    "identify",
    "shotrouter",
    "python3",
    "python",
    "node",
    "perl",
    "bash",
    "sh",
    "dash",
    "true",
    "false",
    "ocioconvert",
    "ociocheck",
    "dcraw",
    "exiftool",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "xxhsum",
    "b3sum",
    "ascmhl",
];

/// Largest program hashed to identify it (bigger ones are named by size and mtime).
const HASH_LIMIT: u64 = 64 << 20;

/// What an attempt used, in the executor's terms: the version of each of its plan's `inputs`
/// (in order; `None` for one gone by then) and its steps' programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// The version of each `JobPlan::inputs` entry, found when the attempt started.
    pub inputs: Vec<Option<FileVersion>>,
    /// Each distinct program its steps run.
    pub programs: Vec<UsedProgram>,
}

impl RunFacts {
    /// Looks at the plan's inputs and programs (the paths as this node reaches them).
    pub fn gather(plan: &JobPlan) -> RunFacts {
        let inputs = plan.inputs.iter().map(|p| FileVersion::of(p)).collect();
        let mut programs: Vec<UsedProgram> = Vec::new();
        for step in &plan.steps {
            let Some(program) = step.first() else {
                continue;
            };
            let used = identify(program);
            if !programs.contains(&used) {
                programs.push(used);
            }
        }
        RunFacts { inputs, programs }
    }

    /// What the store records of the run: each input found, named by its `planned` path (the
    /// watcher's, which the store roots; a worker looked at its own mount of it).
    pub fn to_use(&self, planned: &[PathBuf], work_hash: &str) -> RunUse {
        RunUse {
            inputs: planned
                .iter()
                .zip(&self.inputs)
                .filter_map(|(path, version)| {
                    Some(UsedInput {
                        path: path.clone(),
                        version: (*version)?,
                        hash: None,
                    })
                })
                .collect(),
            programs: self.programs.clone(),
            work_hash: work_hash.to_string(),
        }
    }
}

/// A program's resolved path and reported version, from the cache when this binary (by path,
/// size and mtime) was asked before.
pub fn identify(program: &OsString) -> UsedProgram {
    type Key = (PathBuf, Option<FileVersion>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Option<String>>>> = OnceLock::new();
    let resolved = PathBuf::from(crate::os::program::resolve_program(program));
    let path = crate::os::path_text::escape(&resolved);
    let key = (resolved.clone(), FileVersion::of(&resolved));
    if key.1.is_none() {
        return UsedProgram {
            path,
            version: None,
        };
    }
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(version) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return UsedProgram {
            path,
            version: version.clone(),
        };
    }
    let askable = resolved
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| ASKABLE.contains(&n));
    let version = if askable {
        ask_version(&resolved, "--version").or_else(|| ask_version(&resolved, "-version"))
    } else {
        fingerprint(&resolved)
    };
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, version.clone());
    UsedProgram { path, version }
}

/// A program nobody may ask: `xxh3:` and the hash of its contents (up to [`HASH_LIMIT`]), else
/// its size and mtime.
fn fingerprint(program: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(program).ok()?;
    if meta.len() > HASH_LIMIT {
        let version = FileVersion::from_metadata(&meta)?;
        return Some(format!(
            "size {} mtime_ns {}",
            version.size, version.mtime_ns
        ));
    }
    let bytes = std::fs::read(program).ok()?;
    Some(format!("xxh3:{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)))
}

/// The first line `program FLAG` prints on stdout when it exits 0 within [`VERSION_TIMEOUT`].
fn ask_version(program: &std::path::Path, flag: &str) -> Option<String> {
    let mut command = Command::new(program);
    command
        .arg(flag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for name in crate::os::program::PRIVATE_ENV {
        command.env_remove(name);
    }
    let mut child = command.spawn().ok()?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut text = String::new();
    child
        .stdout
        .take()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    (status.success() && !line.is_empty()).then(|| line.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_on_path_is_resolved_and_tells_its_version_once() {
        let used = identify(&OsString::from("cp"));
        assert!(used.path.ends_with("/cp"), "{used:?}");
        let version = used.version.expect("cp --version answers");
        assert!(version.contains("coreutils"), "{version}");
        let started = Instant::now();
        assert_eq!(identify(&OsString::from("cp")).version, Some(version));
        assert!(started.elapsed() < Duration::from_millis(50), "asked again");
    }

    #[test]
    fn a_program_not_known_to_answer_is_hashed_never_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let script = dir.path().join("publish.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\necho 1.0\n", marker.display()),
        )
        .expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let used = identify(&script.clone().into_os_string());
        assert!(!marker.exists(), "the script was started");
        let version = used.version.expect("a fingerprint");
        assert!(version.starts_with("xxh3:"), "{version}");
    }

    #[test]
    fn a_missing_program_is_recorded_by_name_without_a_version() {
        let used = identify(&OsString::from("no-such-program-shotrouter"));
        assert_eq!(used.path, "no-such-program-shotrouter");
        assert_eq!(used.version, None);
    }

    #[test]
    fn inputs_are_looked_at_in_plan_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let present = dir.path().join("grade.cube");
        std::fs::write(&present, "LUT").expect("write");
        let plan = JobPlan {
            inputs: vec![present.clone(), dir.path().join("missing.cube")],
            steps: vec![vec!["cp".into()], vec!["cp".into()]],
            ..JobPlan::default()
        };
        let facts = RunFacts::gather(&plan);
        assert_eq!(facts.inputs, vec![FileVersion::of(&present), None]);
        assert_eq!(facts.programs.len(), 1, "one program, named once");
    }
}
