//! `shotrouter serve`, and the HTTP server `watch --http` starts beside its engine: both come
//! down to one [`http::serve`] call with a way to open the store's history (SQLite or the
//! shared PostgreSQL one), and the state folder whose job logs it may show.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::engine::telemetry::TelemetryHandle;
use crate::error::Error;
use crate::http::{self, HistoryOpener, Server};
use crate::store::{Location, open_history, open_ops};

/// Starts the server for the store at `store` (opened per connection, so a store that `watch`
/// creates a moment later is found); job logs are read from `state_dir`; `hosts` are the
/// names of `--http-host`.
///
/// # Errors
/// An unreadable token file, or an address that cannot be bound (exit 2).
pub fn start(
    addr: SocketAddr,
    token_file: Option<&Path>,
    hosts: Vec<String>,
    store: &Location,
    state_dir: &Path,
    telemetry: Option<TelemetryHandle>,
) -> Result<Server, Error> {
    let options = http::Options::new(addr, token_file, state_dir.to_path_buf(), hosts)
        .map_err(Error::setup)?;
    if !addr.ip().is_loopback() && options.token.is_none() {
        tracing::warn!(
            %addr,
            "http: listening beyond this machine with a read-only API; anyone who reaches it sees file names"
        );
    }
    let location = store.clone();
    let opener: HistoryOpener = Arc::new(move || open_ops(&location));
    http::serve(options, telemetry, opener).map_err(Error::setup)
}

/// `shotrouter serve`: the server alone, until SIGINT or SIGTERM.
///
/// # Errors
/// No store, an unreadable token file, an address that cannot be bound, or signals that
/// cannot be caught.
pub fn serve(
    store: &Location,
    state_dir: &Path,
    addr: SocketAddr,
    token_file: Option<&Path>,
    hosts: Vec<String>,
) -> Result<ExitCode, Error> {
    // A typo'd --state or --store is an error now, not a page of 503s.
    open_history(store).map_err(Error::setup)?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(Error::io("cannot catch signals"))?;
    let server = start(addr, token_file, hosts, store, state_dir, None)?;
    let signal = signals.forever().next().unwrap_or_default();
    tracing::info!(signal, "stopping");
    server.stop();
    Ok(ExitCode::SUCCESS)
}
