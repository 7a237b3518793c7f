//! How values in `rules.yaml` are written and compiled: globs, path regexes, durations, and the
//! "did you mean" suggestion every diagnostic about a name shares.
//!
//! The matcher compiles globs and regexes with these same functions, so what loads is what
//! matches.

use std::time::Duration;

/// Compiles one glob the way the matcher does: `*` and `?` never cross `/`; `**` does.
///
/// # Errors
/// globset's reason the pattern is invalid.
pub fn compile_glob(text: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Compiles a rule's regex for matching path bytes: Unicode mode is off, so `.` and `[^/]`
/// match any byte (non-UTF-8 names and newlines included) and `\d`, `\w` are ASCII.
///
/// # Errors
/// regex's reason.
pub fn path_regex(text: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(text)
        .unicode(false)
        .dot_matches_new_line(true)
        .build()
}

/// Parses `500ms`, `90s`, `10m`, `1h`, `1h 30m`.
///
/// # Errors
/// A hint on how to write a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>().is_ok() {
        return Err(format!(
            "add a unit: `{}s`, `{}m` or `{}ms`",
            text.trim(),
            text.trim(),
            text.trim()
        ));
    }
    humantime::parse_duration(text)
        .map_err(|_| "write a number and a unit, e.g. `500ms`, `90s`, `10m`, `1h`".to_string())
}

/// The one line of a regex error that says what is wrong (regex prints a multi-line drawing).
pub(super) fn regex_error_summary(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(text)
            .to_string(),
        other => other.to_string(),
    }
}

/// The closest known name, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}
