//! What a package ships besides the binary, generated from the command line itself so it can
//! never disagree with it: shell completion scripts (`shotrouter completions SHELL`) and one
//! man page per subcommand (`shotrouter manpages DIR`, hidden: `packaging/build-deb` runs it).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::app::cli::{Cli, CompletionShell};
use crate::error::Error;

/// Prints the completion script for `shell` to stdout.
///
/// # Errors
/// Stdout cannot be written (exit 1).
pub fn completions(shell: CompletionShell) -> Result<ExitCode, Error> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "shotrouter", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(Error::io("cannot write to stdout"))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `shotrouter.1` and one page per visible subcommand (`shotrouter-watch.1`, …) into
/// `dir`, creating it if needed, and prints each file's path.
///
/// # Errors
/// `dir` cannot be created or written (exit 1).
pub fn manpages(dir: &Path) -> Result<ExitCode, Error> {
    let failed = |e: std::io::Error| {
        Error::io(format!("cannot write man pages into `{}`", dir.display()))(e)
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(failed)?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)
        .map_err(failed)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "1"))
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}
