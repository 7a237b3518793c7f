//! How the SQLite backend stores what SQL has no type for: paths as raw bytes (so non-UTF-8
//! names survive), argv lists as length-prefixed bytes, and how it waits for a busy lock.

use std::time::Duration;

/// `application_id` of a shotrouter state file ("SROU").
pub(super) const APPLICATION_ID: i32 = 0x5352_4F55;
/// The database file inside the state folder.
pub const DB_FILE: &str = "shotrouter.db";

pub(super) use crate::store::encoding::{blob, decode_steps, encode_steps, lossy, path_of};

/// Waits for a lock held by another connection: 50 µs at a time, for up to 30 s. Our writes hold
/// the lock for tens of microseconds; SQLite's default handler sleeps 1 to 100 ms per retry,
/// which under the daemon's steady trickle of writes costs far more than the writes themselves.
pub(super) fn retry_soon(attempts: i32) -> bool {
    const PAUSE: Duration = Duration::from_micros(50);
    if attempts >= 600_000 {
        return false;
    }
    std::thread::sleep(PAUSE);
    true
}

/// Tags as stored: sorted, each between commas (`,gpu,linux,`), so "holds tag t" is a
/// substring test on `,t,`; empty for none.
pub(super) fn encode_tags(tags: &[String]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<&str> = tags.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    format!(",{},", sorted.join(","))
}

pub(super) fn decode_tags(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
