//! The routing engine: file events in, settled and gathered into jobs, dispatched to the
//! executor, outcomes recorded in the store. Only the engine reads the clock.

pub mod daemon;
pub mod ledger;
pub mod reload;
pub mod sequencer;
pub mod settle;
