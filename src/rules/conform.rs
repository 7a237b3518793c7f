//! The file's `conform:` block: the sequence review the daemon keeps up to date. When a rule's
//! product of a shot in a cut is published, or a cut gets a new revision, the watcher waits
//! `settle` for the burst to end and conforms the cut again (`shotrouter conform`, as a job).
//! Read by `conform_keys` with a refusal at each bad value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::rules::template::{Bindings, Template};

/// How long the watcher waits after the last trigger before it conforms: a burst of ten shots
/// published within a minute makes one conform, not ten.
pub const DEFAULT_CONFORM_SETTLE: Duration = Duration::from_secs(30);

/// The name a conform job has in the store (`shotrouter jobs --rule conform`); no rule of a
/// file with a `conform:` block may take it.
pub const CONFORM_RULE: &str = "conform";

/// The variables an `output:` template of the block may use, besides `vars:` and `{env.*}`.
pub const CONFORM_VARIABLES: &[&str] = &["cut.name", "cut.revision"];

/// The conformed movie's codec (`shotrouter conform --codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConformCodec {
    /// ProRes 422 HQ: a review movie.
    #[default]
    Prores,
    /// FFV1, lossless.
    Ffv1,
}

impl ConformCodec {
    /// As `--codec` takes it.
    pub fn as_arg(self) -> &'static str {
        match self {
            ConformCodec::Prores => "prores",
            ConformCodec::Ffv1 => "ffv1",
        }
    }
}

/// The `conform:` block of a rules file.
#[derive(Debug, Clone)]
pub struct ConformSettings {
    /// The rule whose published products are the shots.
    pub from: String,
    /// Where the movie goes; relative paths are against `base`.
    pub output: Template,
    /// The rules file's folder.
    pub base: PathBuf,
    /// The `vars:` of the file, for `output`.
    pub vars: Vec<(String, String)>,
    /// The movie's codec.
    pub codec: ConformCodec,
    /// The one cut conformed; `None`: every cut in the store.
    pub cut: Option<String>,
    /// Quiet time after the last trigger before the conform is queued.
    pub settle: Duration,
}

impl ConformSettings {
    /// A stable hash of what a conform job runs (xxh3, hex): its "rule definition" in the
    /// store, as a rule's is.
    pub fn definition_hash(&self) -> String {
        let canonical = format!(
            "{}|{}|{:?}|{:?}",
            self.from,
            self.output.source(),
            self.codec,
            self.cut
        );
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
    }

    /// Whether the block conforms cut `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.cut.as_deref().is_none_or(|c| c == name)
    }

    /// The movie of revision `revision` of cut `name`, absolute.
    ///
    /// # Errors
    /// A variable without a value (an `{env.*}` unset since the load).
    pub fn output_for(&self, name: &str, revision: i64) -> Result<PathBuf, String> {
        let mut vars = Bindings::default();
        for (k, v) in &self.vars {
            vars.insert(k.clone(), v.as_bytes());
        }
        // A cut's name is a file name here: it never climbs out of the folder.
        vars.insert("cut.name", name.replace('/', "_").as_bytes());
        vars.insert("cut.revision", revision.to_string());
        let text = self
            .output
            .expand(&vars)
            .map_err(|e| format!("`conform.output`: {e}"))?;
        Ok(crate::rules::normalize(&self.base.join(Path::new(&text))))
    }
}
