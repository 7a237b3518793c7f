//! `rules.yaml`: the schema, loading, and every check that can be made before a file arrives.
//!
//! A rules file is read field by field from a positioned YAML tree, so each error names
//! `FILE:LINE:COL` of the offending value and the rule it belongs to, and all errors of a file
//! are reported together. What loads here cannot fail later for a reason visible now: globs and
//! regexes compile, every template variable has a source, durations parse. What loads but will
//! likely fail or wait on this machine (a program not on `PATH`, a missing watch root) is a
//! warning, kept in [`RuleFile::warnings`]: `check --strict` refuses it, the daemon logs it.
//!
//! When a file is ready: a rule fires on `close_write` (a file opened for writing was closed)
//! and `moved_to` (a file was renamed into a watched folder) unless its `on:` says otherwise; a
//! plain modify never counts, because copies and renders emit it long before they finish.
//!
//! Precedence: every matching rule fires, in file order, until a matching rule with `stop: true`.
//!
//! Placeholders: the built-ins in [`BUILTIN_VARIABLES`] (`{path}`, `{rel}`, `{root}`, `{dir}`,
//! `{name}`, `{stem}`, `{ext}`, `{frame}`, `{rule}`), every `vars` entry, the regex's named
//! captures (which override `vars`), `{env.NAME}`, `{out}` on rules that declare `output:`,
//! `{seq.*}` with `sequence:`, `{timecode}` and `{keykode}` with those keys, and `{probe.*}` with
//! `probe: true`. `{{` and `}}` are literal braces. The full reference is `docs/rules.md`.
//!
//! Files: `model` (the types), `loader` (the YAML tree to the model, with diagnostics), one file
//! per section (`watch`, `rule_keys`, `media_keys`, `verify`, `notify`, `transfer`, `conform`),
//! `syntax` and `path` (how values are written), `template`, `diag` and `yaml` (the positioned
//! tree).

pub mod clock;
pub mod conform;
mod conform_keys;
pub mod cuts;
mod cuts_keys;
pub mod diag;
pub mod farm;
mod farm_keys;
pub mod frames;
mod frames_keys;
pub mod inputs;
mod inputs_keys;
pub mod limits;
mod lines;
mod loader;
mod media_keys;
mod model;
mod notify;
mod path;
mod rule_keys;
pub mod schedule;
mod schedule_keys;
mod syntax;
pub mod template;
mod thumbnail_keys;
pub mod transfer;
pub mod verify;
mod watch;
pub mod yaml;

pub use frames::{CUT_VARIABLES, FrameScope};
pub use inputs::{DeclaredInputs, LineageSettings, OnInputChange};
pub use limits::Limits;
pub use loader::{RulesError, load, load_within, parse};
pub use model::{
    BUILTIN_VARIABLES, DEFAULT_BACKOFF, DEFAULT_IGNORE, DEFAULT_POLL, DEFAULT_SEQUENCE_SETTLE,
    EventKind, EventSet, OnRename, PollSettings, ProgressKind, Rule, RuleFile, SequenceRule,
    SourceKind, TransferRule, WatchRoot,
};
pub use notify::{DEFAULT_STUCK_AFTER, NOTIFY_VARIABLES, NotifyEvent, NotifyTarget};
pub use path::{absolute, normalize};
pub use schedule_keys::PRIORITY_RANGE;
pub use syntax::{compile_glob, did_you_mean, parse_duration, path_regex};

#[cfg(test)]
mod conform_tests;
#[cfg(test)]
mod editorial_tests;
#[cfg(test)]
mod farm_tests;
#[cfg(test)]
mod frames_tests;
#[cfg(test)]
mod inputs_tests;
#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
#[cfg(test)]
mod warning_tests;
