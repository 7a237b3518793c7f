//! The `shotrouter` binary: parse the command line, run, map the outcome to an exit status.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = shotrouter::app::cli::Cli::parse_args();
    match shotrouter::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
