//! The top-level error and the exit-code policy: 2 for bad rules, usage or set-up, 1 for the
//! rest. Errors from below are wrapped, not flattened to text, so `source()` still leads to the
//! cause (the store's `postgres::Error`, the OS's errno) for whoever reports or tests it.

use crate::route::matcher::MatcherError;
use crate::rules::RulesError;

/// A lower layer's error, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Anything that stops a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules file is unreadable or invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The rules could not be compiled together.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// Something set up at start-up cannot be used: the store, the watch sources (the inotify
    /// watch limit), the HTTP server, a `--store` value. Fix the set-up and start again.
    #[error(transparent)]
    Setup(Cause),
    /// A lower layer failed at run time (the store, a file, the signal set-up).
    #[error(transparent)]
    Failed(Cause),
    /// An I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What failed (`cannot write to stdout`).
        what: String,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// A usage or set-up problem with no lower cause (an unknown job id, a missing argument).
    #[error("{0}")]
    Config(String),
    /// A run-time failure with no lower cause.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// A set-up failure caused by `cause` (exit 2).
    pub fn setup(cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Setup(Box::new(cause))
    }

    /// A run-time failure caused by `cause` (exit 1).
    pub fn failed(cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Failed(Box::new(cause))
    }

    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rules(_) | Error::Matcher(_) | Error::Setup(_) | Error::Config(_) => 2,
            Error::Failed(_) | Error::Io { .. } | Error::Runtime(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_error_keeps_its_cause_and_its_message() {
        let os = std::io::Error::from_raw_os_error(28);
        let e = Error::io("cannot write to stdout")(os);
        assert_eq!(e.exit_code(), 1);
        let cause = std::error::Error::source(&e).expect("the cause is kept");
        assert_eq!(
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error),
            Some(28)
        );
        assert!(e.to_string().starts_with("cannot write to stdout: "), "{e}");
        let store = crate::store::StoreError::Outdated {
            path: "/s".into(),
            found: 1,
            current: 2,
        };
        let text = store.to_string();
        let e = Error::setup(store);
        assert_eq!((e.exit_code(), e.to_string()), (2, text));
        let Error::Setup(cause) = &e else {
            panic!("a set-up error")
        };
        assert!(cause.downcast_ref::<crate::store::StoreError>().is_some());
    }
}
