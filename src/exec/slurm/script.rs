//! The batch script of one array submission, and the end record each of its tasks leaves.
//!
//! Each task's argv is written into the script with bash's ANSI-C quoting (`$'...'`, every
//! byte that is not plain printable ASCII as `\xHH`), so the script is pure ASCII and a file
//! named `a b'$(touch x)"; y` or holding a newline or bytes that are not UTF-8 reaches the
//! converter on the farm node as exactly one argv element; no shell ever reads it as code.
//! The task picks its job by `$SLURM_ARRAY_TASK_ID`; the farm node needs bash, the converter
//! and the shared storage, nothing of shotrouter's.
//!
//! The end record (`<spool>/ends/<array>_<task>.end`) is written to a temp name and renamed, so
//! it is read whole or not at all: which step ended the task and how. Slurm's own accounting
//! (`sacct`) is not needed.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One task of an array: its job and the argv of each step.
pub struct Task<'a> {
    /// The job's id (`SHOTROUTER_JOB` in the task's environment).
    pub job: &'a str,
    /// Each step's argv, as planned.
    pub steps: &'a [Vec<OsString>],
}

/// `bytes` as one bash word: `$'...'` with `\xHH` for every byte that needs it.
pub fn ansi_c(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push_str("$'");
    for &b in bytes {
        match b {
            b'\'' | b'\\' => {
                let _ = write!(out, "\\x{b:02x}");
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('\'');
    out
}

/// The script of an array whose task `i` runs `tasks[i]`; end records go under `spool`.
pub fn batch_script(rule: &str, spool: &Path, tasks: &[Task<'_>]) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# shotrouter: {} task(s) of rule {}; each runs its job's argv exactly, no shell reads a file name",
        tasks.len(),
        ansi_c(rule.as_bytes())
    );
    let _ = writeln!(s, "ends={}/ends", ansi_c(spool.as_os_str().as_bytes()));
    s.push_str(concat!(
        "id=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n",
        "end() {\n",
        "  tmp=\"$ends/.$id.end.$$\"\n",
        "  printf 'shotrouter-end 1\\njob %s\\nstep %s\\nstatus %s\\nnode %s\\n' \"$SHOTROUTER_JOB\" \"$1\" \"$2\" \"$(hostname)\" > \"$tmp\" &&\n",
        "    mv -f \"$tmp\" \"$ends/$id.end\"\n",
        "}\n",
        "step() {\n",
        "  n=$1; shift\n",
        "  if ! type -P -- \"$1\" > /dev/null; then\n",
        "    printf '== step %s: cannot run %q: not found on %s\\n' \"$n\" \"$1\" \"$(hostname)\" >&2\n",
        "    end \"$n\" missing; exit 127\n",
        "  fi\n",
        "  printf '== step %s on %s\\n' \"$n\" \"$(hostname)\"\n",
        "  ( exec -- \"$@\" ) < /dev/null\n",
        "  rc=$?\n",
        "  if [ \"$rc\" -ne 0 ]; then end \"$n\" \"$rc\"; exit \"$rc\"; fi\n",
        "}\n",
        "case \"$SLURM_ARRAY_TASK_ID\" in\n",
    ));
    for (index, task) in tasks.iter().enumerate() {
        let _ = writeln!(
            s,
            "{index}) export SHOTROUTER_JOB={}",
            ansi_c(task.job.as_bytes())
        );
        for (n, argv) in task.steps.iter().enumerate() {
            let _ = write!(s, "  step {}", n + 1);
            for arg in argv {
                s.push(' ');
                s.push_str(&ansi_c(arg.as_bytes()));
            }
            s.push('\n');
        }
        s.push_str("  ;;\n");
    }
    s.push_str(concat!(
        "*) echo \"no task $SLURM_ARRAY_TASK_ID in this array\" >&2; SHOTROUTER_JOB=; end 0 2; exit 2 ;;\n",
        "esac\n",
        "end 0 0\n",
    ));
    s
}

/// Where task `array_task` (`123_4`) leaves its end record.
pub fn end_path(spool: &Path, array_task: &str) -> PathBuf {
    spool.join("ends").join(format!("{array_task}.end"))
}

/// Where its output goes (`sbatch --output`, `%A_%a` filled by Slurm).
pub fn log_path(spool: &Path, array_task: &str) -> PathBuf {
    spool.join("logs").join(format!("{array_task}.log"))
}

/// How a task ended, by its end record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRecord {
    /// The job it ran.
    pub job: String,
    /// The step that ended it (0: every step exited 0).
    pub step: usize,
    /// That step's exit status.
    pub status: EndStatus,
    /// The farm node's host name.
    pub node: String,
}

/// A step's end as the task saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStatus {
    /// Its exit status (bash's: 128+N for a signal N).
    Exit(i32),
    /// Its program was not found on the farm node.
    Missing,
}

impl EndRecord {
    /// Reads an end record; `None` when it is not one (a torn or foreign file).
    pub fn parse(text: &str) -> Option<EndRecord> {
        let mut lines = text.lines();
        if lines.next()? != "shotrouter-end 1" {
            return None;
        }
        let (mut job, mut step, mut status, mut node) = (None, None, None, None);
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "job" => job = Some(value.to_string()),
                "step" => step = value.parse().ok(),
                "status" => {
                    status = match value {
                        "missing" => Some(EndStatus::Missing),
                        n => n.parse().ok().map(EndStatus::Exit),
                    }
                }
                "node" => node = Some(value.to_string()),
                _ => {}
            }
        }
        Some(EndRecord {
            job: job?,
            step: step?,
            status: status?,
            node: node.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn hostile_bytes_become_one_ascii_word() {
        let name = b"a b'$(touch x)\"; y\n\xff.dat";
        let word = ansi_c(name);
        assert!(word.is_ascii());
        assert_eq!(word, "$'a b\\x27$(touch x)\"; y\\x0a\\xff.dat'");
    }

    #[test]
    fn the_script_runs_each_tasks_argv_exactly() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = dir.path().join("spool dir");
        std::fs::create_dir_all(spool.join("ends")).expect("ends");
        let out = dir.path().join("argv");
        let hostile = OsString::from_vec(b"a b'$(touch x)\"; y\n\xff.dat".to_vec());
        let steps = vec![vec![
            OsString::from("sh"),
            OsString::from("-c"),
            OsString::from("printf '%s\\0' \"$@\" > \"$0.$SHOTROUTER_JOB\""),
            out.clone().into_os_string(),
            hostile.clone(),
            OsString::from("$(id)"),
        ]];
        let tasks = [
            Task {
                job: "7",
                steps: &steps,
            },
            Task {
                job: "8",
                steps: &[vec![OsString::from("false")]],
            },
        ];
        let script = dir.path().join("s.sh");
        std::fs::write(&script, batch_script("r", &spool, &tasks)).expect("script");
        let run = |index: &str| {
            std::process::Command::new("bash")
                .arg(&script)
                .env("SLURM_ARRAY_JOB_ID", "41")
                .env("SLURM_ARRAY_TASK_ID", index)
                .current_dir(dir.path())
                .output()
                .expect("bash")
        };
        assert!(run("0").status.success());
        let written = std::fs::read(out.with_extension("7")).expect("argv file");
        let mut expected = hostile.into_vec();
        expected.push(0);
        expected.extend_from_slice(b"$(id)\0");
        assert_eq!(written, expected);
        assert!(
            !dir.path().join("x").exists(),
            "no shell read the file name"
        );
        let end = std::fs::read_to_string(end_path(&spool, "41_0")).expect("end record");
        let record = EndRecord::parse(&end).expect("parses");
        assert_eq!(
            (record.job.as_str(), record.step, record.status),
            ("7", 0, EndStatus::Exit(0))
        );

        assert_eq!(run("1").status.code(), Some(1));
        let end = std::fs::read_to_string(end_path(&spool, "41_1")).expect("end record");
        let record = EndRecord::parse(&end).expect("parses");
        assert_eq!(
            (record.job.as_str(), record.step, record.status),
            ("8", 1, EndStatus::Exit(1))
        );
    }

    #[test]
    fn a_missing_program_is_recorded_as_missing() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("ends")).expect("ends");
        let steps = vec![vec![OsString::from("no-such-converter-here")]];
        let script = batch_script(
            "r",
            dir.path(),
            &[Task {
                job: "1",
                steps: &steps,
            }],
        );
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("SLURM_ARRAY_JOB_ID", "5")
            .env("SLURM_ARRAY_TASK_ID", "0")
            .output()
            .expect("bash");
        assert_eq!(status.status.code(), Some(127));
        let end = std::fs::read_to_string(end_path(dir.path(), "5_0")).expect("end");
        assert_eq!(
            EndRecord::parse(&end).expect("parses").status,
            EndStatus::Missing
        );
    }

    #[test]
    fn a_program_named_like_the_scripts_own_words_is_looked_for_on_path() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("ends")).expect("ends");
        for program in ["end", "step", "if"] {
            let steps = vec![vec![OsString::from(program)]];
            let script = batch_script(
                "r",
                dir.path(),
                &[Task {
                    job: "1",
                    steps: &steps,
                }],
            );
            let status = std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .env("SLURM_ARRAY_JOB_ID", "6")
                .env("SLURM_ARRAY_TASK_ID", "0")
                .env("PATH", "/usr/bin:/bin")
                .output()
                .expect("bash");
            assert_eq!(status.status.code(), Some(127), "{program}");
            let end = std::fs::read_to_string(end_path(dir.path(), "6_0")).expect("end");
            assert_eq!(
                EndRecord::parse(&end).expect("parses").status,
                EndStatus::Missing,
                "{program}"
            );
        }
    }

    #[test]
    fn a_torn_record_is_no_record() {
        assert_eq!(EndRecord::parse("shotrouter-end 1\njob 3\n"), None);
        assert_eq!(EndRecord::parse("hello"), None);
    }
}
