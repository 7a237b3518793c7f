//! Jobs on the studio's farm, as the rules give them: where a rule's jobs run
//! ([`ExecutorKind`]), the file's `slurm:` block ([`FarmSettings`]) and what one job asks of
//! Slurm ([`SlurmRequest`], carried in its plan). `farm_keys` reads them from the file, each
//! refusal at its value.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rules::syntax::parse_duration;

/// Where a rule's jobs run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// On the node that claims them, as process groups (`jobs:` at a time).
    #[default]
    Local,
    /// Submitted to the studio's Slurm cluster (`sbatch --array`).
    Slurm,
}

/// The file's `slurm:` block: how the farm is followed, and the defaults of every rule's
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmSettings {
    /// A folder every farm node mounts at the same path as this node: task logs and end
    /// records go there.
    pub spool: PathBuf,
    /// How often `squeue` is asked about the tasks in flight.
    pub poll: Duration,
    /// Most tasks one node keeps submitted at once.
    pub max_jobs: usize,
    /// Settings every rule's `slurm:` starts from.
    pub defaults: SlurmRequest,
}

/// Default of `slurm.poll`: a job's end is seen within two seconds, and a controller with
/// ten nodes polling it answers 5 small queries a second.
pub const DEFAULT_FARM_POLL: Duration = Duration::from_secs(2);
/// The shortest `slurm.poll`: below it the controller's RPC load grows for nothing.
pub(super) const MIN_FARM_POLL: Duration = Duration::from_millis(200);
/// Default of `slurm.max_jobs`.
pub const DEFAULT_FARM_MAX_JOBS: usize = 1000;

/// What one job asks of Slurm: `sbatch` options, and where its log and end record go. Carried
/// in the job's plan, so any node that submits it needs nothing else from the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmRequest {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `--time`, in whole minutes (the rule's `timeout:` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_minutes: Option<u64>,
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`, as Slurm writes it (`4G`, `512M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--gres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// Further `sbatch` arguments, each one argv element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The file's `slurm.spool`.
    #[serde(default)]
    pub spool: PathBuf,
    /// The file's `slurm.poll`, in milliseconds: how often the task is looked at.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

pub(super) fn default_poll_ms() -> u64 {
    DEFAULT_FARM_POLL.as_millis() as u64
}

impl SlurmRequest {
    /// The `sbatch` options this request asks for, without the array, log and name shotrouter
    /// sets itself.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: &Option<String>| {
            if let Some(value) = value {
                args.push(format!("--{flag}={value}"));
            }
        };
        push("partition", &self.partition);
        push("account", &self.account);
        push("qos", &self.qos);
        push("time", &self.time_minutes.map(|m| m.to_string()));
        push("cpus-per-task", &self.cpus.map(|c| c.to_string()));
        push("mem", &self.mem);
        push("gres", &self.gres);
        args.extend(self.args.iter().cloned());
        args
    }
}

impl SlurmRequest {
    /// `other`'s settings over these.
    pub(super) fn merge(&mut self, other: SlurmRequest) {
        let take = |mine: &mut Option<String>, theirs: Option<String>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.partition, other.partition);
        take(&mut self.account, other.account);
        take(&mut self.qos, other.qos);
        take(&mut self.mem, other.mem);
        take(&mut self.gres, other.gres);
        if other.time_minutes.is_some() {
            self.time_minutes = other.time_minutes;
        }
        if other.cpus.is_some() {
            self.cpus = other.cpus;
        }
        if !other.args.is_empty() {
            self.args = other.args;
        }
    }
}

/// A Slurm time limit in minutes, rounded up: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`,
/// or a duration with units (`2h`).
pub fn slurm_minutes(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.chars().any(|c| c.is_ascii_alphabetic()) {
        let duration = parse_duration(text).ok()?;
        return Some(
            duration
                .as_secs()
                .div_ceil(60)
                .max(u64::from(duration.subsec_nanos() > 0)),
        );
    }
    // Up to ten thousand days: no product takes longer, and no sum below can overflow.
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (number(d)?, Some(rest)),
        None => (0, None),
    };
    let seconds = match rest {
        Some(rest) => {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [h] => number(h)? * 3600,
                [h, m] => number(h)? * 3600 + number(m)? * 60,
                [h, m, s] => number(h)? * 3600 + number(m)? * 60 + number(s)?,
                _ => return None,
            }
        }
        None => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [m] => number(m)? * 60,
                [m, s] => number(m)? * 60 + number(s)?,
                [h, m, s] => number(h)? * 3600 + number(m)? * 60 + number(s)?,
                _ => return None,
            }
        }
    };
    Some((days * 86_400 + seconds).div_ceil(60))
}

/// A memory size as Slurm writes it (`8G`, `512M`, `16000`), or `None`.
pub fn slurm_size(text: &str) -> Option<String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let unit = match unit {
        "" | "M" | "m" | "MB" | "mb" => "M",
        "K" | "k" | "KB" | "kb" => "K",
        "G" | "g" | "GB" | "gb" => "G",
        "T" | "t" | "TB" | "tb" => "T",
        _ => return None,
    };
    let value: u64 = digits.parse().ok().filter(|v| *v > 0)?;
    Some(format!("{value}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_read_as_minutes_rounded_up() {
        assert_eq!(slurm_minutes("90"), Some(90));
        assert_eq!(slurm_minutes("1:30"), Some(2));
        assert_eq!(slurm_minutes("1:30:00"), Some(90));
        assert_eq!(slurm_minutes("2-00:00:00"), Some(2880));
        assert_eq!(slurm_minutes("1-2"), Some(1560));
        assert_eq!(slurm_minutes("2h"), Some(120));
        assert_eq!(slurm_minutes("90s"), Some(2));
        assert_eq!(slurm_minutes("soon"), None);
        assert_eq!(slurm_minutes("1:2:3:4"), None);
        assert_eq!(slurm_minutes("-5"), None);
    }

    #[test]
    fn slurm_sizes_keep_their_unit() {
        assert_eq!(slurm_size("8G").as_deref(), Some("8G"));
        assert_eq!(slurm_size("512mb").as_deref(), Some("512M"));
        assert_eq!(slurm_size("16000").as_deref(), Some("16000M"));
        assert_eq!(slurm_size("8 GiB"), None);
        assert_eq!(slurm_size("0"), None);
        assert_eq!(slurm_size("lots"), None);
    }

    #[test]
    fn a_request_becomes_sbatch_options() {
        let request = SlurmRequest {
            partition: Some("render".into()),
            time_minutes: Some(30),
            mem: Some("8G".into()),
            args: vec!["--constraint=avx2".into()],
            ..SlurmRequest::default()
        };
        assert_eq!(
            request.sbatch_args(),
            [
                "--partition=render",
                "--time=30",
                "--mem=8G",
                "--constraint=avx2"
            ]
        );
    }
}
