//! Store connections for the server's blocking threads. SQLite connections are not shared
//! between threads at once, so each call takes a connection of its own from a small pool (or
//! opens one), runs on a blocking thread, and gives it back. A connection that failed is
//! dropped: the next call opens a fresh one (the store may appear after the server starts).

use std::sync::{Arc, Mutex, PoisonError};

use crate::store::cuts::CutStore;
use crate::store::history::JobHistory;
use crate::store::{OpsStore, StoreError};

use super::error::ApiError;

/// Opens one connection to the store's history and cuts; called again whenever the pool needs
/// one.
pub type HistoryOpener =
    Arc<dyn Fn() -> Result<Box<dyn OpsStore + Send>, StoreError> + Send + Sync>;

/// Blocking threads, hence connections, at most.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// Idle connections kept for the next call.
#[derive(Clone)]
pub(crate) struct Pool {
    open: HistoryOpener,
    idle: Arc<Mutex<Vec<Box<dyn OpsStore + Send>>>>,
}

impl Pool {
    pub(crate) fn new(open: HistoryOpener) -> Pool {
        Pool {
            open,
            idle: Arc::default(),
        }
    }

    /// Runs `f` with a connection's history on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn JobHistory) -> Result<T, ApiError> + Send + 'static,
    {
        self.run_ops(|store| f(store)).await
    }

    /// Runs `f` with a connection's cuts on a blocking thread.
    pub(crate) async fn run_cuts<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn CutStore) -> Result<T, ApiError> + Send + 'static,
    {
        self.run_ops(|store| f(store)).await
    }

    /// Runs `f` with a connection on a blocking thread.
    async fn run_ops<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn OpsStore) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let taken = pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut history = match taken {
                Some(h) => h,
                None => (pool.open)().map_err(|e| {
                    ApiError::Unavailable(format!("the job store is not available: {e}"))
                })?,
            };
            let result = f(history.as_mut());
            // A store error may leave the connection in a bad state: drop it.
            if !matches!(result, Err(ApiError::Store(_))) {
                pool.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(history);
            }
            result
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }
}
