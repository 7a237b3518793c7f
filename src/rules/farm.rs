//! Jobs on the studio's farm: a rule's `executor:` and the `slurm:` blocks (the file's defaults,
//! a rule's own overrides), read into the [`SlurmRequest`] its jobs carry in their plan.
//!
//! Everything a scheduler would refuse at submission is refused here, at its value: a time
//! limit, a memory size or a GRES Slurm cannot read, and `args:` that would take over what
//! shotrouter itself sets (`--array`, `--output`, `--parsable`, ...). A farm administrator's
//! partition, account and QoS names are passed as written.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::path::normalize;
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
const MIN_FARM_POLL: Duration = Duration::from_millis(200);
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

fn default_poll_ms() -> u64 {
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

const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "time",
    "cpus",
    "mem",
    "gres",
    "args",
];
const FILE_ONLY_KEYS: &[&str] = &["spool", "poll", "max_jobs"];

/// `sbatch` options shotrouter sets for every submission, or that would take the submission
/// out of its hands: an `args:` entry may not give them, written in full, abbreviated (`--arr`)
/// or as a short option, alone or bundled (`-Qa0-3`). (long name, short letter)
const RESERVED_ARGS: &[(&str, Option<char>)] = &[
    ("--array", Some('a')),
    ("--output", Some('o')),
    ("--error", Some('e')),
    ("--input", Some('i')),
    ("--parsable", None),
    ("--wrap", None),
    ("--job-name", Some('J')),
    ("--comment", None),
    ("--requeue", None),
    ("--no-requeue", None),
    ("--quiet", Some('Q')),
    ("--wait", Some('W')),
    ("--clusters", Some('M')),
    ("--test-only", None),
    ("--hold", Some('H')),
];

/// Short `sbatch` options that take a value: in a bundle (`-cN`), the rest is that value.
const SHORT_WITH_VALUE: &str = "ABDFGLMNSabcdeijkmnopqstwx";

/// The reserved option an `args:` item gives, if any.
fn reserved_in(arg: &str) -> Option<&'static str> {
    if let Some(long) = arg.strip_prefix("--") {
        let flag = long.split('=').next().unwrap_or(long);
        if flag.is_empty() {
            return None;
        }
        // getopt takes any unambiguous prefix of a long option.
        return RESERVED_ARGS
            .iter()
            .find(|(name, _)| name[2..].starts_with(flag))
            .map(|(name, _)| *name);
    }
    let bundle = arg.strip_prefix('-')?;
    for letter in bundle.chars() {
        if let Some((name, _)) = RESERVED_ARGS
            .iter()
            .find(|(_, short)| *short == Some(letter))
        {
            return Some(name);
        }
        if SHORT_WITH_VALUE.contains(letter) {
            return None;
        }
    }
    None
}

impl Loader<'_> {
    /// The file's `slurm:` block; `None` when absent (or reported).
    pub(super) fn farm(
        &mut self,
        top: &MapReader<'_>,
        base: &std::path::Path,
    ) -> Option<FarmSettings> {
        let map = self.submap(
            top,
            "slurm",
            "{spool: /mnt/farm/shotrouter, partition: render}",
        )?;
        let known: Vec<&'static str> = SLURM_KEYS.iter().chain(FILE_ONLY_KEYS).copied().collect();
        let _ = self.unknown_keys(&map, &known);
        let errors = self.errors.len();
        let defaults = self.slurm_request(&map);
        let spool = match self.field::<String>(&map, "spool") {
            Some(text) if text.contains('%') => {
                self.error(
                    Diagnostic::new(
                        format!("`spool` `{text}` holds a `%`"),
                        map.span_of("spool"),
                    )
                    .context(map.at("spool"))
                    .hint(
                        "Slurm reads `%` in a log path as a pattern; choose a folder without one",
                    ),
                );
                None
            }
            Some(text) if text.trim().is_empty() => {
                self.error(
                    Diagnostic::new("empty `spool`", map.span_of("spool")).context(map.at("spool")),
                );
                None
            }
            Some(text) => Some(normalize(&base.join(text))),
            None => {
                self.error(
                    Diagnostic::new("`slurm:` needs `spool:`, a folder every farm node mounts at the same path", map.node.span)
                        .context(map.at(""))
                        .hint("task logs and end records go there, e.g. `spool: /mnt/projects/.shotrouter/farm`"),
                );
                None
            }
        };
        let poll = match map.node.get("poll") {
            Some(_) => match self.duration(&map, "poll") {
                Some(poll) if poll < MIN_FARM_POLL => {
                    self.error(
                        Diagnostic::new(
                            format!("`poll` below {}", humantime::format_duration(MIN_FARM_POLL)),
                            map.span_of("poll"),
                        )
                        .context(map.at("poll"))
                        .hint("every poll is a query to slurmctld; `2s` is the default"),
                    );
                    DEFAULT_FARM_POLL
                }
                Some(poll) => poll,
                None => DEFAULT_FARM_POLL,
            },
            None => DEFAULT_FARM_POLL,
        };
        let max_jobs = match self.field::<usize>(&map, "max_jobs") {
            Some(0) => {
                self.error(
                    Diagnostic::new("`max_jobs` must be at least 1", map.span_of("max_jobs"))
                        .context(map.at("max_jobs")),
                );
                DEFAULT_FARM_MAX_JOBS
            }
            Some(n) => n,
            None => DEFAULT_FARM_MAX_JOBS,
        };
        if self.errors.len() > errors {
            return None;
        }
        let mut defaults = defaults;
        defaults.spool = spool?;
        defaults.poll_ms = poll.as_millis() as u64;
        Some(FarmSettings {
            spool: defaults.spool.clone(),
            poll,
            max_jobs,
            defaults,
        })
    }

    /// A rule's `executor:` and its `slurm:` merged over the file's; `(Local, None)` for a
    /// local rule.
    pub(super) fn rule_executor(
        &mut self,
        map: &MapReader<'_>,
        farm: Option<&FarmSettings>,
        has_commands: bool,
    ) -> (ExecutorKind, Option<SlurmRequest>) {
        let kind = match map.node.get("executor") {
            Some(node) => match node.as_scalar() {
                Some("local") => ExecutorKind::Local,
                Some("slurm") => ExecutorKind::Slurm,
                other => {
                    self.error(
                        Diagnostic::new(
                            format!("unknown executor `{}`", other.unwrap_or("?")),
                            node.span,
                        )
                        .context(map.at("executor"))
                        .hint("use `local` (the default: this node runs the job) or `slurm` (the studio's Slurm farm)"),
                    );
                    return (ExecutorKind::Local, None);
                }
            },
            None => ExecutorKind::Local,
        };
        let own = match map.node.get("slurm") {
            Some(_) if kind != ExecutorKind::Slurm => {
                self.error(
                    Diagnostic::new(
                        "`slurm:` settings on a rule that does not run on Slurm",
                        map.span_of("slurm"),
                    )
                    .context(map.at("slurm"))
                    .hint("add `executor: slurm`, or remove the `slurm:` block"),
                );
                return (kind, None);
            }
            Some(_) => self.submap(map, "slurm", "{partition: gpu, mem: 8G}"),
            None => None,
        };
        if kind == ExecutorKind::Local {
            return (kind, None);
        }
        let Some(farm) = farm else {
            if self.source_has_farm_block {
                // The file's block is broken, and was reported where it is.
                return (kind, None);
            }
            self.error(
                Diagnostic::new("`executor: slurm` needs the file's `slurm:` block with `spool:`", map.span_of("executor"))
                    .context(map.at("executor"))
                    .hint("add at the top level `slurm: {spool: /mnt/projects/.shotrouter/farm}`: a folder every farm node mounts at the same path"),
            );
            return (kind, None);
        };
        if !has_commands {
            self.error(
                Diagnostic::new("a rule without `run:` or `steps:` has nothing to run on the farm", map.span_of("executor"))
                    .context(map.at("executor"))
                    .hint("a `copy:`/`move:` of the matched file runs on this node: remove `executor: slurm`"),
            );
        }
        let mut request = farm.defaults.clone();
        if let Some(own) = own {
            let known: Vec<&'static str> =
                SLURM_KEYS.iter().chain(FILE_ONLY_KEYS).copied().collect();
            let _ = self.unknown_keys(&own, &known);
            for key in FILE_ONLY_KEYS {
                if own.node.get(key).is_some() {
                    self.error(
                        Diagnostic::new(
                            format!("`{key}` is set once, in the file's `slurm:` block"),
                            own.span_of(key),
                        )
                        .context(own.at(key)),
                    );
                }
            }
            let overrides = self.slurm_request(&own);
            request.merge(overrides);
        }
        (kind, Some(request))
    }

    /// The request keys of a `slurm:` block (file or rule), each checked at its value.
    fn slurm_request(&mut self, map: &MapReader<'_>) -> SlurmRequest {
        let word = |loader: &mut Self, key: &str| -> Option<String> {
            let text = loader.field::<String>(map, key)?;
            if text.is_empty()
                || text.starts_with('-')
                || text.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                loader.error(
                    Diagnostic::new(
                        format!("`{key}` `{text}` is not a Slurm name"),
                        map.span_of(key),
                    )
                    .context(map.at(key))
                    .hint("a name without spaces, as `sinfo`/`sacctmgr` show it"),
                );
                return None;
            }
            Some(text)
        };
        let partition = word(self, "partition");
        let account = word(self, "account");
        let qos = word(self, "qos");
        let time_minutes = self.slurm_time(map);
        let cpus = match self.field::<u32>(map, "cpus") {
            Some(0) => {
                self.error(
                    Diagnostic::new("`cpus` must be at least 1", map.span_of("cpus"))
                        .context(map.at("cpus")),
                );
                None
            }
            other => other,
        };
        let mem = map.node.get("mem").and_then(|node| {
            let text = node.as_scalar()?.to_string();
            match slurm_size(&text) {
                Some(size) => Some(size),
                None => {
                    self.error(
                        Diagnostic::new(format!("`mem` `{text}` is not a size Slurm reads"), node.span)
                            .context(map.at("mem"))
                            .hint("a whole number with `K`, `M`, `G` or `T`, e.g. `8G` or `512M` (a bare number is megabytes)"),
                    );
                    None
                }
            }
        });
        let gres = map.node.get("gres").and_then(|node| {
            let text = node.as_scalar()?.to_string();
            let ok = !text.is_empty()
                && text.split(',').all(|item| {
                    let parts: Vec<&str> = item.split(':').collect();
                    !parts[0].is_empty()
                        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                });
            if ok {
                Some(text)
            } else {
                self.error(
                    Diagnostic::new(format!("`gres` `{text}` is not a GRES Slurm reads"), node.span)
                        .context(map.at("gres"))
                        .hint("`NAME[:TYPE][:COUNT]`, several joined by `,`, e.g. `gpu:1` or `gpu:a100:2`"),
                );
                None
            }
        });
        let args = self.slurm_args(map);
        SlurmRequest {
            partition,
            account,
            qos,
            time_minutes,
            cpus,
            mem,
            gres,
            args,
            spool: PathBuf::new(),
            poll_ms: default_poll_ms(),
        }
    }

    /// `time:` as Slurm writes it (`90`, `1:30:00`, `2-00:00:00`) or as the rules file does
    /// (`90m`, `2h`); in whole minutes, rounded up.
    fn slurm_time(&mut self, map: &MapReader<'_>) -> Option<u64> {
        let node = map.node.get("time")?;
        let text = node.as_scalar().unwrap_or_default().to_string();
        match slurm_minutes(&text) {
            Some(0) | None => {
                self.error(
                    Diagnostic::new(format!("`time` `{text}` is not a time limit"), node.span)
                        .context(map.at("time"))
                        .hint("minutes (`90`), `HH:MM:SS`, `D-HH:MM:SS`, or a duration such as `2h`; at least one minute"),
                );
                None
            }
            Some(minutes) => Some(minutes),
        }
    }

    /// `args:`: extra `sbatch` options, each one argv element, none taking over what
    /// shotrouter sets.
    fn slurm_args(&mut self, map: &MapReader<'_>) -> Vec<String> {
        let Some(args) = self.field::<Vec<String>>(map, "args") else {
            return Vec::new();
        };
        let items = map
            .node
            .get("args")
            .map(|n| n.items().to_vec())
            .unwrap_or_default();
        for (index, arg) in args.iter().enumerate() {
            let span = items.get(index).map_or(map.span_of("args"), |n| n.span);
            if !arg.starts_with('-') {
                self.error(
                    Diagnostic::new(format!("`args` item `{arg}` is not an option"), span)
                        .context(map.at("args"))
                        .hint("write each option with its value in one item, e.g. `--constraint=avx2`"),
                );
                continue;
            }
            let reserved = reserved_in(arg);
            if let Some(long) = reserved {
                self.error(
                    Diagnostic::new(format!("`args` item `{arg}` sets `{long}`, which shotrouter sets itself"), span)
                        .context(map.at("args"))
                        .hint("shotrouter submits bursts as arrays, keeps each task's log and follows it on this cluster: leave the array, log, input, name, comment, requeue, waiting and cluster to it"),
                );
            }
        }
        args
    }
}

impl SlurmRequest {
    /// `other`'s settings over these.
    fn merge(&mut self, other: SlurmRequest) {
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
