//! The subcommands: each parsed command runs here, against the library's layers, and returns
//! the exit status; logging is set up here for the daemon.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::cli::{self, Cli, Command};
use crate::app::logfmt::TextFormat;
use crate::app::{check, explain, ops, packaging};
use crate::engine;
use crate::error::Error;
use crate::route::matcher::RuleSet;
use crate::rules;

/// Runs one subcommand.
///
/// # Errors
/// What stopped it; [`Error::exit_code`] maps it to the exit status.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Check {
            rules,
            strict,
            json,
        } => check::check(&rules, strict, json),
        Command::Explain {
            rules,
            paths,
            verbose,
            json,
            event,
        } => {
            let set = RuleSet::compile(rules::load(&rules)?)?;
            let reports = explain::explain(&set, &paths, event.into(), verbose);
            let text = if json {
                serde_json::to_string_pretty(&reports).map_err(|e| Error::Runtime(e.to_string()))?
                    + "\n"
            } else {
                explain::render_text(&reports, &set)
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| Error::Runtime(format!("cannot write to stdout: {e}")))?;
            Ok(if explain::any_failed(&reports) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Status { state, json } => ops::status(&state.dir(), json),
        Command::Jobs {
            state,
            status,
            rule,
            since,
            limit,
            json,
        } => ops::jobs(
            &state.dir(),
            status.as_deref(),
            rule.as_deref(),
            since,
            limit,
            json,
        ),
        Command::Job { state, id, json } => ops::job(&state.dir(), id, json),
        Command::Retry {
            state,
            ids,
            failed,
            rule,
        } => ops::retry(&state.dir(), &ids, failed, rule.as_deref()),
        Command::Cancel { state, ids } => ops::cancel(&state.dir(), &ids),
        Command::Rerun { state, rule, since } => ops::rerun(&state.dir(), &rule, since),
        Command::Files { state, paths, json } => ops::files(&state.dir(), &paths, json),
        Command::Notify { state, paths } => ops::notify(&state.dir(), &paths),
        Command::Completions { shell } => packaging::completions(shell),
        Command::Manpages { dir } => packaging::manpages(&dir),
        Command::Watch(args) => {
            init_logging(args.log_format);
            let state_dir = args.state.clone().unwrap_or_else(|| {
                rules::absolute(&args.rules).parent().map_or_else(
                    || PathBuf::from(".shotrouter"),
                    |dir| dir.join(".shotrouter"),
                )
            });
            engine::run(engine::Options {
                rules_path: args.rules,
                once: args.once,
                grace: args.grace,
                state_dir,
                store: !args.no_store,
                keep_logs: (!args.keep_logs.is_zero()).then_some(args.keep_logs),
            })
        }
    }
}

/// Logs go to stderr as text or JSON lines; `SHOTROUTER_LOG` sets the filter (default `info`).
/// Text lines come from [`TextFormat`], which quotes every value so one event is one line.
fn init_logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOTROUTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        cli::LogFormat::Text => builder.event_format(TextFormat).try_init(),
        cli::LogFormat::Json => builder.json().try_init(),
    };
}
