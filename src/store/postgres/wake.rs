//! The wake-up workers wait on ([`super::CHANNEL`]): sent by every write that may make work
//! claimable, so a waiting worker claims at once instead of at its next look.

use postgres::Transaction;

use super::CHANNEL;

/// Queues work for the nodes listening: delivered when (and only if) the transaction commits.
pub(super) fn notify(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
    Ok(())
}
