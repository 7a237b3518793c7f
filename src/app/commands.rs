//! The subcommands: each parsed command runs here, against the library's layers, and returns
//! the exit status.

use std::io::{IsTerminal, Write};

use indicatif::ProgressBar;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::cli::{self, Cli, Command, StateArgs};
use crate::app::style::{self, ColorChoice};
use crate::app::{
    check, conform, cut, explain, lineage, logging, ops, packaging, serve, status, watch_status,
};
use crate::engine;
use crate::error::Error;
use crate::route::matcher::RuleSet;
use crate::rules;
use crate::store::control::{Bump, PauseTarget};

/// Runs one subcommand.
///
/// # Errors
/// What stopped it; [`Error::exit_code`] maps it to the exit status.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    style::set(cli.color);
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
            state,
            store,
        } => {
            let set = RuleSet::compile(rules::load(&rules)?)?;
            let place = StateArgs {
                state,
                rules: Some(rules.clone()),
                store,
            };
            let cuts = explain_cuts(&set, &place)?;
            let reports = explain::explain(&set, &cuts, &paths, event.into(), verbose);
            let text = if json {
                serde_json::to_string_pretty(&reports).map_err(Error::failed)? + "\n"
            } else {
                explain::render_text(&reports, &set)
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(Error::io("cannot write to stdout"))?;
            Ok(if explain::any_failed(&reports) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Status {
            state,
            json,
            watch,
            every,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            if watch {
                watch_status::run(&state.location()?, every)
            } else {
                status::status(&state.location()?, json)
            }
        }
        Command::Jobs {
            state,
            status,
            rule,
            since,
            limit,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            ops::jobs(
                &state.location()?,
                status.as_deref(),
                rule.as_deref(),
                since,
                limit,
                json,
            )
        }
        Command::Job {
            state,
            id,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            crate::app::job::job(&state.location()?, state.logs().as_deref(), id, json)
        }
        Command::Retry {
            state,
            ids,
            failed,
            rule,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            ops::retry(&state.location()?, &ids, failed, rule.as_deref(), json)
        }
        Command::Bump(args) => {
            quiet_logs(args.verbosity, cli.color);
            let to = match args.priority {
                Some(p) if !args.top => Bump::To(p),
                _ => Bump::Top,
            };
            crate::app::control::bump(&args.state.location()?, &args.ids, to, args.json)
        }
        Command::Pause(args) => {
            quiet_logs(args.verbosity, cli.color);
            crate::app::control::pause(
                &args.state.location()?,
                &pause_target(&args),
                true,
                args.json,
            )
        }
        Command::Resume(args) => {
            quiet_logs(args.verbosity, cli.color);
            crate::app::control::pause(
                &args.state.location()?,
                &pause_target(&args),
                false,
                args.json,
            )
        }
        Command::RunNow(args) => {
            quiet_logs(args.verbosity, cli.color);
            crate::app::control::run_now(&args.state.location()?, &args.ids, args.json)
        }
        Command::Cancel {
            state,
            ids,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            ops::cancel(&state.location()?, &ids, json)
        }
        Command::Rerun {
            state,
            rule,
            since,
            stale,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            if stale {
                lineage::rerun_stale(&state.location()?, &rule, json)
            } else {
                ops::rerun(&state.location()?, &rule, since, json)
            }
        }
        Command::Lineage {
            state,
            path,
            up: _,
            down,
            depth,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            let direction = if down {
                crate::store::lineage::Direction::Down
            } else {
                crate::store::lineage::Direction::Up
            };
            lineage::lineage(&state.location()?, &path, direction, depth, json)
        }
        Command::Stale {
            state,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            lineage::stale(&state.location()?, json)
        }
        Command::Files {
            state,
            paths,
            json,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            ops::files(&state.location()?, &paths, json)
        }
        Command::Notify {
            state,
            paths,
            verbosity,
        } => {
            quiet_logs(verbosity, cli.color);
            ops::notify(&state.location()?, &paths)
        }
        Command::Worker(args) => worker(args, cli.color),
        Command::Serve {
            state,
            http,
            http_token_file,
            http_host,
            log_format,
            verbosity,
        } => {
            logging::init(log_format, verbosity, cli.color, None);
            serve::serve(
                &state.location()?,
                &state.dir(),
                http,
                http_token_file.as_deref(),
                http_host,
            )
        }
        Command::Cut(command) => run_cut(command, cli.color),
        Command::Conform(args) => {
            quiet_logs(args.verbosity, cli.color);
            let request = conform::Request {
                name: args.name.as_deref(),
                rule: &args.rule,
                output: &args.output,
                otio: args.otio.as_deref(),
                pick: match args.pick {
                    cli::PickArg::Latest => conform::Pick::Latest,
                    cli::PickArg::Approved => conform::Pick::Approved,
                },
                codec: match args.codec {
                    cli::CodecArg::Prores => conform::Codec::ProresHq,
                    cli::CodecArg::Ffv1 => conform::Codec::Ffv1,
                },
                as_json: args.json,
            };
            conform::conform(&request, &args.place)
        }
        Command::Completions { shell } => packaging::completions(shell),
        Command::Manpages { dir } => packaging::manpages(&dir),
        Command::Watch(args) => {
            // The bar is drawn only by `--once` on a terminal; the log lifts it for each line.
            let progress =
                (args.once && std::io::stderr().is_terminal()).then(|| ProgressBar::new(0));
            logging::init(args.log_format, args.verbosity, cli.color, progress.clone());
            let state_dir = args.state.clone().unwrap_or_else(|| {
                rules::absolute(&args.rules).parent().map_or_else(
                    || PathBuf::from(".shotrouter"),
                    |dir| dir.join(".shotrouter"),
                )
            });
            tracing::debug!(
                rules = %args.rules.display(),
                state = %state_dir.display(),
                once = args.once,
                store = !args.no_store,
                "starting"
            );
            let location = match &args.store {
                Some(value) => crate::store::Location::parse(value).map_err(Error::setup)?,
                None => crate::store::Location::Folder(state_dir.clone()),
            };
            let telemetry = engine::telemetry::TelemetryHandle::default();
            let _server = args
                .http
                .map(|addr| {
                    let token = args.http_token_file.as_deref();
                    let hosts = args.http_host.clone();
                    serve::start(
                        addr,
                        token,
                        hosts,
                        &location,
                        &state_dir,
                        Some(telemetry.clone()),
                    )
                })
                .transpose()?;
            let metrics = args.metrics_file.clone().map(|path| {
                super::metrics_file::start(path, args.metrics_every, &location, &telemetry)
            });
            let code = engine::lifecycle::run(engine::Options {
                location,
                rules_path: args.rules,
                once: args.once,
                grace: args.grace,
                state_dir,
                store: !args.no_store,
                no_run: args.no_run,
                keep_logs: (!args.keep_logs.is_zero()).then_some(args.keep_logs),
                progress,
                telemetry,
            });
            if let Some(metrics) = metrics {
                metrics.finish();
            }
            code
        }
    }
}

/// Runs `shotrouter worker`.
fn worker(args: cli::WorkerArgs, color: ColorChoice) -> Result<ExitCode, Error> {
    logging::init(args.log_format, args.verbosity, color, None);
    let node = args
        .name
        .unwrap_or_else(|| format!("{}-worker", crate::store::sqlite::node_name()));
    let location = crate::store::Location::parse(&args.store).map_err(Error::setup)?;
    let state_dir = match (args.state, &location) {
        (Some(dir), _) => dir,
        (None, crate::store::Location::Folder(dir)) => dir.clone(),
        (None, crate::store::Location::Postgres(_)) => default_worker_state(),
    };
    tracing::debug!(store = %location, state = %state_dir.display(), "worker store");
    // Two workers under one name would take each other's claims for their own at start-up.
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        Error::Config(format!(
            "state folder `{}` is not usable: {e}",
            state_dir.display()
        ))
    })?;
    let lock_name: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let _name_lock = crate::os::owner_lock::OwnerLock::acquire_file(
        &state_dir,
        &format!("worker-{lock_name}.lock"),
        &node,
        "shotrouter worker",
    )
    .map_err(|e| {
        Error::Config(format!(
            "{e}; give each worker on this machine its own --name"
        ))
    })?;
    let _server = args
        .http
        .map(|addr| {
            serve::start(
                addr,
                args.http_token_file.as_deref(),
                args.http_host.clone(),
                &location,
                &state_dir,
                None,
            )
        })
        .transpose()?;
    let open_node = node.clone();
    let store: crate::exec::local::QueueFactory =
        std::sync::Arc::new(move || crate::store::open_worker_queue(&location, &open_node));
    engine::worker::run(engine::worker::WorkerOptions {
        store,
        node,
        state_dir,
        jobs: args.jobs.max(1),
        map: engine::worker::plan::PathMap { entries: args.map },
        tags: args.tags,
        grace: args.grace,
        lease: args.lease,
    })
}

/// Where a worker on a PostgreSQL store keeps job logs and sequence views by default: the
/// service's folder when run as root, else the user's state folder.
fn default_worker_state() -> PathBuf {
    // /proc/self is owned by the process's effective user.
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if root {
        return PathBuf::from("/var/lib/shotrouter/worker");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map_or_else(
            || PathBuf::from(".shotrouter-worker"),
            |d| d.join("shotrouter"),
        )
}

/// The operations commands log only what goes wrong below them (and more with `-v`).
/// One of the `cut` subcommands.
fn run_cut(command: cli::CutCommand, color: ColorChoice) -> Result<ExitCode, Error> {
    match command {
        cli::CutCommand::Import {
            file,
            name,
            fps,
            json,
            place,
            verbosity,
        } => {
            quiet_logs(verbosity, color);
            cut::import(&file, name.as_deref(), fps, json, &place)
        }
        cli::CutCommand::Show {
            name,
            revision,
            json,
            place,
            verbosity,
        } => {
            quiet_logs(verbosity, color);
            cut::show(name.as_deref(), revision, json, &place)
        }
        cli::CutCommand::Ranges {
            name,
            json,
            place,
            verbosity,
        } => {
            quiet_logs(verbosity, color);
            cut::ranges(name.as_deref(), json, &place)
        }
        cli::CutCommand::Waste {
            name,
            json,
            place,
            verbosity,
        } => {
            quiet_logs(verbosity, color);
            cut::waste(name.as_deref(), json, &place)
        }
    }
}

fn quiet_logs(verbosity: cli::Verbosity, color: ColorChoice) {
    logging::init(cli::LogFormat::Text, verbosity, color, None);
}

/// The cuts `explain` classifies frames by: read only when a rule names its shot, from an
/// existing store (none yet: no cuts, every shot processed as `all`).
fn explain_cuts(set: &RuleSet, place: &StateArgs) -> Result<crate::route::cut::CutIndex, Error> {
    let names_shots = set.file.rules.iter().any(|r| {
        r.regex
            .as_ref()
            .is_some_and(|re| re.capture_names().flatten().any(|c| c == "shot"))
    });
    if !names_shots {
        return Ok(Default::default());
    }
    let location = place.location()?;
    if let crate::store::Location::Folder(dir) = &location
        && !dir.exists()
    {
        return Ok(Default::default());
    }
    let store = crate::store::open_cuts(&location).map_err(Error::setup)?;
    crate::route::cut::CutIndex::load(&*store).map_err(Error::setup)
}

/// The node or rule `pause`/`resume` names (clap requires exactly one).
fn pause_target(args: &cli::PauseArgs) -> PauseTarget {
    match (&args.node, &args.rule) {
        (Some(node), _) => PauseTarget::Node(node.clone()),
        (None, rule) => PauseTarget::Rule(rule.clone().unwrap_or_default()),
    }
}
