//! Turns "rule R matched file F" into a concrete job: its variables, where its product goes,
//! and each step's argv. `explain` and the daemon share this, so what `explain` shows is
//! exactly what runs.
//!
//! Products are written to a hidden temp name beside the final one that keeps its extension
//! (ffmpeg picks the container from it), and renamed into place only on success.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::matcher::{RuleSet, path_bindings};
use crate::rules::normalize;
use crate::template::{Bindings, MissingVariable};

/// A job ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Index of the rule in the rule set.
    pub rule: usize,
    /// Every variable, including `{out}` when the rule has an output.
    pub vars: Bindings,
    /// The product, when the rule declares `output:`.
    pub output: Option<OutputPaths>,
    /// Each step's argv.
    pub steps: Vec<Vec<OsString>>,
}

/// Where a product is written and where it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    /// The published path.
    pub final_path: PathBuf,
    /// The hidden temp path the commands write (`{out}`).
    pub temp_path: PathBuf,
}

/// Why a matched rule cannot become a job for this file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A variable has no value for this file.
    #[error(transparent)]
    Missing(#[from] MissingVariable),
    /// The output would land outside the watch roots and the `outputs:` folders.
    #[error("output `{}` is outside the watch roots and `outputs:` folders ({})", output.display(), allowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    OutsideRoots {
        /// The output, normalized.
        output: PathBuf,
        /// Where outputs may go.
        allowed: Vec<PathBuf>,
    },
    /// The output template expanded to a folder, not a file.
    #[error("output `{}` names no file", .0.display())]
    NoFileName(PathBuf),
}

/// Plans rule `rule` for the file `root`/`rel`; `job_tag` makes the temp name unique per job.
///
/// # Errors
/// See [`PlanError`].
pub fn plan(
    set: &RuleSet,
    rule_index: usize,
    root: &Path,
    rel: &Path,
    job_tag: &str,
) -> Result<Plan, PlanError> {
    let rule = &set.file.rules[rule_index];
    let mut vars = path_bindings(root, rel);
    vars.insert("rule", rule.name.as_bytes());
    for (name, value) in &set.file.vars {
        vars.insert(name.clone(), value.as_bytes());
    }
    if let Some(regex) = &rule.regex
        && let Some(captures) = regex.captures(rel.as_os_str().as_bytes())
    {
        for name in regex.capture_names().flatten() {
            if let Some(m) = captures.name(name) {
                vars.insert(name, m.as_bytes());
            }
        }
    }
    let output = match &rule.output {
        Some(template) => {
            let expanded = PathBuf::from(template.expand(&vars)?);
            let final_path = normalize(&root.join(expanded));
            let allowed: Vec<PathBuf> = allowed_output_roots(set);
            if !allowed
                .iter()
                .any(|a| final_path.starts_with(a) && final_path != *a)
            {
                return Err(PlanError::OutsideRoots {
                    output: final_path,
                    allowed,
                });
            }
            let temp_path = temp_path(&final_path, job_tag)
                .ok_or_else(|| PlanError::NoFileName(final_path.clone()))?;
            vars.insert("out", temp_path.as_os_str().as_bytes());
            Some(OutputPaths {
                final_path,
                temp_path,
            })
        }
        None => None,
    };
    let steps = rule
        .steps
        .iter()
        .map(|step| {
            step.iter()
                .map(|t| t.expand(&vars))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        rule: rule_index,
        vars,
        output,
        steps,
    })
}

/// The watch roots and the `outputs:` folders: the only places a product may be published.
pub fn allowed_output_roots(set: &RuleSet) -> Vec<PathBuf> {
    set.file
        .watch
        .iter()
        .map(|w| w.path.clone())
        .chain(set.file.outputs.iter().cloned())
        .collect()
}

/// `dir/.name.TAG.ext` for `dir/name.ext`: hidden (ignored by the default rules), in the same
/// folder (so the final rename is atomic), with the same extension (so ffmpeg picks the format).
pub fn temp_path(final_path: &Path, tag: &str) -> Option<PathBuf> {
    let stem = final_path.file_stem()?;
    let mut name = b".".to_vec();
    name.extend_from_slice(stem.as_bytes());
    name.extend_from_slice(b".");
    name.extend_from_slice(tag.as_bytes());
    if let Some(ext) = final_path.extension() {
        name.push(b'.');
        name.extend_from_slice(ext.as_bytes());
    }
    Some(final_path.with_file_name(OsString::from_vec(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_path_is_hidden_beside_and_keeps_extension() {
        assert_eq!(
            temp_path(Path::new("/s/review/sh010.mov"), "sr-7"),
            Some(PathBuf::from("/s/review/.sh010.sr-7.mov"))
        );
        assert_eq!(
            temp_path(Path::new("/s/README"), "t"),
            Some(PathBuf::from("/s/.README.t"))
        );
    }
}
