//! `verify:` on a rule: which properties of the product are checked, each a template of the
//! expected value, and its expansion for one job (`rules::media_keys` reads it from the file);
//! the comparison with what ffprobe (or a DPX/EXR header) reports is `deliver::verify`'s.

use crate::deliver::verify::Expectations;
use crate::rules::template::{Bindings, MissingVariable, Template};

/// The keys of `verify:`: the properties it can check, and `decode` (a full decode, not a
/// property).
pub const KEYS: &[&str] = &[
    "frames", "timecode", "codec", "profile", "pix_fmt", "width", "height", "fps", "comment",
    "keykode", "decode",
];

/// A rule's `verify:` mapping: key → template of the expected value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRule {
    /// (key, expected value) in file order.
    pub checks: Vec<(String, Template)>,
    /// `decode: true`: ffmpeg must decode every frame of the product.
    pub decode: bool,
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
        Ok(Expectations {
            checks,
            perfs_per_frame: None,
            stock_codes: None,
            decode: self.decode,
        })
    }
}
