//! Routes a path to the rules it triggers: every glob of every rule in one `GlobSet`, every
//! regex in one bytes `RegexSet`, built once per rules file and swapped whole on reload.
//!
//! A lookup runs each set once and merges their sorted hit lists, so its cost grows with the
//! number of *matching* rules, not the number of rules. Per-rule regexes run only to extract the
//! captures of rules that already matched. Paths are bytes throughout: non-UTF-8 names match.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use globset::{GlobSet, GlobSetBuilder};
use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::rules::template::Bindings;
use crate::rules::{self, EventKind, EventSet, RuleFile};

/// A compiled rules file.
#[derive(Debug)]
pub struct RuleSet {
    /// The rules file it was compiled from.
    pub file: RuleFile,
    /// One pattern per ignore glob, then per rule glob, then per rule regex, all in one
    /// automaton: a single pass over the path's bytes answers every rule at once.
    patterns: RegexSet,
    /// What each pattern stands for, by index.
    owners: Vec<Owner>,
    /// The ignore globs alone, for checking folders.
    ignore: GlobSet,
    /// Per rule, whether a template uses `{cut.*}`: read once here, not per planned job.
    cut_variables: Vec<bool>,
    /// Per rule, the index of its regex's `shot` group: taken by index, no name look-up per job.
    shot_groups: Vec<Option<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Ignore,
    Glob(usize),
    Regex(usize),
}

/// Why a validated rules file could not be compiled (only size limits can do this).
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// globset refused a glob.
    #[error("cannot compile the globs of `{}`: {error}", file.display())]
    Globs {
        /// globset's reason.
        error: globset::Error,
        /// The rules file.
        file: PathBuf,
    },
    /// regex refused the combined set.
    #[error("cannot compile the patterns of `{}` together: {error}", file.display())]
    Regexes {
        /// regex's reason.
        error: regex::Error,
        /// The rules file.
        file: PathBuf,
    },
}

/// Reusable buffers for [`RuleSet::route_into`], so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    from_globs: Vec<usize>,
    from_regexes: Vec<usize>,
}

impl RuleSet {
    /// Compiles a loaded rules file.
    ///
    /// # Errors
    /// Only when the combined set exceeds the regex library's size limits.
    pub fn compile(file: RuleFile) -> Result<RuleSet, MatcherError> {
        let glob_error = |error| MatcherError::Globs {
            error,
            file: file.path.clone(),
        };
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        let mut ignore = GlobSetBuilder::new();
        for glob in &file.ignore {
            // `dir/**` too, so that everything under an ignored folder is ignored.
            for text in [glob.clone(), format!("{}/**", glob.trim_end_matches('/'))] {
                let compiled = rules::compile_glob(&text).map_err(glob_error)?;
                patterns.push(compiled.regex().to_string());
                owners.push(Owner::Ignore);
                ignore.add(compiled);
            }
        }
        for (index, rule) in file.rules.iter().enumerate() {
            for glob in &rule.globs {
                patterns.push(
                    rules::compile_glob(glob)
                        .map_err(glob_error)?
                        .regex()
                        .to_string(),
                );
                owners.push(Owner::Glob(index));
            }
        }
        for (index, rule) in file.rules.iter().enumerate() {
            if let Some(regex) = &rule.regex {
                patterns.push(regex.as_str().to_string());
                owners.push(Owner::Regex(index));
            }
        }
        let patterns = RegexSetBuilder::new(&patterns)
            .unicode(false)
            // A newline is a legal byte in a file name; globset compiles its globs this way too.
            .dot_matches_new_line(true)
            // Hundreds of rules need a larger lazy-DFA cache than the default to stay on the
            // fast path; this is memory per rules file, not per path.
            .dfa_size_limit(64 << 20)
            .size_limit(64 << 20)
            .build()
            .map_err(|error| MatcherError::Regexes {
                error,
                file: file.path.clone(),
            })?;
        Ok(RuleSet {
            patterns,
            owners,
            ignore: ignore.build().map_err(glob_error)?,
            cut_variables: file.rules.iter().map(|r| r.uses_cut_variables()).collect(),
            shot_groups: file
                .rules
                .iter()
                .map(|r| {
                    r.regex
                        .as_ref()
                        .and_then(|x| x.capture_names().position(|n| n == Some("shot")))
                })
                .collect(),
            file,
        })
    }

    /// The index of rule `index`'s `shot` capture group, if its regex has one.
    pub fn shot_group(&self, index: usize) -> Option<usize> {
        self.shot_groups.get(index).copied().flatten()
    }

    /// Whether rule `index`'s templates use a `{cut.*}` variable.
    pub fn uses_cut_variables(&self, index: usize) -> bool {
        self.cut_variables.get(index).copied().unwrap_or(false)
    }

    /// The ignore globs, for the watcher's folder checks.
    pub fn ignore_set(&self) -> &GlobSet {
        &self.ignore
    }

    /// The watch roots' paths, comma-separated, for messages and logs.
    pub fn roots_text(&self) -> String {
        let roots: Vec<String> = self
            .file
            .watch
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        roots.join(", ")
    }

    /// Every event some rule fires on.
    pub fn events(&self) -> EventSet {
        self.file
            .rules
            .iter()
            .fold(EventSet::default(), |all, r| all.union(r.events))
    }

    /// The index of the rule named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.file.rules.iter().position(|r| r.name == name)
    }

    /// Whether `rel` (relative to its watch root), or a folder above it, is ignored.
    pub fn is_ignored(&self, rel: &Path) -> bool {
        self.ignore.is_match(rel)
    }

    /// The rules `rel` triggers for `event`, in file order, honouring `stop`.
    pub fn route(&self, rel: &Path, event: EventKind) -> Vec<usize> {
        let mut out = Vec::new();
        self.route_into(rel, event, &mut Scratch::default(), &mut out);
        out
    }

    /// Like [`route`](Self::route), reusing buffers: the daemon's hot path.
    pub fn route_into(
        &self,
        rel: &Path,
        event: EventKind,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        scratch.from_globs.clear();
        scratch.from_regexes.clear();
        let rules = &self.file.rules;
        // Owners are laid out ignore, globs, regexes, each ascending, so hits come out sorted.
        for hit in self.patterns.matches(rel.as_os_str().as_bytes()).iter() {
            match self.owners[hit] {
                Owner::Ignore => return,
                Owner::Glob(rule) => {
                    if scratch.from_globs.last() != Some(&rule) {
                        scratch.from_globs.push(rule);
                    }
                }
                Owner::Regex(rule) => scratch.from_regexes.push(rule),
            }
        }
        // Merge two ascending lists: a rule matches when each of its conditions present is met.
        let (a, b) = (&scratch.from_globs, &scratch.from_regexes);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x == y => {
                    i += 1;
                    j += 1;
                    Some(x)
                }
                (Some(&x), Some(&y)) if x < y => {
                    i += 1;
                    rules[x].regex.is_none().then_some(x)
                }
                (Some(&x), None) => {
                    i += 1;
                    rules[x].regex.is_none().then_some(x)
                }
                (_, Some(&y)) => {
                    j += 1;
                    rules[y].globs.is_empty().then_some(y)
                }
                (None, None) => None,
            };
            if let Some(rule) = next
                && rules[rule].events.contains(event)
            {
                out.push(rule);
                if rules[rule].stop {
                    break;
                }
            }
        }
    }

    /// The watch root that contains `path`, and `path` relative to it; the deepest root wins.
    pub fn locate<'p>(&self, path: &'p Path) -> Option<(&Path, &'p Path)> {
        self.file
            .watch
            .iter()
            .filter_map(|root| {
                path.strip_prefix(&root.path)
                    .ok()
                    .map(|rel| (root.path.as_path(), rel))
            })
            .filter(|(_, rel)| !rel.as_os_str().is_empty())
            .min_by_key(|(_, rel)| rel.as_os_str().len())
    }
}

/// The built-in variables of a path: `path rel root dir name stem ext frame`.
pub fn path_bindings(root: &Path, rel: &Path) -> Bindings {
    let path = root.join(rel);
    let mut vars = Bindings::default();
    vars.insert("root", root.as_os_str().as_bytes());
    vars.insert("rel", rel.as_os_str().as_bytes());
    vars.insert("dir", path.parent().unwrap_or(root).as_os_str().as_bytes());
    let name = path.file_name().unwrap_or_default();
    vars.insert("name", name.as_bytes());
    // `a.tar.gz` → stem `a.tar`, ext `gz`; `.hidden` has no ext.
    let stem = path.file_stem().unwrap_or_default();
    vars.insert("stem", stem.as_bytes());
    vars.insert("ext", path.extension().unwrap_or_default().as_bytes());
    if let Some(frame) = frame_number(stem) {
        vars.insert("frame", frame);
    }
    vars.insert("path", path.into_os_string().into_vec());
    vars
}

/// The trailing frame number of a stem such as `sh010_comp.1001` or `plate_-005`, padding kept.
pub fn frame_number(stem: &OsStr) -> Option<&[u8]> {
    static FRAME: LazyLock<regex::bytes::Regex> =
        LazyLock::new(|| regex::bytes::Regex::new(r"[._](-?[0-9]+)$").expect("constant regex"));
    FRAME
        .captures(stem.as_bytes())
        .and_then(|c| c.get(1))
        .map(|m| m.as_bytes())
}

#[cfg(test)]
mod tests;
