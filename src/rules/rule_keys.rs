//! One entry of `rules:`: its keys read into a [`Rule`], what it matches, when it fires and what
//! it runs, and which template variables its templates may use.
//!
//! The variables a rule knows grow as its keys are read (built-ins, `vars:`, captures, then
//! `{seq.*}`, `{timecode}`, `{keykode}` and their `{frame.*}`/`{keykode.*}`, `{avid.*}`,
//! `{probe.*}`, `{out}`), so each template is checked against exactly what the job will have.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::media::keykode::{CODE_VARIABLES, PART_VARIABLES};
use crate::rules::diag::Diagnostic;
use crate::rules::limits;
use crate::rules::loader::{Defaults, Loader, MapReader};
use crate::rules::model::{
    BUILTIN_VARIABLES, DEFAULT_BACKOFF, DEFAULT_SEQUENCE_SETTLE, EventKind, EventSet, OnRename,
    ProgressKind, Rule,
};
use crate::rules::syntax::{parse_duration, path_regex, regex_error_summary};
use crate::rules::template::Template;
use crate::rules::yaml::{Node, NodeKind};

const RULE_KEYS: &[&str] = &[
    "name",
    "match",
    "regex",
    "on",
    "run",
    "steps",
    "timeout",
    "retries",
    "concurrency",
    "stop",
    "settle",
    "output",
    "backoff",
    "sequence",
    "timecode",
    "keykode",
    "verify",
    "probe",
    "on_rename",
    "tags",
    "avid",
    "ale",
    "progress",
    "notify",
    "copy",
    "move",
    "executor",
    "slurm",
    "frames",
    "inputs",
    "wait_inputs",
    "on_input_change",
    "priority",
    "window",
    "thumbnail",
];

impl Loader<'_> {
    /// `tags:`: only workers holding every one of them run the rule's jobs. A tag is a word
    /// (letters, digits, `_`, `-`, `.`), as `shotrouter worker --tags` takes them.
    fn tags(&mut self, map: &MapReader<'_>) -> Vec<String> {
        let tags = self.field::<Vec<String>>(map, "tags").unwrap_or_default();
        for tag in &tags {
            let word = !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !word {
                self.error(
                    Diagnostic::new(format!("tag `{tag}` is not a word"), map.span_of("tags"))
                        .context(map.at("tags"))
                        .hint("use letters, digits, `_`, `-` and `.`, e.g. `tags: [gpu, linux]`"),
                );
            }
        }
        tags
    }

    /// Every entry of `rules:`, in file order; duplicate names are reported at the second.
    pub(super) fn rules(
        &mut self,
        top: &MapReader<'_>,
        vars: &BTreeMap<String, String>,
        defaults: &Defaults,
    ) -> Vec<Rule> {
        let Some(node) = top.node.get("rules") else {
            self.error(Diagnostic::new("missing `rules:`", top.node.span));
            return Vec::new();
        };
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                Diagnostic::new("`rules` must be a list of rules", node.span)
                    .hint("start each rule with `- name: ...`"),
            );
            return Vec::new();
        };
        if items.len() > self.limits.max_rules {
            self.error(
                Diagnostic::new(
                    format!(
                        "{} rules, past the limit of {}",
                        items.len(),
                        self.limits.max_rules
                    ),
                    node.span,
                )
                .hint(format!(
                    "check that this is the right file, or raise the limit with `{}=N`",
                    limits::MAX_RULES_VAR
                )),
            );
            return Vec::new();
        }
        let mut rules = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            if !matches!(item.kind, NodeKind::Map(_)) {
                self.error(Diagnostic::new(
                    format!("rules[{index}] must be a mapping with `name`, `match` and `run`"),
                    item.span,
                ));
                continue;
            }
            let name = item.get("name").and_then(Node::as_scalar);
            let reader = MapReader {
                node: item,
                place: format!("rules[{index}]"),
                rule: name.map(str::to_string),
            };
            if let (Some(name), Some(name_node)) = (name, item.get("name"))
                && let Some(first_line) = names.insert(name.to_string(), name_node.span.line)
            {
                self.error(
                    Diagnostic::new(format!("duplicate rule name `{name}`"), name_node.span)
                        .context(reader.at("name"))
                        .hint(format!("the first rule named `{name}` is at line {first_line}; rule names must be unique")),
                );
            }
            let before = (self.errors.len(), self.warnings.len());
            let rule = self.rule(&reader, vars, defaults);
            if let Some(name) = name {
                for d in self.errors[before.0..]
                    .iter_mut()
                    .chain(&mut self.warnings[before.1..])
                {
                    d.rule.get_or_insert_with(|| name.to_string());
                }
            }
            rules.extend(rule);
        }
        rules
    }

    /// One rule; `None` when anything in it was reported.
    fn rule(
        &mut self,
        map: &MapReader<'_>,
        vars: &BTreeMap<String, String>,
        defaults: &Defaults,
    ) -> Option<Rule> {
        let errors_before = self.errors.len();
        let typos = self.unknown_keys(map, RULE_KEYS);
        // A typo'd `mtach:` is reported once, as a typo, not again as a missing `match`.
        let missing = |key: &str| map.node.get(key).is_none() && !typos.contains(&key);
        let name = self.field::<String>(map, "name");
        if missing("name") {
            self.error(Diagnostic::new("rule needs a `name`", map.node.span).context(map.at("")));
        }
        let globs = self.globs(map, "match");
        let regex = self.regex(map);
        self.captures_unknown = map.node.get("regex").is_some() && regex.is_none();
        if missing("match") && missing("regex") {
            self.error(
                Diagnostic::new(
                    "rule needs `match` (globs) or `regex`, or both",
                    map.node.span,
                )
                .context(map.at(""))
                .hint("e.g. `match: \"**/*.tif\"`"),
            );
        }
        // `on: close_write` and `on: [close_write, moved_to]` are both accepted.
        let kinds = match map.node.get("on").map(|n| &n.kind) {
            Some(NodeKind::Scalar { .. }) => self.field::<EventKind>(map, "on").map(|k| vec![k]),
            _ => self.field::<Vec<EventKind>>(map, "on"),
        };
        let asks_for_renames = kinds
            .as_ref()
            .is_some_and(|k| k.contains(&EventKind::MovedTo));
        let on_rename = self
            .field::<OnRename>(map, "on_rename")
            .unwrap_or(if asks_for_renames {
                OnRename::Rerun
            } else {
                OnRename::Follow
            });
        let events = match kinds {
            Some(kinds) if !kinds.is_empty() => {
                kinds.into_iter().fold(EventSet::default(), |mut set, k| {
                    set.insert(k);
                    set
                })
            }
            _ => EventSet::READY,
        };
        let progress = self.field::<ProgressKind>(map, "progress");
        let notify = self.notify(map);
        let timeout = self.duration(map, "timeout");
        let settle = self.duration(map, "settle");
        let retries = self.field::<u32>(map, "retries").unwrap_or(0);
        let backoff = self.duration(map, "backoff").unwrap_or(DEFAULT_BACKOFF);
        let concurrency = self.field::<usize>(map, "concurrency");
        if concurrency == Some(0) {
            self.error(
                Diagnostic::new(
                    "`concurrency` must be at least 1",
                    map.span_of("concurrency"),
                )
                .context(map.at("concurrency")),
            );
        }
        let stop = self.field::<bool>(map, "stop").unwrap_or(false);
        let tags = self.tags(map);
        let priority = self.priority(map);
        let windows = self.windows(map);

        let mut known: Vec<String> = BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect();
        known.extend(
            vars.keys()
                .filter(|k| !known.contains(k))
                .cloned()
                .collect::<Vec<_>>(),
        );
        if let Some(regex) = &regex {
            for capture in regex.capture_names().flatten() {
                if BUILTIN_VARIABLES.contains(&capture) || capture == "out" {
                    self.error(
                        Diagnostic::new(
                            format!("capture `{capture}` would hide the built-in `{{{capture}}}`"),
                            map.span_of("regex"),
                        )
                        .context(map.at("regex"))
                        .hint("rename the capture group"),
                    );
                }
                known.push(capture.to_string());
            }
        }
        let frames = self.frame_scope(map, regex.as_ref(), &mut known);
        let sequence = self.sequence(map, &known);
        let timecode = match map.node.get("timecode") {
            Some(_) => self.timecode(map),
            None => defaults.timecode.clone(),
        };
        let keykode = match map.node.get("keykode") {
            Some(_) => self.keykode(map),
            None => defaults.keykode.clone(),
        };
        if sequence.is_some() {
            known.extend(
                crate::media::sequence::VARIABLES
                    .iter()
                    .map(|v| v.to_string()),
            );
        }
        if timecode.is_some() || map.node.get("timecode").is_some() {
            known.push("timecode".into());
            known.push("frame.timecode".into());
        }
        if keykode.is_some() || map.node.get("keykode").is_some() {
            known.push("keykode".into());
            known.push("frame.keykode".into());
            known.extend(PART_VARIABLES.iter().map(|v| v.to_string()));
            // Without the codes a template naming them is an error (hinted in `template`);
            // with a `keykode:` that failed to load they are assumed, to report nothing twice.
            if keykode.as_ref().is_none_or(|k| k.codes.is_some()) {
                known.extend(CODE_VARIABLES.iter().map(|v| v.to_string()));
            }
        }
        let avid = self.avid(map);
        if avid.is_some() || map.node.get("avid").is_some() {
            known.extend(crate::media::avid::VARIABLES.iter().map(|v| v.to_string()));
            if avid.as_ref().is_none_or(|a| a.bitrate.is_some()) {
                known.push("avid.bitrate".into());
            }
        }
        let probe = self.field::<bool>(map, "probe").unwrap_or(false);
        if probe {
            known.extend(
                crate::media::probe::PROBE_VARIABLES
                    .iter()
                    .map(|v| v.to_string()),
            );
        }
        let verify = self.verify(map, &known);
        let output = match map.node.get("output") {
            Some(node) => self.template(map, node, "output", &known),
            None => None,
        };
        let ale = match map.node.get("ale") {
            Some(node) => self.template(map, node, "ale", &known),
            None => None,
        };
        if ale.is_some() {
            self.ale_needs(
                map,
                sequence.is_some(),
                output.is_some(),
                timecode.is_some(),
            );
        }
        let inputs = self.declared_inputs(map, &known);
        if output.is_some() {
            known.push("out".into());
        }
        let has_transfer = map.node.get("copy").is_some() || map.node.get("move").is_some();
        let steps = self.steps(map, &known, &typos, output.is_some(), has_transfer);
        // `to:` may use every variable but `{out}`, a temp path gone once the product is published.
        known.retain(|k| k != "out");
        let framing = crate::rules::transfer::Framing {
            has_commands: map.node.get("run").is_some() || map.node.get("steps").is_some(),
            has_output: output.is_some() || map.node.get("output").is_some(),
            is_sequence: sequence.is_some(),
            only_deletes: events.contains(EventKind::Delete)
                && ![
                    EventKind::CloseWrite,
                    EventKind::MovedTo,
                    EventKind::CloseNowrite,
                    EventKind::Create,
                ]
                .into_iter()
                .any(|k| events.contains(k)),
        };
        let transfer = self.transfer(map, &known, &framing);
        let thumbnail = self.thumbnail(map, framing.has_output);
        let (executor, slurm) =
            self.rule_executor(map, defaults.farm.as_ref(), framing.has_commands);
        self.captures_unknown = false;
        if verify.is_some() && output.is_none() {
            self.warn(
                Diagnostic::new("`verify` checks the product, but the rule declares no `output`: nothing will be verified", map.span_of("verify"))
                    .context(map.at("verify"))
                    .hint("declare `output:` and pass \"{out}\" to the command that writes the product"),
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let mut rule = Rule {
            name: name?,
            globs: globs.unwrap_or_default(),
            regex,
            events,
            steps: steps?,
            output,
            timeout,
            retries,
            backoff,
            concurrency,
            priority,
            windows,
            tags,
            stop,
            settle: settle.unwrap_or(if sequence.is_some() {
                DEFAULT_SEQUENCE_SETTLE
            } else {
                Duration::ZERO
            }),
            sequence,
            timecode,
            keykode,
            verify,
            avid,
            ale,
            probe,
            thumbnail,
            transfer,
            on_rename,
            progress,
            notify,
            executor,
            slurm,
            frames,
            inputs,
            work_hash: String::new(),
            line: map.node.span.line,
            definition_hash: String::new(),
        };
        rule.definition_hash = rule.compute_hash();
        rule.work_hash = rule.compute_work_hash(vars);
        Some(rule)
    }

    /// Warns when a step's program, written literally, is not found where the job would look:
    /// on `PATH` for a bare name, at its path for an absolute one. A program built from a
    /// template (`{var}`) or relative to the job's folder is known only when the job runs.
    fn program_on_path(&mut self, map: &MapReader<'_>, node: &Node, key: &str) {
        let Some(program) = node.as_scalar() else {
            return;
        };
        if program.is_empty() || program.contains('{') || program.contains('}') {
            return;
        }
        let (message, hint) = if program.starts_with('/') {
            if crate::os::program::is_executable(std::path::Path::new(program)) {
                return;
            }
            (
                format!("program `{program}` is not an executable file"),
                "install it there, or fix the path".to_string(),
            )
        } else if program.contains('/') {
            return;
        } else {
            if crate::os::program::find_program(std::ffi::OsStr::new(program)).is_some() {
                return;
            }
            (
                format!("program `{program}` is not found on PATH"),
                "check the spelling, install it, or write its full path; jobs run with the daemon's `PATH`, which may differ from this shell's".to_string(),
            )
        };
        self.warn(
            Diagnostic::new(message, node.span)
                .context(map.at(key))
                .hint(hint),
        );
    }

    /// `regex:`, compiled for path bytes.
    fn regex(&mut self, map: &MapReader<'_>) -> Option<regex::bytes::Regex> {
        let text = self.field::<String>(map, "regex")?;
        // Counted before it is compiled and kept: thousands of large regexes would otherwise
        // all be held before the matcher refuses them together.
        let left = self.limits.max_regex_bytes.saturating_sub(self.regex_bytes);
        match limits::regex_bytes(&text, left) {
            Some(bytes) => self.regex_bytes += bytes,
            // It fits alone (regex's own limit) but not beside the others.
            None if path_regex(&text).is_ok() => {
                self.error(
                    Diagnostic::new(
                        format!(
                            "the rules' regexes compile to more than {} together",
                            limits::show_bytes(self.limits.max_regex_bytes as u64)
                        ),
                        map.span_of("regex"),
                    )
                    .context(map.at("regex"))
                    .hint("use `match:` globs, or fewer and simpler regexes (counted repetitions like `{500}` are costly)"),
                );
                return None;
            }
            None => {}
        }
        match path_regex(&text) {
            Ok(regex) => Some(regex),
            Err(e) => {
                self.error(
                    Diagnostic::new(
                        format!("invalid regex: {}", regex_error_summary(&e)),
                        map.span_of("regex"),
                    )
                    .context(map.at("regex")),
                );
                None
            }
        }
    }

    /// A duration key (`timeout`, `settle`, `backoff`, `poll.hot`...).
    pub(super) fn duration(&mut self, map: &MapReader<'_>, key: &str) -> Option<Duration> {
        let text = self.field::<String>(map, key)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(hint) => {
                self.error(
                    Diagnostic::new(format!("invalid duration `{text}`"), map.span_of(key))
                        .context(map.at(key))
                        .hint(hint),
                );
                None
            }
        }
    }

    /// `run:` (one argv) or `steps:` (several), each item one argv element.
    fn steps(
        &mut self,
        map: &MapReader<'_>,
        known: &[String],
        typos: &[&str],
        has_output: bool,
        has_transfer: bool,
    ) -> Option<Vec<Vec<Template>>> {
        let lists: Vec<(&Node, &str)> = match (map.node.get("run"), map.node.get("steps")) {
            (Some(run), None) => vec![(run, "run")],
            (None, Some(steps)) => match &steps.kind {
                NodeKind::Seq(items) if !items.is_empty() => {
                    items.iter().map(|s| (s, "steps")).collect()
                }
                _ => {
                    self.error(
                        Diagnostic::new(
                            "`steps` must be a non-empty list of argv lists",
                            steps.span,
                        )
                        .context(map.at(""))
                        .hint("e.g. `steps: [[mkdir, -p, \"{dir}/review\"], [ffmpeg, ...]]`"),
                    );
                    return None;
                }
            },
            (Some(_), Some(_)) => {
                self.error(
                    Diagnostic::new(
                        "give either `run` or `steps`, not both",
                        map.span_of("steps"),
                    )
                    .context(map.at("steps")),
                );
                return None;
            }
            (None, None) if typos.iter().any(|t| *t == "run" || *t == "steps") => return None,
            // The rule's action is its `copy:`/`move:` of the matched file.
            (None, None) if has_transfer => return Some(Vec::new()),
            (None, None) => {
                self.error(
                    Diagnostic::new(
                        "rule needs `run` (one command) or `steps` (several)",
                        map.node.span,
                    )
                    .context(map.at(""))
                    .hint("e.g. `run: [ffmpeg, -i, \"{path}\", \"{out}\"]`, or `copy: {to: ...}` to deliver the file itself"),
                );
                return None;
            }
        };
        let mut steps = Vec::new();
        for (list, key) in lists {
            let NodeKind::Seq(items) = &list.kind else {
                self.error(
                    Diagnostic::new(format!("`{key}` takes an argv list, not a command line"), list.span)
                        .context(map.at(""))
                        .hint("write each argument as its own list item, e.g. `[ffmpeg, -i, \"{path}\"]`: nothing goes through a shell"),
                );
                continue;
            };
            if items.is_empty() {
                self.error(
                    Diagnostic::new(format!("empty argv in `{key}`"), list.span)
                        .context(map.at(key))
                        .hint("name the program to run first"),
                );
                continue;
            }
            self.program_on_path(map, &items[0], key);
            let mut argv = Vec::new();
            for item in items {
                if let Some(t) = self.template(map, item, key, known) {
                    argv.push(t);
                }
            }
            if argv.first().is_some_and(|t| t.source().is_empty()) {
                self.error(
                    Diagnostic::new("the program name is empty", items[0].span)
                        .context(map.at(key)),
                );
            }
            steps.push(argv);
        }
        let uses_out = steps
            .iter()
            .flatten()
            .any(|t| t.variables().any(|(v, _)| v == "out"));
        if has_output && !uses_out {
            self.error(
                Diagnostic::new("rule declares `output` but no command writes `{out}`", map.span_of("output"))
                    .context(map.at("output"))
                    .hint("pass \"{out}\" to the command that writes the product; shotrouter renames it into place on success"),
            );
        }
        Some(steps)
    }
}
