//! `verify:` on a rule: which properties of the product are checked, each a template of the
//! expected value. Reading the mapping from `rules.yaml` and expanding it for one job live here;
//! the comparison with what ffprobe reports is `deliver::verify`'s.

use crate::deliver::verify::Expectations;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::template::{Bindings, MissingVariable, Template};
use crate::rules::yaml::NodeKind;

/// The properties `verify:` can check, by their key in the rules file.
pub const KEYS: &[&str] = &[
    "frames", "timecode", "codec", "profile", "pix_fmt", "width", "height", "fps", "comment",
];

/// A rule's `verify:` mapping: key → template of the expected value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRule {
    /// (key, expected value) in file order.
    pub checks: Vec<(String, Template)>,
}

impl VerifyRule {
    /// Expands every expectation for one job.
    ///
    /// # Errors
    /// A variable without a value for this job.
    pub fn expand(&self, vars: &Bindings) -> Result<Expectations, MissingVariable> {
        let checks = self
            .checks
            .iter()
            .map(|(key, t)| {
                t.expand(vars)
                    .map(|v| (key.clone(), v.to_string_lossy().into_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Expectations { checks })
    }
}

impl Loader<'_> {
    /// `verify: {frames: "{seq.count}", timecode: "{timecode}", codec: prores, ...}`.
    pub(super) fn verify(&mut self, map: &MapReader<'_>, known: &[String]) -> Option<VerifyRule> {
        let sub = self.submap(map, "verify", "{frames: \"{seq.count}\", codec: prores}")?;
        let _ = self.unknown_keys(&sub, KEYS);
        let NodeKind::Map(entries) = &sub.node.kind else {
            return None;
        };
        let mut checks = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.as_scalar().filter(|k| KEYS.contains(k)) else {
                continue;
            };
            if let Some(t) = self.template(&sub, value, name, known) {
                checks.push((name.to_string(), t));
            }
        }
        Some(VerifyRule { checks })
    }
}
