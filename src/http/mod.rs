//! The HTTP server: a JSON API under `/api/v1/`, live updates by server-sent events, the
//! dashboard at `/` and `/healthz`. It stands beside `app/` and reads only the engine's
//! [`TelemetryHandle`] and the store's [`JobHistory`](crate::store::history::JobHistory) and
//! [`CutStore`](crate::store::cuts::CutStore); the one thing it changes is what the operations
//! CLI changes (retry, cancel, rerun), behind a bearer token.
//!
//! The rest of shotrouter is synchronous: the server runs axum on a tokio runtime in a thread
//! of its own, and every store call runs on a blocking thread with a connection of its own
//! ([`pool`]). Hyper limits header size and time, tower-http the body size and handler time,
//! so malformed requests, huge headers and slow clients cost a connection, never the server.

pub mod actions;
pub mod api;
pub mod auth;
mod chart_svg;
mod charts;
pub mod control;
pub mod cuts;
pub mod dashboard;
pub mod error;
pub mod files;
pub mod host;
mod lineage;
pub mod live;
pub mod metrics;
pub mod openapi;
mod params;
pub mod pool;
pub mod shots;
mod thumbnail;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

use crate::engine::telemetry::TelemetryHandle;

pub use error::HttpError;
pub use pool::HistoryOpener;

/// The address the docs suggest for `--http`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8470";

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a handler may take (store calls included) before the client gets a 503.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request head (request line and headers) read; larger gets 431.
const MAX_HEAD: usize = 16 * 1024;

/// The largest request body accepted (the API's POSTs take none).
const MAX_BODY: usize = 16 * 1024;

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;

/// How the server is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (`--http`).
    pub addr: SocketAddr,
    /// The bearer token that allows retry, cancel and rerun; `None` makes the API read-only.
    pub token: Option<String>,
    /// The state folder: job logs are read from its `logs/` only.
    pub state_dir: PathBuf,
    /// Host names answered besides loopback and the bound address (`--http-host`).
    pub hosts: Vec<String>,
}

impl Options {
    /// Options with the token read from `--http-token-file` (trimmed; empty is an error) and
    /// the host names of `--http-host`.
    ///
    /// # Errors
    /// The token file cannot be read or holds no token.
    pub fn new(
        addr: SocketAddr,
        token_file: Option<&std::path::Path>,
        state_dir: PathBuf,
        hosts: Vec<String>,
    ) -> Result<Options, HttpError> {
        let token = match token_file {
            Some(path) => Some(auth::read_token(path)?),
            None => None,
        };
        Ok(Options {
            addr,
            token,
            state_dir,
            hosts,
        })
    }
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) telemetry: Option<TelemetryHandle>,
    pub(crate) pool: pool::Pool,
    pub(crate) token: Option<String>,
    pub(crate) state_dir: PathBuf,
    pub(crate) live: watch::Receiver<Arc<live::Live>>,
    pub(crate) demand: Arc<live::Demand>,
    /// The queue's depth per rule, sampled each minute for its chart.
    pub(crate) queue_samples: Arc<charts::QueueSamples>,
}

/// The handlers' state.
pub(crate) type State = Arc<Shared>;

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (the port the kernel chose, for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends open connections and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Starts the server: binds at once (so a taken port is an error here), then serves from a
/// thread of its own until the returned [`Server`] is stopped or dropped. `telemetry` is the
/// engine's snapshot when a daemon runs in this process (`None` for `shotrouter serve`);
/// `history` opens a store connection for each blocking thread that needs one.
///
/// # Errors
/// The address cannot be bound, or the runtime cannot start.
pub fn serve(
    options: Options,
    telemetry: Option<TelemetryHandle>,
    history: HistoryOpener,
) -> Result<Server, HttpError> {
    let listener = std::net::TcpListener::bind(options.addr).map_err(|e| HttpError::Bind {
        addr: options.addr,
        source: e,
    })?;
    let addr = listener.local_addr().map_err(HttpError::Runtime)?;
    listener.set_nonblocking(true).map_err(HttpError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(pool::MAX_CONNECTIONS)
        .thread_name("http")
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let pool = pool::Pool::new(history);
    let demand = Arc::new(live::Demand::default());
    let live = runtime.block_on(async {
        live::start(
            pool.clone(),
            telemetry.clone(),
            demand.clone(),
            options.state_dir.clone(),
            stop_rx.clone(),
        )
    });
    let queue_samples = Arc::new(charts::QueueSamples::default());
    runtime.block_on(async {
        charts::start_sampling(pool.clone(), queue_samples.clone(), stop_rx.clone());
    });
    let shared = Arc::new(Shared {
        telemetry,
        pool,
        token: options.token,
        state_dir: options.state_dir,
        live,
        demand,
        queue_samples,
    });
    let hosts = Arc::new(host::AllowedHosts::new(addr.ip(), &options.hosts));
    let app = router(shared, hosts);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, app, stop_rx));
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(HttpError::Runtime)?;
    tracing::info!(%addr, "http: listening on {addr}");
    Ok(Server {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Every route, with the limits; no route answers a `Host` that is not this server's.
fn router(state: State, hosts: Arc<host::AllowedHosts>) -> Router {
    Router::new()
        .merge(dashboard::routes())
        .merge(api::routes())
        .merge(actions::routes())
        .merge(control::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(hosts, host::check))
        .layer(axum::middleware::from_fn(error::common_headers))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            HANDLER_TIMEOUT,
        ))
        .with_state(state)
}

/// Accepts connections until told to stop; each is served by hyper with the head limits.
async fn accept_loop(
    listener: std::net::TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("http: cannot listen: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
        });
    }
}
