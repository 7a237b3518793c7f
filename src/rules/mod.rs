//! `rules.yaml`: the schema, loading, and every check that can be made before a file arrives.
//!
//! A rules file is read field by field from a positioned YAML tree, so each error names
//! `FILE:LINE:COL` of the offending value and the rule it belongs to, and all errors of a file
//! are reported together. What loads here cannot fail later for a reason visible now: globs and
//! regexes compile, every template variable has a source, durations parse.
//!
//! Precedence: every matching rule fires, in file order, until a matching rule with `stop: true`.
//! Variables: see [`BUILTIN_VARIABLES`], the regex's named captures (which override `vars`),
//! every `vars` entry, `{env.NAME}`, and `{out}` on rules that declare `output:`.
//! The full reference is `docs/rules.md`.

pub mod diag;
pub mod template;
pub mod verify;
pub mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::media::keykode::{FilmFormat, KeyKode, KeyKodeSpec};
use crate::media::sequence::OnGaps;
use crate::media::timecode::{TimecodeError, TimecodeSpec};
use crate::rules::diag::{Diagnostic, Diagnostics};
use crate::rules::template::Template;
use crate::rules::verify::VerifyRule;
use yaml::{Node, NodeKind, Span};

/// Variables every rule can use, whatever the file.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "path", "rel", "root", "dir", "name", "stem", "ext", "frame", "rule",
];

/// Ignore globs used when a file gives no `ignore:` list: hidden files, temp and partial writes.
pub const DEFAULT_IGNORE: &[&str] = &["**/.*", "**/*.tmp", "**/*.part", "**/*~"];

/// Wait before a failed job's first retry when a rule gives no `backoff:`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "watch", "ignore", "vars", "jobs", "outputs", "rules", "timecode", "keykode",
];
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
];

/// How long a sequence waits for its next frame when its rule gives no `settle:`.
pub const DEFAULT_SEQUENCE_SETTLE: Duration = Duration::from_secs(5);

/// A file-system event a rule can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A file opened for writing was closed: the normal "render wrote a frame".
    CloseWrite,
    /// A file was renamed into a watched folder: the "write to temp, rename into place" idiom.
    MovedTo,
    /// A file opened read-only was closed.
    CloseNowrite,
    /// A file was created (it may still be empty).
    Create,
    /// A file was deleted.
    Delete,
}

impl EventKind {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`EventKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u8);

impl EventSet {
    /// `close_write` and `moved_to`: a file that is complete.
    pub const READY: EventSet = EventSet(EventKind::CloseWrite.bit() | EventKind::MovedTo.bit());

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: EventKind) {
        self.0 |= kind.bit();
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: EventSet) -> EventSet {
        EventSet(self.0 | other.0)
    }
}

/// A folder to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRoot {
    /// The root's name: what the store records paths relative to, so that machines which mount
    /// the same tree at different places agree on a file's identity. Defaults to the folder name.
    pub name: String,
    /// Absolute path (relative entries are resolved against the rules file's folder).
    pub path: PathBuf,
    /// Whether sub-folders are watched too.
    pub recursive: bool,
    /// How changes under the root are noticed.
    pub source: SourceKind,
}

/// How a watch root's changes are noticed (`source:` in `watch:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The kernel's inotify: immediate, sees only writes made through this machine's kernel.
    #[default]
    Inotify,
}

impl SourceKind {
    /// The name used in `rules.yaml` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Inotify => "inotify",
        }
    }
}

/// One compiled, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Globs on the path relative to the watch root; empty when only `regex` is given.
    pub globs: Vec<String>,
    /// Regex on the relative path, whose named captures become variables.
    pub regex: Option<regex::bytes::Regex>,
    /// Events the rule fires on.
    pub events: EventSet,
    /// argv lists run in order; `run:` is a single step.
    pub steps: Vec<Vec<Template>>,
    /// The product the job publishes atomically, if any.
    pub output: Option<Template>,
    /// Longest a job may run before its process group is killed.
    pub timeout: Option<Duration>,
    /// How many times a failed job is tried again.
    pub retries: u32,
    /// Wait before the first retry; it doubles with each further one (capped at 10 minutes).
    pub backoff: Duration,
    /// At most this many jobs of this rule at once.
    pub concurrency: Option<usize>,
    /// Whether later rules are skipped for a path this rule matched.
    pub stop: bool,
    /// Quiet time after the last write before the job fires.
    pub settle: Duration,
    /// Frames are grouped into sequences and the job runs once per sequence.
    pub sequence: Option<SequenceRule>,
    /// Gives `{timecode}` (the rule's own, else the file's top-level default).
    pub timecode: Option<TimecodeSpec>,
    /// Gives `{keykode}`.
    pub keykode: Option<KeyKodeSpec>,
    /// Checks on the product before it is published.
    pub verify: Option<VerifyRule>,
    /// The input is read with ffprobe before planning, giving `{probe.*}`.
    pub probe: bool,
    /// Line of the rule in the file, for messages.
    pub line: usize,
    /// A hash of everything that defines what the rule runs, recorded with each job.
    pub definition_hash: String,
}

impl Rule {
    /// A stable digest of the rule's definition (not its name or position in the file).
    fn compute_hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        let steps: Vec<Vec<&str>> = self
            .steps
            .iter()
            .map(|s| s.iter().map(Template::source).collect())
            .collect();
        let canonical = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.globs,
            self.regex.as_ref().map(regex::bytes::Regex::as_str),
            self.events,
            steps,
            self.output.as_ref().map(Template::source),
            self.timeout,
            self.retries,
            self.backoff,
            self.concurrency,
            self.stop,
            self.settle,
            self.sequence
                .as_ref()
                .map(|s| (s.expect.as_ref().map(Template::source), s.on_gaps)),
            self.timecode,
            self.keykode,
            self.verify.as_ref().map(|v| v
                .checks
                .iter()
                .map(|(k, t)| (k, t.source()))
                .collect::<Vec<_>>()),
        );
        // SipHash with fixed keys: the same definition hashes the same in every run.
        let mut hasher = std::hash::DefaultHasher::new();
        canonical.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

/// `sequence:` on a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceRule {
    /// `expect: 1001-1048` (a template): fire as soon as every frame in it is present.
    pub expect: Option<Template>,
    /// What to do with missing frames.
    pub on_gaps: OnGaps,
}

/// A loaded rules file.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// The file it came from.
    pub path: PathBuf,
    /// Folders to watch.
    pub watch: Vec<WatchRoot>,
    /// Globs of paths never routed (relative to their watch root).
    pub ignore: Vec<String>,
    /// User variables.
    pub vars: BTreeMap<String, String>,
    /// Most jobs running at once.
    pub jobs: usize,
    /// Folders outside the watch roots where outputs may be written.
    pub outputs: Vec<PathBuf>,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

/// Why a rules file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has errors; each is positioned.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates a rules file.
///
/// # Errors
/// [`RulesError::Read`] when the file cannot be read, [`RulesError::Invalid`] with every problem.
pub fn load(path: &Path) -> Result<RuleFile, RulesError> {
    let source = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path
        .parent()
        .map(absolute)
        .unwrap_or_else(|| absolute(Path::new(".")));
    parse(path, &source, &base).map_err(RulesError::Invalid)
}

/// Validates rules text; relative watch paths are resolved against `base`.
///
/// # Errors
/// Every problem found, positioned in `source`.
pub fn parse(path: &Path, source: &str, base: &Path) -> Result<RuleFile, Diagnostics> {
    let mut loader = Loader {
        source,
        errors: Vec::new(),
    };
    let file = loader.file(base);
    if loader.errors.is_empty()
        && let Some(file) = file
    {
        return Ok(file.with_path(path));
    }
    let mut items = loader.errors;
    items.sort_by_key(|d| (d.span.line, d.span.column));
    Err(Diagnostics {
        path: path.to_path_buf(),
        source: source.to_string(),
        items,
    })
}

impl RuleFile {
    fn with_path(mut self, path: &Path) -> Self {
        self.path = path.to_path_buf();
        self
    }
}

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

/// Top-level `timecode:` and `keykode:`, inherited by rules that give none.
struct Defaults {
    timecode: Option<TimecodeSpec>,
    keykode: Option<KeyKodeSpec>,
}

struct Loader<'s> {
    source: &'s str,
    errors: Vec<Diagnostic>,
}

/// Reads one YAML mapping field by field, recording each problem and carrying on.
struct MapReader<'n> {
    node: &'n Node,
    /// Where the map is, e.g. `rules[2]`; empty at the top level.
    place: String,
    /// The rule's name, when the map is a rule that has one.
    rule: Option<String>,
}

impl<'s> Loader<'s> {
    fn error(&mut self, diagnostic: Diagnostic) {
        self.errors.push(diagnostic);
    }

    fn file(&mut self, base: &Path) -> Option<RuleFile> {
        let root = match yaml::parse(self.source) {
            Ok(Some(root)) => root,
            Ok(None) => {
                self.error(
                    Diagnostic::new("rules file is empty", Span { line: 1, column: 1 })
                        .hint("start with `version: 1`"),
                );
                return None;
            }
            Err(e) => {
                self.error(Diagnostic::new(
                    format!("invalid YAML: {}", e.message),
                    e.span,
                ));
                return None;
            }
        };
        if !matches!(root.kind, NodeKind::Map(_)) {
            self.error(Diagnostic::new(
                "a rules file is a mapping with `version`, `watch` and `rules`",
                root.span,
            ));
            return None;
        }
        let top = MapReader {
            node: &root,
            place: String::new(),
            rule: None,
        };
        let _ = self.unknown_keys(&top, TOP_LEVEL_KEYS);

        match top.node.get("version") {
            None => self.error(
                Diagnostic::new("missing `version: 1`", root.span)
                    .hint("add `version: 1` as the first line"),
            ),
            Some(node) => match self.field::<u32>(&top, "version") {
                Some(1) | None => {}
                Some(other) => self.error(
                    Diagnostic::new(format!("unsupported rules version `{other}`"), node.span)
                        .hint("this shotrouter reads `version: 1`"),
                ),
            },
        }
        let watch = self.watch_roots(&top, base);
        let ignore = self
            .globs(&top, "ignore")
            .unwrap_or_else(|| DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect());
        let vars = self.vars(&top);
        let jobs = match self.field::<usize>(&top, "jobs") {
            Some(0) => {
                self.error(Diagnostic::new(
                    "`jobs` must be at least 1",
                    top.span_of("jobs"),
                ));
                1
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let outputs = self
            .field::<Vec<String>>(&top, "outputs")
            .unwrap_or_default()
            .iter()
            .map(|p| normalize(&base.join(p)))
            .collect();
        let defaults = Defaults {
            timecode: self.timecode(&top),
            keykode: self.keykode(&top),
        };
        let rules = self.rules(&top, &vars, &defaults);
        Some(RuleFile {
            path: PathBuf::new(),
            watch,
            ignore,
            vars,
            jobs,
            outputs,
            rules,
        })
    }

    /// Deserializes one field, reporting a type error at its value; `None` when absent or bad.
    fn field<T: DeserializeOwned>(&mut self, map: &MapReader<'_>, key: &str) -> Option<T> {
        let node = map.node.get(key)?;
        match yaml::from_node::<T>(node) {
            Ok(value) => Some(value),
            Err(e) => {
                self.error(
                    Diagnostic::new(
                        format!("`{key}`: {}", e.message),
                        e.span.unwrap_or(node.span),
                    )
                    .context(map.at(key)),
                );
                None
            }
        }
    }

    /// Reports unknown and repeated keys; returns the known keys suggested for the typos.
    fn unknown_keys(&mut self, map: &MapReader<'_>, known: &[&'static str]) -> Vec<&'static str> {
        let mut suggested = Vec::new();
        let NodeKind::Map(entries) = &map.node.kind else {
            return suggested;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (key, _) in entries {
            let Some(name) = key.as_scalar() else {
                self.error(
                    Diagnostic::new("keys must be plain names", key.span).context(map.at("")),
                );
                continue;
            };
            if let Some(first) = seen.insert(name, key.span) {
                self.error(
                    Diagnostic::new(format!("duplicate key `{name}`"), key.span)
                        .context(map.at(""))
                        .hint(format!("first given at line {}", first.line)),
                );
            }
            if !known.contains(&name) {
                let mut d =
                    Diagnostic::new(format!("unknown key `{name}`"), key.span).context(map.at(""));
                d = match did_you_mean(name, known.iter().copied()) {
                    Some(best) => {
                        suggested.push(best);
                        d.hint(format!("did you mean `{best}`?"))
                    }
                    None => d.hint(format!("known keys: {}", known.join(", "))),
                };
                self.error(d);
            }
        }
        suggested
    }

    fn watch_roots(&mut self, top: &MapReader<'_>, base: &Path) -> Vec<WatchRoot> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawWatch {
            path: String,
            #[serde(default)]
            name: Option<String>,
            #[serde(default = "default_true")]
            recursive: bool,
            #[serde(default)]
            source: SourceKind,
        }
        fn default_true() -> bool {
            true
        }
        let Some(node) = top.node.get("watch") else {
            self.error(
                Diagnostic::new("missing `watch:`, the folders to watch", top.node.span)
                    .hint("add `watch: [{path: shots}]`"),
            );
            return Vec::new();
        };
        let mut roots = Vec::new();
        for item in node.items() {
            let raw = match &item.kind {
                NodeKind::Scalar { text, .. } => Ok(RawWatch {
                    path: text.clone(),
                    name: None,
                    recursive: true,
                    source: SourceKind::default(),
                }),
                _ => yaml::from_node::<RawWatch>(item),
            };
            match raw {
                Ok(raw) if raw.path.is_empty() => {
                    self.error(Diagnostic::new("empty watch path", item.span))
                }
                Ok(raw) => {
                    let path = normalize(&base.join(&raw.path));
                    let name = raw.name.clone().unwrap_or_else(|| {
                        path.file_name().map_or_else(
                            || "root".to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        )
                    });
                    let span = item.get("name").map_or(item.span, |n| n.span);
                    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
                        self.error(
                            Diagnostic::new(format!("watch root name `{name}` must be non-empty, without `/` or control characters"), span)
                                .context("in watch"),
                        );
                    } else if roots.iter().any(|r: &WatchRoot| r.name == name) {
                        self.error(
                            Diagnostic::new(format!("two watch roots are named `{name}`"), span)
                                .context("in watch")
                                .hint("give each root a unique `name:`; the store records paths relative to it"),
                        );
                    }
                    roots.push(WatchRoot {
                        name,
                        path,
                        recursive: raw.recursive,
                        source: raw.source,
                    });
                }
                Err(e) => self.error(
                    Diagnostic::new(e.message, e.span.unwrap_or(item.span)).context("in watch"),
                ),
            }
        }
        if roots.is_empty() && self.errors.is_empty() {
            self.error(Diagnostic::new("`watch` lists no folder", node.span));
        }
        roots
    }

    fn vars(&mut self, top: &MapReader<'_>) -> BTreeMap<String, String> {
        let vars = self
            .field::<BTreeMap<String, String>>(top, "vars")
            .unwrap_or_default();
        for name in vars.keys() {
            let node = top.node.get("vars").and_then(|v| match &v.kind {
                NodeKind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.as_scalar() == Some(name))
                    .map(|(k, _)| k),
                _ => None,
            });
            let span = node.map_or(top.span_of("vars"), |n| n.span);
            if BUILTIN_VARIABLES.contains(&name.as_str()) || name == "out" {
                self.error(
                    Diagnostic::new(
                        format!("variable `{name}` would hide the built-in `{{{name}}}`"),
                        span,
                    )
                    .context("in vars")
                    .hint("choose another name"),
                );
            } else if Template::parse(&format!("{{{name}}}")).is_err() || name.contains('.') {
                self.error(
                    Diagnostic::new(format!("invalid variable name `{name}`"), span)
                        .context("in vars")
                        .hint("use letters, digits and `_`"),
                );
            }
        }
        vars
    }

    fn globs(&mut self, map: &MapReader<'_>, key: &str) -> Option<Vec<String>> {
        let node = map.node.get(key)?;
        let mut globs = Vec::new();
        for item in node.items() {
            match yaml::from_node::<String>(item) {
                Ok(text) => match compile_glob(&text) {
                    Ok(_) => globs.push(text),
                    Err(e) => self.error(
                        Diagnostic::new(format!("invalid glob `{text}`: {}", e.kind()), item.span)
                            .context(map.at(key))
                            .hint("escape a literal `[`, `{` or `*` by wrapping it in brackets, e.g. `[[]`"),
                    ),
                },
                Err(e) => self.error(Diagnostic::new(format!("`{key}`: {}", e.message), item.span).context(map.at(key))),
            }
        }
        Some(globs)
    }

    fn rules(
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
            if let Some(rule) = self.rule(&reader, vars, defaults) {
                rules.push(rule);
            }
        }
        rules
    }

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
        let events = match kinds {
            Some(kinds) if !kinds.is_empty() => {
                kinds.into_iter().fold(EventSet::default(), |mut set, k| {
                    set.insert(k);
                    set
                })
            }
            _ => EventSet::READY,
        };
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
        }
        if keykode.is_some() || map.node.get("keykode").is_some() {
            known.push("keykode".into());
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
        if output.is_some() {
            known.push("out".into());
        }
        let steps = self.steps(map, &known, &typos, output.is_some());
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
            probe,
            line: map.node.span.line,
            definition_hash: String::new(),
        };
        rule.definition_hash = rule.compute_hash();
        Some(rule)
    }

    /// A nested mapping under `key`, or an error when the value is not one.
    fn submap<'n>(
        &mut self,
        map: &MapReader<'n>,
        key: &str,
        example: &str,
    ) -> Option<MapReader<'n>> {
        let node = map.node.get(key)?;
        if !matches!(node.kind, NodeKind::Map(_)) {
            self.error(
                Diagnostic::new(format!("`{key}` takes a mapping"), node.span)
                    .context(map.at(key))
                    .hint(format!("e.g. `{key}: {example}`")),
            );
            return None;
        }
        Some(MapReader {
            node,
            place: if map.place.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", map.place)
            },
            rule: map.rule.clone(),
        })
    }

    /// A required scalar of a nested mapping, as written (`23.976` stays `23.976`).
    fn scalar(&mut self, map: &MapReader<'_>, key: &str) -> Option<String> {
        match map.node.get(key) {
            Some(node) => match node.as_scalar() {
                Some(text) => Some(text.to_string()),
                None => {
                    self.error(
                        Diagnostic::new(format!("`{key}` takes a single value"), node.span)
                            .context(map.at(key)),
                    );
                    None
                }
            },
            None => {
                self.error(
                    Diagnostic::new(format!("missing `{key}`"), map.node.span).context(map.at("")),
                );
                None
            }
        }
    }

    /// `timecode: {fps, start, at_frame, drop}`.
    fn timecode(&mut self, map: &MapReader<'_>) -> Option<TimecodeSpec> {
        let sub = self.submap(
            map,
            "timecode",
            "{fps: 24, start: \"01:00:00:00\", at_frame: 1001}",
        )?;
        let _ = self.unknown_keys(&sub, &["fps", "start", "at_frame", "drop"]);
        let fps = self.scalar(&sub, "fps");
        let start = self.scalar(&sub, "start");
        let at_frame = self.field::<i64>(&sub, "at_frame");
        let drop = self.field::<bool>(&sub, "drop");
        let (fps, start) = (fps?, start?);
        match TimecodeSpec::new(&fps, &start, at_frame, drop) {
            Ok(spec) => Some(spec),
            Err(e) => {
                let (key, message, hint) = match e {
                    TimecodeError::Fps(m) => ("fps", m, None),
                    TimecodeError::Start(m) => (
                        "start",
                        m,
                        Some("write HH:MM:SS:FF, or HH:MM:SS;FF for drop-frame at 29.97 or 59.94"),
                    ),
                    TimecodeError::Drop(m) => ("drop", m, None),
                };
                let mut d = Diagnostic::new(message, sub.span_of(key)).context(sub.at(key));
                if let Some(hint) = hint {
                    d = d.hint(hint);
                }
                self.error(d);
                None
            }
        }
    }

    /// `keykode: {start, format, at_frame}`.
    fn keykode(&mut self, map: &MapReader<'_>) -> Option<KeyKodeSpec> {
        let sub = self.submap(
            map,
            "keykode",
            "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf, at_frame: 1001}",
        )?;
        let _ = self.unknown_keys(&sub, &["start", "format", "at_frame"]);
        let start = self.scalar(&sub, "start");
        let format = self.scalar(&sub, "format").and_then(|name| {
            FilmFormat::parse(&name)
                .map_err(|e| {
                    self.error(Diagnostic::new(e, sub.span_of("format")).context(sub.at("format")))
                })
                .ok()
        });
        let at_frame = self.field::<i64>(&sub, "at_frame");
        let (start, format) = (start?, format?);
        match KeyKode::parse(&start, format) {
            Ok(start) => Some(KeyKodeSpec { start, at_frame }),
            Err(e) => {
                self.error(Diagnostic::new(e, sub.span_of("start")).context(sub.at("start")));
                None
            }
        }
    }

    /// `sequence: true` or `sequence: {expect: 1001-1048, on_gaps: hold}`.
    fn sequence(&mut self, map: &MapReader<'_>, known: &[String]) -> Option<SequenceRule> {
        let node = map.node.get("sequence")?;
        if let NodeKind::Scalar { .. } = node.kind {
            return self
                .field::<bool>(map, "sequence")
                .and_then(|on| on.then(SequenceRule::default));
        }
        let sub = self.submap(map, "sequence", "{expect: 1001-1048, on_gaps: hold}")?;
        let _ = self.unknown_keys(&sub, &["expect", "on_gaps"]);
        let on_gaps = self.field::<OnGaps>(&sub, "on_gaps").unwrap_or_default();
        let expect = match sub.node.get("expect") {
            Some(node) => {
                let template = self.template(&sub, node, "expect", known)?;
                // A literal range is checked now; one built from variables when the job fires.
                if template.variables().next().is_none()
                    && let Err(e) = crate::media::sequence::parse_range(template.source())
                {
                    self.error(Diagnostic::new(e, node.span).context(sub.at("expect")));
                }
                Some(template)
            }
            None => None,
        };
        Some(SequenceRule { expect, on_gaps })
    }

    /// `verify: {frames: "{seq.count}", timecode: "{timecode}", codec: prores, ...}`.
    fn verify(&mut self, map: &MapReader<'_>, known: &[String]) -> Option<VerifyRule> {
        let sub = self.submap(map, "verify", "{frames: \"{seq.count}\", codec: prores}")?;
        let _ = self.unknown_keys(&sub, crate::rules::verify::KEYS);
        let NodeKind::Map(entries) = &sub.node.kind else {
            return None;
        };
        let mut checks = Vec::new();
        for (key, value) in entries {
            let Some(name) = key
                .as_scalar()
                .filter(|k| crate::rules::verify::KEYS.contains(k))
            else {
                continue;
            };
            if let Some(t) = self.template(&sub, value, name, known) {
                checks.push((name.to_string(), t));
            }
        }
        Some(VerifyRule { checks })
    }

    fn regex(&mut self, map: &MapReader<'_>) -> Option<regex::bytes::Regex> {
        let text = self.field::<String>(map, "regex")?;
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

    fn duration(&mut self, map: &MapReader<'_>, key: &str) -> Option<Duration> {
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

    fn steps(
        &mut self,
        map: &MapReader<'_>,
        known: &[String],
        typos: &[&str],
        has_output: bool,
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
            (None, None) => {
                self.error(
                    Diagnostic::new(
                        "rule needs `run` (one command) or `steps` (several)",
                        map.node.span,
                    )
                    .context(map.at(""))
                    .hint("e.g. `run: [ffmpeg, -i, \"{path}\", \"{out}\"]`"),
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

    fn template(
        &mut self,
        map: &MapReader<'_>,
        node: &Node,
        key: &str,
        known: &[String],
    ) -> Option<Template> {
        let text = match &node.kind {
            NodeKind::Scalar { text, .. } => text.clone(),
            _ => {
                self.error(
                    Diagnostic::new(format!("`{key}` items must be strings"), node.span)
                        .context(map.at(key)),
                );
                return None;
            }
        };
        let template = match Template::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    Diagnostic::new(e.to_string(), self.span_within(node, e.offset))
                        .context(map.at(key)),
                );
                return None;
            }
        };
        let mut ok = true;
        for (var, offset) in template.variables() {
            let span = self.span_within(node, offset);
            if let Some(env) = var.strip_prefix("env.") {
                if std::env::var_os(env).is_none() {
                    ok = false;
                    self.error(
                        Diagnostic::new(format!("environment variable `{env}` is not set"), span)
                            .context(map.at(key))
                            .hint(format!("set `{env}` in the environment shotrouter runs in, or use a `vars:` entry")),
                    );
                }
                continue;
            }
            if known.iter().any(|k| k == var) {
                continue;
            }
            ok = false;
            let mut d = Diagnostic::new(format!("unknown template variable `{{{var}}}`"), span)
                .context(map.at(key));
            d = if var == "out" {
                d.hint("declare `output:` on the rule to get `{out}`")
            } else if var.starts_with("seq.") && !known.iter().any(|k| k == "seq.first") {
                d.hint("`{seq.*}` variables need `sequence:` on the rule")
            } else if var.starts_with("probe.") {
                d.hint("`{probe.*}` variables need `probe: true` on the rule")
            } else if (var == "timecode" || var == "keykode") && !known.iter().any(|k| k == var) {
                d.hint(format!("give the rule (or the file) a `{var}:` mapping"))
            } else {
                match did_you_mean(var, known.iter().map(String::as_str)) {
                    Some(best) => d.hint(format!("did you mean `{{{best}}}`?")),
                    None => d.hint(format!(
                        "known: {}",
                        known
                            .iter()
                            .map(|k| format!("{{{k}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )),
                }
            };
            self.error(d);
        }
        ok.then_some(template)
    }

    /// The position of a character inside a scalar, when the source shows the text verbatim
    /// (plain or quoted without escapes before it on one line); else the scalar's start.
    fn span_within(&self, node: &Node, char_offset: usize) -> Span {
        let NodeKind::Scalar { text, plain } = &node.kind else {
            return node.span;
        };
        let Some(line) = self.source.lines().nth(node.span.line.saturating_sub(1)) else {
            return node.span;
        };
        let raw: String = line.chars().skip(node.span.column - 1).collect();
        let quote = usize::from(!plain);
        let prefix: String = text.chars().take(char_offset).collect();
        let raw_after_quote: String = raw.chars().skip(quote).collect();
        if raw_after_quote.starts_with(&prefix) {
            Span {
                line: node.span.line,
                column: node.span.column + quote + char_offset,
            }
        } else {
            node.span
        }
    }
}

impl MapReader<'_> {
    /// ``in rules[2].match (rule `plates`)``, or ``in jobs`` at the top level.
    fn at(&self, key: &str) -> String {
        let place = match (self.place.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.place.clone(),
            (false, false) => format!("{}.{key}", self.place),
        };
        match &self.rule {
            Some(name) => format!("in {place} (rule `{name}`)"),
            None if place.is_empty() => "at the top level".to_string(),
            None => format!("in {place}"),
        }
    }

    /// Where the value of `key` is, or the map itself when the key is absent.
    fn span_of(&self, key: &str) -> Span {
        self.node.get(key).map_or(self.node.span, |n| n.span)
    }
}

/// Compiles one glob the way the matcher does: `*` and `?` never cross `/`; `**` does.
///
/// # Errors
/// globset's reason the pattern is invalid.
pub fn compile_glob(text: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Compiles a rule's regex for matching path bytes: Unicode mode is off, so `.` and `[^/]`
/// match any byte (non-UTF-8 names and newlines included) and `\d`, `\w` are ASCII.
///
/// # Errors
/// regex's reason.
pub fn path_regex(text: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(text)
        .unicode(false)
        .dot_matches_new_line(true)
        .build()
}

/// Parses `500ms`, `90s`, `10m`, `1h`, `1h 30m`.
///
/// # Errors
/// A hint on how to write a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>().is_ok() {
        return Err(format!(
            "add a unit: `{}s`, `{}m` or `{}ms`",
            text.trim(),
            text.trim(),
            text.trim()
        ));
    }
    humantime::parse_duration(text)
        .map_err(|_| "write a number and a unit, e.g. `500ms`, `90s`, `10m`, `1h`".to_string())
}

fn regex_error_summary(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(text)
            .to_string(),
        other => other.to_string(),
    }
}

/// The closest known name, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
