//! shotrouter: routes files arriving in a studio's shot tree to the jobs that must run on them.
//!
//! Pipeline: watcher (inotify) → matcher (rules.yaml) → runner (argv via duct, never a shell).
//! `main.rs` only parses the command line and calls [`run`].

pub mod cli;
pub mod diag;
pub mod error;
pub mod explain;
pub mod matcher;
pub mod plan;
pub mod rules;
pub mod template;
pub mod yaml;

use std::io::Write;
use std::process::ExitCode;

pub use error::Error;

use cli::{Cli, Command};
use matcher::RuleSet;

/// Runs one subcommand.
///
/// # Errors
/// What stopped it; [`Error::exit_code`] maps it to the exit status.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Check { rules } => {
            let set = RuleSet::compile(rules::load(&rules)?)?;
            let roots: Vec<String> = set
                .file
                .watch
                .iter()
                .map(|r| r.path.display().to_string())
                .collect();
            let count = set.file.rules.len();
            println!(
                "{}: ok, {count} rule{}, watching {}",
                rules.display(),
                if count == 1 { "" } else { "s" },
                roots.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch(_) => Err(Error::Runtime("watch is not built yet".into())),
    }
}
