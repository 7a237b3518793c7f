//! The HTTP side: what a browser or a monitoring system reads. It stands beside the engine and
//! reads only its telemetry snapshot and the store's history.

pub mod metrics;
