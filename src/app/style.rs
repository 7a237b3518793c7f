//! Whether output is coloured, decided once per run: `--color always|never` wins, then a
//! non-empty `NO_COLOR` (no-color.org) turns colour off, then colour only on a terminal.
//! Colour is a hint on top of words, never the only carrier of meaning.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always colour, even into a pipe or with `NO_COLOR`.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether a stream that is (or is not) a terminal gets colour.
    pub fn resolve(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// Colour for stdout, set by [`set`]; off until then.
static STDOUT_COLOUR: AtomicBool = AtomicBool::new(false);

/// Decides stdout's colour for this run.
pub fn set(choice: ColorChoice) {
    STDOUT_COLOUR.store(
        choice.resolve(std::io::stdout().is_terminal()),
        Ordering::Relaxed,
    );
}

/// The colours text output uses.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    /// Failures, a node not running, DEGRADED.
    Red,
    /// Waiting and attention.
    Yellow,
    /// Done, running.
    Green,
    /// Headings.
    Bold,
}

/// `text` wrapped in the colour when stdout is coloured, else unchanged.
pub fn paint(text: &str, paint: Paint) -> String {
    if !STDOUT_COLOUR.load(Ordering::Relaxed) {
        return text.to_string();
    }
    let code = match paint {
        Paint::Red => "31",
        Paint::Yellow => "33",
        Paint::Green => "32",
        Paint::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The colour of a job status word.
pub fn status_paint(status: &str) -> Option<Paint> {
    match status {
        "failed" => Some(Paint::Red),
        "queued" | "claimed" | "cancelled" => Some(Paint::Yellow),
        "running" | "done" => Some(Paint::Green),
        _ => None,
    }
}
