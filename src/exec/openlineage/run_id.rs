//! OpenLineage run ids: UUIDv7 (RFC 9562), as the spec recommends, so a receiver's runs sort by
//! when they started. One is made when an attempt starts and kept with the attempt until its
//! end: a START and its COMPLETE or FAIL name the same run, and no two attempts share one (a
//! job id alone repeats across `--no-store` runs, so it cannot be the seed).

/// A new UUIDv7 made at `unix_ms`, lowercase hyphenated text.
pub fn new_v7(unix_ms: u64) -> String {
    let mut random = [0u8; 10];
    // The OS's randomness failing leaves a run id unique by its time and this process's
    // counter alone; an event is never lost over it.
    if getrandom::fill(&mut random).is_err() {
        random = fallback(unix_ms);
    }
    format_v7(unix_ms, random)
}

/// The UUIDv7 of `unix_ms` with random bits `random` (74 of its 80 are used).
fn format_v7(unix_ms: u64, random: [u8; 10]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (random[0] & 0x0f);
    bytes[7] = random[1];
    bytes[8] = 0x80 | (random[2] & 0x3f);
    bytes[9..].copy_from_slice(&random[3..]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Bits unique within this process when the OS gives no randomness.
fn fallback(unix_ms: u64) -> [u8; 10] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = xxhash_rust::xxh3::xxh3_128(
        &[
            unix_ms.to_le_bytes(),
            n.to_le_bytes(),
            u64::from(std::process::id()).to_le_bytes(),
        ]
        .concat(),
    );
    let mut out = [0u8; 10];
    out.copy_from_slice(&mixed.to_le_bytes()[..10]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_a_v7_with_its_time_first() {
        let id = format_v7(0x0193_a3f0_7b1c, [0xff; 10]);
        assert_eq!(id, "0193a3f0-7b1c-7fff-bfff-ffffffffffff");
        let id = format_v7(1, [0; 10]);
        assert_eq!(id, "00000000-0001-7000-8000-000000000000");
    }

    #[test]
    fn two_runs_started_in_the_same_millisecond_differ_and_sort_by_time() {
        let a = new_v7(1_765_000_000_000);
        let b = new_v7(1_765_000_000_000);
        let later = new_v7(1_765_000_000_001);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "version");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant");
        assert!(later > a && later > b);
        assert_ne!(fallback(5), fallback(5));
    }
}
