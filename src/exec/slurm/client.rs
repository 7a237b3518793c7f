//! Slurm's standard client tools, as a farm's own tools use them: `sbatch` (the script on
//! stdin), `squeue` and `scancel`, with the environment the daemon was given (`SLURM_CONF`).
//!
//! `squeue` is asked in its text format, one line per task (`-r`), every state (`--states=all`:
//! a finished task stays listed for `MinJobAge`, 5 minutes by default), only the arrays in
//! flight (`--jobs`). Its `--json` answer in Slurm 22.05 ignores `--jobs` and `--user` and
//! dumps the whole farm's queue, too much to ask for every two seconds.
//!
//! A controller that does not answer is [`ClientError::Unreachable`]: the executor waits for it
//! and never reads it as "the tasks are gone".

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

/// Why a Slurm command did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The tool is not installed here.
    #[error("`{program}` cannot be run: {reason}")]
    Missing {
        /// `sbatch`, `squeue` or `scancel`.
        program: &'static str,
        /// The OS's reason.
        reason: String,
    },
    /// The controller did not take the request for now (down, restarting, busy, a limit
    /// reached): asked again later.
    #[error("Slurm did not take `{program}` for now: {message}")]
    Unreachable {
        /// The tool.
        program: &'static str,
        /// What it printed.
        message: String,
    },
    /// The controller refused the request (an unknown partition, a limit).
    #[error("`{program}` refused: {message}")]
    Refused {
        /// The tool.
        program: &'static str,
        /// What it printed.
        message: String,
    },
}

/// Slurm's client tools with the environment they run in: the daemon's own (`SLURM_CONF`
/// and `PATH` as the service was given them), plus any variables set here (a test's cluster).
#[derive(Debug, Clone, Default)]
pub struct Client {
    env: Vec<(OsString, OsString)>,
}

impl Client {
    /// The tools with `SLURM_CONF` pointing at `conf`.
    pub fn with_conf(conf: &std::path::Path) -> Client {
        Client {
            env: vec![("SLURM_CONF".into(), conf.as_os_str().to_owned())],
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `program` with `args` (no input) to its end; only a failure to start it is an
    /// error here.
    fn output<I, A>(
        &self,
        program: &'static str,
        args: I,
    ) -> Result<std::process::Output, ClientError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<std::ffi::OsStr>,
    {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| missing(program, &e))
    }
}

/// One line of `squeue`: a task (or a plain job) and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The array's job id (a plain job's own id).
    pub array: u64,
    /// The task's index; `None` for a plain job.
    pub task: Option<u32>,
    /// Slurm's state, e.g. `PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`.
    pub state: String,
    /// Why it waits or ended (`Priority`, `Resources`, `None`).
    pub reason: String,
    /// The node(s) it runs on.
    pub nodes: String,
}

impl Client {
    /// Submits `script` as an array of `tasks` tasks; answers the array's job id.
    ///
    /// # Errors
    /// The controller is unreachable, or refused the submission.
    pub fn submit(
        &self,
        script: &str,
        tasks: usize,
        args: &[OsString],
    ) -> Result<u64, ClientError> {
        // The request's own options first: shotrouter's come last, and the last one wins.
        let mut child = self
            .command("sbatch")
            .args(args)
            .arg("--parsable")
            .arg(format!("--array=0-{}", tasks.saturating_sub(1)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| missing("sbatch", &e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A refused submission may close stdin early; its answer says why.
            let _ = stdin.write_all(script.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|e| missing("sbatch", &e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success() {
            let id = stdout.trim().split(';').next().unwrap_or_default();
            return id.parse().map_err(|_| ClientError::Refused {
                program: "sbatch",
                message: format!("answered `{}`, not a job id", stdout.trim()),
            });
        }
        Err(classify("sbatch", &output.stderr))
    }

    /// Where each task of `arrays` stands. An id Slurm no longer knows is simply not listed.
    ///
    /// # Errors
    /// The controller is unreachable.
    pub fn query(&self, arrays: &[u64]) -> Result<Vec<Row>, ClientError> {
        if arrays.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = arrays.iter().map(u64::to_string).collect();
        let jobs = format!("--jobs={}", ids.join(","));
        let output = self.output(
            "squeue",
            [
                "-r",
                "--noheader",
                "--states=all",
                "--format=%F|%K|%T|%r|%N",
                &jobs,
            ],
        )?;
        if !output.status.success() {
            // Every id asked for is gone (purged after `MinJobAge`): nothing is listed.
            if String::from_utf8_lossy(&output.stderr).contains("Invalid job id") {
                return Ok(Vec::new());
            }
            return Err(classify("squeue", &output.stderr));
        }
        Ok(parse_rows(&String::from_utf8_lossy(&output.stdout)))
    }

    /// Cancels tasks (`123_4`) or whole arrays, in one call.
    ///
    /// # Errors
    /// The controller is unreachable or refused.
    pub fn cancel(&self, ids: &[String]) -> Result<(), ClientError> {
        if ids.is_empty() {
            return Ok(());
        }
        let output = self.output("scancel", ids)?;
        if output.status.success() {
            return Ok(());
        }
        // A task already over is what was wanted.
        if String::from_utf8_lossy(&output.stderr).contains("Invalid job id") {
            return Ok(());
        }
        Err(classify("scancel", &output.stderr))
    }

    /// The array submitted under `name` with the comment `tag`, if the controller has one: a
    /// submission whose answer was lost (`sbatch` timed out) may still have been taken.
    ///
    /// # Errors
    /// The controller is unreachable.
    pub fn find_tagged(&self, name: &str, tag: &str) -> Result<Option<u64>, ClientError> {
        let name = format!("--name={name}");
        let output = self.output(
            "squeue",
            ["--noheader", "--states=all", "--format=%F|%k", &name],
        )?;
        if !output.status.success() {
            return Err(classify("squeue", &output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| {
                let (array, comment) = line.trim().split_once('|')?;
                (comment == tag).then(|| array.parse().ok()).flatten()
            }))
    }

    /// Whether the cluster answers (`check`): a query for a job id no cluster has.
    ///
    /// # Errors
    /// The tools are missing, or the controller does not answer.
    pub fn ping(&self) -> Result<(), ClientError> {
        self.query(&[1]).map(|_| ())
    }
}

/// A tool that could not be started.
fn missing(program: &'static str, error: &std::io::Error) -> ClientError {
    ClientError::Missing {
        program,
        reason: error.to_string(),
    }
}

/// A failed tool's message: refused (the attempt fails) only when Slurm said the request itself
/// is wrong; anything else (a controller down, busy, in standby, a timeout, a submit limit
/// reached) is waited for, since failing a burst of jobs for an outage loses the night.
fn classify(program: &'static str, stderr: &[u8]) -> ClientError {
    let message = String::from_utf8_lossy(stderr).trim().to_string();
    let lower = message.to_ascii_lowercase();
    let refused = [
        "invalid partition",
        "invalid account",
        "invalid qos",
        "invalid generic resource",
        "invalid gres",
        "invalid feature",
        "invalid time limit",
        "invalid job array specification",
        "invalid option",
        "unrecognized option",
        "unknown option",
        "requested node configuration is not available",
        "memory specification can not be satisfied",
        "more processors requested than permitted",
        "node count specification invalid",
        "job violates accounting/qos policy",
        "access/permission denied",
        "user's group not permitted",
        "invalid user",
        "unable to process configuration file",
        "fatal:",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    if refused {
        ClientError::Refused { program, message }
    } else {
        ClientError::Unreachable { program, message }
    }
}

/// `squeue`'s lines (`%F|%K|%T|%r|%N`) as rows; lines it cannot read are skipped.
fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(5, '|');
            let array = fields.next()?.parse().ok()?;
            let task = fields.next()?.parse().ok();
            Some(Row {
                array,
                task,
                state: fields.next()?.to_string(),
                reason: fields.next()?.to_string(),
                nodes: fields.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_tasks_and_plain_jobs() {
        let rows = parse_rows(
            "1|5|PENDING|JobArrayTaskLimit|\n1|0|RUNNING|None|vm\n7|N/A|COMPLETED|None|vm\ngarbage\n",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].array, rows[0].task), (1, Some(5)));
        assert_eq!(rows[0].reason, "JobArrayTaskLimit");
        assert_eq!(
            (rows[1].state.as_str(), rows[1].nodes.as_str()),
            ("RUNNING", "vm")
        );
        assert_eq!(rows[2].task, None);
    }

    #[test]
    fn a_silent_controller_is_unreachable_not_refused() {
        let e = classify(
            "squeue",
            b"slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
        );
        assert!(matches!(e, ClientError::Unreachable { .. }));
        let e = classify(
            "sbatch",
            b"sbatch: error: invalid partition specified: nope",
        );
        assert!(matches!(e, ClientError::Refused { .. }));
    }
}
