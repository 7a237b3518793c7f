//! The top-level error and the exit-code policy: 2 for bad rules or usage, 1 for the rest.

use crate::route::matcher::MatcherError;
use crate::rules::RulesError;

/// Anything that stops a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules file is unreadable or invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The rules could not be compiled together.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// A configuration problem found at start-up (e.g. the inotify watch limit).
    #[error("{0}")]
    Config(String),
    /// A failure at run time.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rules(_) | Error::Matcher(_) | Error::Config(_) => 2,
            Error::Runtime(_) => 1,
        }
    }
}
