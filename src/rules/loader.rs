//! Loading: a positioned YAML tree in, a [`RuleFile`] or every problem (each at its
//! `FILE:LINE:COL`) out.
//!
//! The [`Loader`] reads the tree map by map through a [`MapReader`], recording each problem and
//! carrying on, so one bad value hides no other. This file holds that machinery and the
//! top-level keys; each section of a rule has its own file (`watch`, `rule_keys`, `media_keys`,
//! `verify`). Cross-rule checks (duplicate names) run as the list is read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::media::keykode::KeyKodeSpec;
use crate::media::timecode::TimecodeSpec;
use crate::rules::diag::{Diagnostic, Diagnostics};
use crate::rules::limits::{self, Limits, ReadError};
use crate::rules::lines::Lines;
use crate::rules::model::{BUILTIN_VARIABLES, DEFAULT_IGNORE, RuleFile};
use crate::rules::path::{absolute, normalize};
use crate::rules::syntax::{compile_glob, did_you_mean};
use crate::rules::template::Template;
use crate::rules::yaml::{self, Node, NodeKind, Span};

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "watch", "ignore", "vars", "jobs", "outputs", "rules", "timecode", "keykode",
    "notify", "slurm", "cuts", "conform", "lineage",
];

/// Why a rules file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file has errors; each is positioned.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The file could not be read, or is past a limit.
    #[error(transparent)]
    File(#[from] ReadError),
}

/// Reads and validates a rules file.
///
/// # Errors
/// [`RulesError::File`] when the file cannot be read, [`RulesError::Invalid`] with every problem.
/// The file is read only when it is within the [`Limits`] (`SHOTROUTER_MAX_RULES_BYTES`,
/// `SHOTROUTER_MAX_RULES`), so that no file takes the process past about 1 GiB.
///
/// # Errors
/// [`RulesError::File`] when the file cannot be read or is past or without a sane limit,
/// [`RulesError::Invalid`] with every problem.
pub fn load(path: &Path) -> Result<RuleFile, RulesError> {
    load_within(path, Limits::from_env()?)
}

/// [`load`] under the given limits instead of the environment's.
///
/// # Errors
/// As [`load`].
pub fn load_within(path: &Path, limits: Limits) -> Result<RuleFile, RulesError> {
    let source = limits::read(path, limits.max_bytes)?;
    let base = path
        .parent()
        .map(absolute)
        .unwrap_or_else(|| absolute(Path::new(".")));
    parse_within(path, &source, &base, limits).map_err(RulesError::Invalid)
}

/// Validates rules text; relative watch paths are resolved against `base`.
///
/// # Errors
/// Every problem found, positioned in `source`.
pub fn parse(path: &Path, source: &str, base: &Path) -> Result<RuleFile, Diagnostics> {
    parse_within(path, source, base, Limits::default())
}

/// [`parse`] under `limits` (its rule count; the size is `load`'s to check).
fn parse_within(
    path: &Path,
    source: &str,
    base: &Path,
    limits: Limits,
) -> Result<RuleFile, Diagnostics> {
    let mut loader = Loader {
        source,
        lines: Lines::new(source),
        errors: Vec::new(),
        warnings: Vec::new(),
        captures_unknown: false,
        source_has_farm_block: false,
        limits,
        regex_bytes: 0,
    };
    let file = loader.file(base);
    let mut report = Diagnostics::empty(path.to_path_buf(), source.to_string());
    report.items = loader.warnings;
    if loader.errors.is_empty()
        && let Some(mut file) = file
    {
        report.items.sort_by_key(|d| (d.span.line, d.span.column));
        file.path = path.to_path_buf();
        file.warnings = report;
        return Ok(file);
    }
    // A file with errors reports only those: its warnings come once it loads, so an error
    // report (and the daemon's reload log) stays about what stops the file.
    report.items = loader.errors;
    report.items.sort_by_key(|d| (d.span.line, d.span.column));
    Err(report)
}

/// Top-level `timecode:` and `keykode:`, inherited by rules that give none.
pub(super) struct Defaults {
    pub(super) timecode: Option<TimecodeSpec>,
    pub(super) keykode: Option<KeyKodeSpec>,
    pub(super) farm: Option<crate::rules::farm::FarmSettings>,
}

/// Reads a whole rules file, collecting every problem.
pub(super) struct Loader<'s> {
    pub(super) source: &'s str,
    /// The source's lines, indexed once for [`Loader::span_within`].
    lines: Lines<'s>,
    pub(super) errors: Vec<Diagnostic>,
    /// Problems that do not stop the file from loading (see [`crate::rules::diag::Severity::Warning`]).
    pub(super) warnings: Vec<Diagnostic>,
    /// Set while reading a rule whose `regex:` did not compile: its captures are unknown, so a
    /// template naming one is not reported (with a misleading "did you mean") on top.
    pub(super) captures_unknown: bool,
    /// The file has a `slurm:` block (reported where it is when broken).
    pub(super) source_has_farm_block: bool,
    /// The most rules the file may hold, and what its regexes may compile to.
    pub(super) limits: Limits,
    /// What the `regex:` values read so far compile to, against `limits.max_regex_bytes`.
    pub(super) regex_bytes: usize,
}

/// Reads one YAML mapping field by field, recording each problem and carrying on.
pub(super) struct MapReader<'n> {
    pub(super) node: &'n Node,
    /// Where the map is, e.g. `rules[2]`; empty at the top level.
    pub(super) place: String,
    /// The rule's name, when the map is a rule that has one.
    pub(super) rule: Option<String>,
}

impl<'s> Loader<'s> {
    /// Records a problem; loading carries on so every problem of the file is reported.
    pub(super) fn error(&mut self, diagnostic: Diagnostic) {
        self.errors.push(diagnostic);
    }

    /// Records a problem that does not stop the file from loading.
    pub(super) fn warn(&mut self, diagnostic: Diagnostic) {
        self.warnings.push(diagnostic.warning());
    }

    /// The whole file: top-level keys, then each section.
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
                let mut d = Diagnostic::new(format!("invalid YAML: {}", e.message), e.span);
                d.hint = e.hint;
                self.error(d);
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
            farm: self.slurm_block(&top, base),
        };
        self.source_has_farm_block = top.node.get("slurm").is_some();
        let rules = self.rules(&top, &vars, &defaults);
        let notify = self.notify(&top).unwrap_or_default();
        let farm = defaults.farm;
        let cuts = self.cuts_block(&top);
        let conform = self.conform_block(&top, base, &rules, &vars, top.node.get("cuts").is_some());
        let lineage = self.lineage_block(&top);
        Some(RuleFile {
            path: PathBuf::new(),
            warnings: Diagnostics::empty(PathBuf::new(), String::new()),
            watch,
            ignore,
            vars,
            jobs,
            outputs,
            rules,
            notify,
            farm,
            cuts,
            conform,
            lineage,
        })
    }

    /// Deserializes one field, reporting a type error at its value; `None` when absent or bad.
    pub(super) fn field<T: DeserializeOwned>(
        &mut self,
        map: &MapReader<'_>,
        key: &str,
    ) -> Option<T> {
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
    pub(super) fn unknown_keys(
        &mut self,
        map: &MapReader<'_>,
        known: &[&'static str],
    ) -> Vec<&'static str> {
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

    /// `vars:`, checked so no user variable hides a built-in.
    fn vars(&mut self, top: &MapReader<'_>) -> BTreeMap<String, String> {
        let vars = self
            .field::<BTreeMap<String, String>>(top, "vars")
            .unwrap_or_default();
        // Where each name is written, indexed once: a search per name is quadratic.
        let mut written: HashMap<&str, Span> = HashMap::new();
        if let Some(NodeKind::Map(entries)) = top.node.get("vars").map(|v| &v.kind) {
            for (key, _) in entries {
                if let Some(name) = key.as_scalar() {
                    written.entry(name).or_insert(key.span);
                }
            }
        }
        for name in vars.keys() {
            let span = written
                .get(name.as_str())
                .copied()
                .unwrap_or_else(|| top.span_of("vars"));
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

    /// A glob or a list of globs, each compiled as the matcher will.
    pub(super) fn globs(&mut self, map: &MapReader<'_>, key: &str) -> Option<Vec<String>> {
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

    /// A nested mapping under `key`, or an error when the value is not one.
    pub(super) fn submap<'n>(
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
    pub(super) fn scalar(&mut self, map: &MapReader<'_>, key: &str) -> Option<String> {
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

    /// A template, parsed and checked against the variables the rule will have (`known`).
    pub(super) fn template(
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
            if self.captures_unknown {
                continue;
            }
            let mut d = Diagnostic::new(format!("unknown template variable `{{{var}}}`"), span)
                .context(map.at(key));
            d = if var == "out" {
                d.hint("declare `output:` on the rule to get `{out}`")
            } else if var.starts_with("seq.") && !known.iter().any(|k| k == "seq.first") {
                d.hint("`{seq.*}` variables need `sequence:` on the rule")
            } else if let Some(hint) = super::frames::cut_variable_hint(var, known) {
                d.hint(hint)
            } else if var.starts_with("probe.") {
                d.hint("`{probe.*}` variables need `probe: true` on the rule")
            } else if (var == "timecode" || var == "keykode") && !known.iter().any(|k| k == var) {
                d.hint(format!("give the rule (or the file) a `{var}:` mapping"))
            } else if let Some(hint) = media_variable_hint(var, known) {
                d.hint(hint)
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
    pub(super) fn span_within(&self, node: &Node, char_offset: usize) -> Span {
        let NodeKind::Scalar { text, plain } = &node.kind else {
            return node.span;
        };
        let Some(raw) = self.lines.rest_of_line(node.span.line, node.span.column) else {
            return node.span;
        };
        // Compared char by char, as far as the offset only: the work stays proportional to the
        // template, not to its line (a whole file may be one flow-style line).
        let quote = usize::from(!plain);
        let mut raw = raw.chars().skip(quote);
        if text
            .chars()
            .take(char_offset)
            .all(|c| raw.next() == Some(c))
        {
            Span {
                line: node.span.line,
                column: node.span.column + quote + char_offset,
            }
        } else {
            node.span
        }
    }
}

/// Why a `{keykode.*}`, `{frame.*}` or `{avid.*}` variable is not available to this rule.
fn media_variable_hint(var: &str, known: &[String]) -> Option<String> {
    let has = |name: &str| known.iter().any(|k| k == name);
    if matches!(var, "keykode.mfg" | "keykode.type") && has("keykode") {
        return Some("headers store the stock as numbers: give `mfg:` and `type:` in `keykode:`, e.g. `{start: \"KU 22 9012 1234+05\", mfg: 1, type: 22}`".into());
    }
    if var == "avid.bitrate" && has("avid.profile") {
        return Some(
            "DNxHR takes its rate from the profile: pass `-profile:v {avid.profile}` and no `-b:v`"
                .into(),
        );
    }
    let needs = if var.starts_with("keykode.") || var == "frame.keykode" {
        "keykode"
    } else if var == "frame.timecode" {
        "timecode"
    } else if var.starts_with("avid.") && !has("avid.profile") {
        return Some(
            "`{avid.*}` variables need `avid: {codec: \"DNxHD 175x\", fps: 23.976}` on the rule"
                .into(),
        );
    } else {
        return None;
    };
    (!has(needs)).then(|| format!("give the rule (or the file) a `{needs}:` mapping"))
}

impl MapReader<'_> {
    /// ``in rules[2].match (rule `plates`)``, or ``in jobs`` at the top level.
    pub(super) fn at(&self, key: &str) -> String {
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
    pub(super) fn span_of(&self, key: &str) -> Span {
        self.node.get(key).map_or(self.node.span, |n| n.span)
    }
}
