//! Reading `executor:` and the `slurm:` blocks (the file's defaults, a rule's own overrides)
//! into [`FarmSettings`] and each rule's [`SlurmRequest`].
//!
//! Everything a scheduler would refuse at submission is refused here, at its value: a time
//! limit, a memory size or a GRES Slurm cannot read, and `args:` that would take over what
//! shotrouter itself sets (`--array`, `--output`, `--parsable`, ...). A farm administrator's
//! partition, account and QoS names are passed as written.

use std::path::PathBuf;

use crate::rules::diag::Diagnostic;
use crate::rules::farm::{
    DEFAULT_FARM_MAX_JOBS, DEFAULT_FARM_POLL, ExecutorKind, FarmSettings, MIN_FARM_POLL,
    SlurmRequest, default_poll_ms, slurm_minutes, slurm_size,
};
use crate::rules::loader::{Loader, MapReader};
use crate::rules::path::normalize;

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
    pub(super) fn slurm_block(
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
        if map.node.get("progress").is_some() {
            self.warn(
                Diagnostic::new("`progress:` is not read from jobs on the farm", map.span_of("progress"))
                    .context(map.at("progress"))
                    .hint("a Slurm task's state (pending, running) is shown instead; its output is in the job's log when it ends"),
            );
        }
        if crate::os::program::find_program(std::ffi::OsStr::new("sbatch")).is_none() {
            self.warn(
                Diagnostic::new("`sbatch` is not on PATH: this rule's jobs cannot be submitted to Slurm", map.span_of("executor"))
                    .context(map.at("executor"))
                    .hint("install Slurm's client tools (Debian: `slurm-client`) and point `SLURM_CONF` at the cluster's `slurm.conf`"),
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
