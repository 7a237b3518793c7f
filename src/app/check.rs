//! `shotrouter check`: loads a rules file as the daemon would and reports every error and
//! warning, as text (stderr, positioned like a compiler's) or as one JSON object for scripts.
//!
//! Warnings (a program not on `PATH`, a missing watch root, `verify:` without `output:`, an
//! unusual `fps`) leave the exit status 0, because the daemon runs with them; `--strict` makes
//! them errors (exit 2) for CI, where a rules file should be clean before it ships.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::error::Error;
use crate::route::matcher::RuleSet;
use crate::rules::diag::{Diagnostic, Diagnostics, Severity};
use crate::rules::{self, RulesError};
use crate::source::choose::{self, Choice};

/// The exit status of a file with errors (or with warnings under `--strict`).
const INVALID: u8 = 2;

/// `check --json`: the whole verdict in one object.
#[derive(Debug, Serialize)]
struct Report {
    /// No errors (and, with `--strict`, no warnings).
    ok: bool,
    /// The rules file, as given.
    file: String,
    /// How many rules loaded (0 when the file has errors).
    rules: usize,
    errors: Vec<Item>,
    warnings: Vec<Item>,
    /// Each watch root and the source that would watch it (empty when the file has errors).
    roots: Vec<Root>,
}

/// One error or warning; `line` and `column` are null for a problem with no place in the file
/// (it cannot be read, a root's file system).
#[derive(Debug, Serialize)]
struct Item {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    /// The rule it is in, by name.
    rule: Option<String>,
    message: String,
    /// Where in the file's structure, e.g. ``in rules[0].run (rule `review`)``.
    note: Option<String>,
    hint: Option<String>,
}

/// One watch root as the daemon would watch it.
#[derive(Debug, Serialize)]
struct Root {
    name: String,
    path: String,
    /// The file system (`ext4`, `nfs4`, `fuse`...).
    fs: String,
    /// `inotify` or `poll`.
    source: &'static str,
    /// What the rules file asked for: `auto`, `inotify` or `poll`.
    configured: &'static str,
    /// The root does not exist (yet): `fs` is its nearest existing folder's.
    missing: bool,
}

/// Runs `check`.
///
/// # Errors
/// In text mode, the rules' errors (exit 2); a failure to write to stdout.
pub fn check(path: &Path, strict: bool, json: bool) -> Result<ExitCode, Error> {
    let loaded = rules::load(path)
        .map_err(Error::from)
        .and_then(|file| RuleSet::compile(file).map_err(Error::from));
    if json {
        let report = match &loaded {
            Ok(set) => report_of(path, set, strict),
            Err(e) => failed_report(path, e),
        };
        let text = serde_json::to_string_pretty(&report).map_err(Error::failed)? + "\n";
        write_stdout(&text)?;
        return Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(INVALID)
        });
    }
    let set = loaded?;
    let choices: Vec<Choice> = set.file.watch.iter().map(choose::choose).collect();
    let warnings = &set.file.warnings;
    if !warnings.items.is_empty() {
        eprintln!("{warnings}");
    }
    let root_warnings = choices.iter().filter(|c| c.warning().is_some()).count();
    let farm = farm_warning(&set);
    if let Some(warning) = &farm {
        eprintln!("warning: {warning}");
    }
    let count = warnings.items.len() + root_warnings + usize::from(farm.is_some());
    if strict && count > 0 {
        for (root, choice) in set.file.watch.iter().zip(&choices) {
            if let Some(warning) = choice.warning() {
                eprintln!("warning: root {}: {warning}", root.name);
            }
        }
        eprintln!(
            "{}: {count} warning{} with --strict: not ok",
            path.display(),
            if count == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(INVALID));
    }
    let rules = set.file.rules.len();
    let mut text = format!(
        "{}: ok, {rules} rule{}, watching {}\n",
        path.display(),
        if rules == 1 { "" } else { "s" },
        set.roots_text()
    );
    for (root, choice) in set.file.watch.iter().zip(&choices) {
        text += &format!(
            "  root {}: {} ({})\n",
            root.name,
            root.path.display(),
            choice.describe()
        );
        if let Some(warning) = choice.warning() {
            text += &format!("  warning: root {}: {warning}\n", root.name);
        }
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// When a rule runs on Slurm and its tools are installed: whether the cluster answers
/// (`sbatch` missing is already a warning of the rule).
fn farm_warning(set: &RuleSet) -> Option<String> {
    let rule = set.file.rules.iter().find(|r| r.slurm.is_some())?;
    crate::os::program::find_program(std::ffi::OsStr::new("squeue"))?;
    let client = crate::exec::slurm::client::Client::default();
    client.ping().err().map(|e| {
        format!(
            "rule `{}` runs on Slurm, but the cluster does not answer: {e}; check `SLURM_CONF` and that slurmctld runs",
            rule.name
        )
    })
}

fn write_stdout(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(Error::io("cannot write to stdout"))
}

fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn item(file: &Path, d: &Diagnostic) -> Item {
    Item {
        file: lossy(file),
        line: Some(d.span.line),
        column: Some(d.span.column),
        rule: d.rule.clone(),
        message: d.message.clone(),
        note: d.context.clone(),
        hint: d.hint.clone(),
    }
}

fn items(diags: &Diagnostics, severity: Severity) -> Vec<Item> {
    diags
        .items
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| item(&diags.path, d))
        .collect()
}

fn report_of(path: &Path, set: &RuleSet, strict: bool) -> Report {
    let mut warnings = items(&set.file.warnings, Severity::Warning);
    let mut roots = Vec::new();
    for root in &set.file.watch {
        let choice = choose::choose(root);
        if let Some(warning) = choice.warning() {
            warnings.push(Item {
                file: lossy(path),
                line: None,
                column: None,
                rule: None,
                message: format!("root {}: {warning}", root.name),
                note: None,
                hint: None,
            });
        }
        roots.push(Root {
            name: root.name.clone(),
            path: lossy(&root.path),
            fs: choice.fs.clone(),
            source: choice.source.as_str(),
            configured: choice.configured.as_str(),
            missing: choice.missing,
        });
    }
    Report {
        ok: !strict || warnings.is_empty(),
        file: lossy(path),
        rules: set.file.rules.len(),
        errors: Vec::new(),
        warnings,
        roots,
    }
}

fn failed_report(path: &Path, error: &Error) -> Report {
    let (errors, warnings) = match error {
        Error::Rules(RulesError::Invalid(diags)) => (
            items(diags, Severity::Error),
            items(diags, Severity::Warning),
        ),
        other => (
            vec![Item {
                file: lossy(path),
                line: None,
                column: None,
                rule: None,
                message: other.to_string(),
                note: None,
                hint: None,
            }],
            Vec::new(),
        ),
    };
    Report {
        ok: false,
        file: lossy(path),
        rules: 0,
        errors,
        warnings,
        roots: Vec::new(),
    }
}
