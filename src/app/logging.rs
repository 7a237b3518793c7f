//! The log on stderr: text ([`TextFormat`]) or JSON lines, filtered by `SHOTROUTER_LOG` when
//! set (full `tracing` filter syntax, e.g. `shotrouter::exec=debug,info`), else by `-q`/`-v`.
//! While `watch --once` shows its progress bar, each log line is written with the bar lifted
//! ([`ProgressBar::suspend`]) so the lines scroll above it and the bar stays last.

use std::io::{IsTerminal, Write};

use indicatif::ProgressBar;
use tracing_subscriber::fmt::MakeWriter;

use crate::app::cli::{LogFormat, Verbosity};
use crate::app::logfmt::TextFormat;
use crate::app::style::ColorChoice;

/// Installs the process's log subscriber; `bar`, when given, is kept below the log lines.
pub fn init(format: LogFormat, verbosity: Verbosity, color: ColorChoice, bar: Option<ProgressBar>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOTROUTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(verbosity.filter()));
    // JSON lines are for machines: never coloured.
    let ansi = format == LogFormat::Text && color.resolve(std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(Stderr { bar });
    let _ = match format {
        LogFormat::Text => builder.event_format(TextFormat).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// stderr, written around the progress bar when there is one.
#[derive(Clone)]
struct Stderr {
    bar: Option<ProgressBar>,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        self.clone()
    }
}

impl Write for Stderr {
    /// tracing-subscriber writes each formatted event in one `write_all`: one whole line here.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let put = || std::io::stderr().lock().write_all(bytes);
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.suspend(put)?,
            _ => put()?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
