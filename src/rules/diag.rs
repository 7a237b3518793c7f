//! Errors that point into a rules file: `FILE:LINE:COL`, the source line, a caret, and notes.
//!
//! Modules report *what* went wrong with a [`Span`]; this module owns *how* it is shown, so every
//! diagnostic in the product looks the same, whether printed by `check` or logged on reload.

use std::fmt;
use std::path::PathBuf;

use crate::rules::lines::Lines;
use crate::rules::yaml::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is not loaded.
    #[default]
    Error,
    /// The file loads, but something will likely fail or wait when files arrive (a program not
    /// on `PATH`, a missing watch root); `check --strict` treats it as an error.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The name of the rule it is in, when it is in one (for `check --json`).
    pub rule: Option<String>,
    /// What is wrong, lowercase, user text in backticks.
    pub message: String,
    /// Where, in the file's text.
    pub span: Span,
    /// Which value it concerns, e.g. ``in rules[1].match (rule `plates`)``.
    pub context: Option<String>,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with only a message and a position.
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            rule: None,
            message: message.into(),
            span,
            context: None,
            hint: None,
        }
    }

    /// Adds where in the file's structure the value lives.
    #[must_use]
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The same problem as a warning.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Adds a suggested fix.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one rules file, with the text needed to show them.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// Its text, for the source snippets.
    pub source: String,
    /// The problems, in file order.
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = Lines::new(&self.source);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            render(f, &self.path, &lines, item)?;
        }
        write!(f, "\n{} in {}", self.tally(), self.path.display())
    }
}

impl Diagnostics {
    /// No problems in `path` yet.
    pub fn empty(path: PathBuf, source: String) -> Self {
        Diagnostics {
            path,
            source,
            items: Vec::new(),
        }
    }

    /// Each item on one line, `FILE:LINE:COL: message (note; help: hint)`, for a log.
    pub fn one_line_each(&self) -> impl Iterator<Item = String> + '_ {
        self.items.iter().map(|d| {
            let mut text = format!(
                "{}:{}:{}: {}",
                self.path.display(),
                d.span.line,
                d.span.column,
                d.message
            );
            let notes: Vec<String> = d
                .context
                .iter()
                .cloned()
                .chain(d.hint.iter().map(|h| format!("help: {h}")))
                .collect();
            if !notes.is_empty() {
                text.push_str(&format!(" ({})", notes.join("; ")));
            }
            text
        })
    }

    /// How many of the items are of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// `2 errors`, `1 warning`, `1 error and 3 warnings`.
    fn tally(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let (errors, warnings) = (self.count(Severity::Error), self.count(Severity::Warning));
        match (errors, warnings) {
            (_, 0) => plural(errors, "error"),
            (0, _) => plural(warnings, "warning"),
            _ => format!(
                "{} and {}",
                plural(errors, "error"),
                plural(warnings, "warning")
            ),
        }
    }
}

impl std::error::Error for Diagnostics {}

/// How many characters of a source line a diagnostic shows, around its column.
const SNIPPET_CHARS: usize = 160;

fn render(
    f: &mut fmt::Formatter<'_>,
    path: &std::path::Path,
    lines: &Lines<'_>,
    d: &Diagnostic,
) -> fmt::Result {
    let Span { line, column } = d.span;
    writeln!(f, "{}: {}", d.severity.as_str(), d.message)?;
    writeln!(f, " --> {}:{line}:{column}", path.display())?;
    // A long line (generated, or a whole file in flow style) is shown as a window around the
    // column, so one diagnostic stays a few lines however long the source line is.
    let from = column.saturating_sub(SNIPPET_CHARS / 2).max(1);
    if let Some(rest) = lines.rest_of_line(line, from) {
        let gutter = " ".repeat(line.to_string().len());
        let mut shown: String = rest.chars().take(SNIPPET_CHARS).collect();
        if shown.len() < rest.len() {
            shown.push('…');
        }
        let (lead, lead_pad) = if from > 1 { ("…", " ") } else { ("", "") };
        // Keep tabs as tabs so the caret lines up under the same character.
        let pad: String = shown
            .chars()
            .take(column - from)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{line} | {lead}{shown}")?;
        writeln!(f, "{gutter} | {lead_pad}{pad}^")?;
    }
    let gutter = " ".repeat(line.to_string().len());
    if let Some(context) = &d.context {
        writeln!(f, "{gutter} = note: {context}")?;
    }
    if let Some(hint) = &d.hint {
        writeln!(f, "{gutter} = help: {hint}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_header_snippet_caret_and_notes() {
        let diags = Diagnostics {
            path: PathBuf::from("rules.yaml"),
            source: "rules:\n  - name: plates\n    match: \"plate_[0-9.exr\"\n".into(),
            items: vec![
                Diagnostic::new(
                    "invalid glob `plate_[0-9.exr`: unclosed character class; missing ']'",
                    Span {
                        line: 3,
                        column: 12,
                    },
                )
                .context("in rules[0].match (rule `plates`)")
                .hint("escape a literal `[` as `[[]`"),
            ],
        };
        let expected = "\
error: invalid glob `plate_[0-9.exr`: unclosed character class; missing ']'
 --> rules.yaml:3:12
  |
3 |     match: \"plate_[0-9.exr\"
  |            ^
  = note: in rules[0].match (rule `plates`)
  = help: escape a literal `[` as `[[]`

1 error in rules.yaml";
        assert_eq!(diags.to_string(), expected);
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_column() {
        let source = format!("x: [{}bad]\n", "a, ".repeat(1000));
        let column = source.find("bad").expect("bad") + 1;
        let diags = Diagnostics {
            path: PathBuf::from("rules.yaml"),
            source: source.clone(),
            items: vec![Diagnostic::new("bad value", Span { line: 1, column })],
        };
        let text = diags.to_string();
        let snippet = text.lines().nth(3).expect("snippet");
        let caret = text.lines().nth(4).expect("caret");
        assert!(
            snippet.starts_with("1 | …") && snippet.ends_with("bad]"),
            "{snippet}"
        );
        assert!(snippet.chars().count() < SNIPPET_CHARS + 10, "{snippet}");
        let at = caret.chars().count() - 1;
        assert_eq!(snippet.chars().nth(at), Some('b'), "{snippet}\n{caret}");
    }
}
