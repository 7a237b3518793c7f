//! Copy speed of a verified `copy:` (hash while copying, flush, read back, hash again) beside
//! `cp` of the same file in the same run, as MB/s and ratios.
//!
//! `cargo bench --bench copy_speed` copies a 1 GiB file that sits in the page cache; set
//! `COPY_SPEED_MIB` for another size and `COPY_SPEED_DIR` for another folder (the default is
//! the system temp folder). Each contender runs `COPY_SPEED_RUNS` times (default 3), in turn
//! and each after a `sync`; the median is reported. `cp` does not flush, shotrouter does (and reads the copy back): `cp + sync` is
//! `cp` followed by `sync FILE`, the like-for-like durability, and `cp + sync + xxh64 of the
//! copy` (a read-back hashed, as `cp && sync && xxhsum` would) the like-for-like verified copy.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shotrouter::deliver::copy::{Overlap, copy_verified_with};
use shotrouter::deliver::hash::{HashKind, Hashes};
use shotrouter::os::dir_handle::DirHandle;

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored: one measurement.
    let mib: usize = env_or("COPY_SPEED_MIB", 1024);
    let runs: usize = env_or("COPY_SPEED_RUNS", 3).max(1);
    let base = std::env::var_os("COPY_SPEED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let source = dir.path().join("source.bin");
    write_source(&source, mib);
    // Read once so it is in the page cache for everyone.
    let _ = std::fs::read(&source).map(|b| b.len());
    let bytes = (mib as u64) << 20;
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("out");
    let real = out.canonicalize().expect("real");
    let handle = DirHandle::open_checked(&real, Path::new(""), std::slice::from_ref(&real))
        .expect("open out");

    let cp = |sync: Then| {
        let target = out.join("cp.bin");
        let started = Instant::now();
        let status = Command::new("cp").arg(&source).arg(&target).status();
        assert!(status.is_ok_and(|s| s.success()), "cp failed");
        if sync != Then::Nothing {
            let status = Command::new("sync").arg(&target).status();
            assert!(status.is_ok_and(|s| s.success()), "sync failed");
        }
        if sync == Then::SyncAndHash {
            // What `xxhsum -H64` on the copy does: read it back once, hashed.
            let mut file = std::fs::File::open(&target).expect("copy");
            let mut hashes = Hashes::new(&[HashKind::Xxh64]);
            let mut buffer = vec![0u8; 8 << 20];
            loop {
                let n = std::io::Read::read(&mut file, &mut buffer).expect("read back");
                if n == 0 {
                    break;
                }
                hashes.update(&buffer[..n]);
            }
            std::hint::black_box(hashes.finish());
        }
        let elapsed = started.elapsed();
        std::fs::remove_file(&target).expect("rm");
        elapsed
    };
    let ours = |kinds: &[HashKind], overlap: Overlap| {
        let started = Instant::now();
        copy_verified_with(&source, &handle, OsStr::new(".copy.bin"), kinds, overlap)
            .expect("copy");
        let elapsed = started.elapsed();
        handle.remove(OsStr::new(".copy.bin")).expect("rm");
        elapsed
    };
    // Round robin, each measurement after a `sync`: a contender neither inherits another's
    // dirty pages nor meets the disk in another mood than the others did.
    let mut times: [Vec<Duration>; 7] = Default::default();
    for round in 0..runs {
        let contenders: [&dyn Fn() -> Duration; 7] = [
            &|| cp(Then::Nothing),
            &|| cp(Then::Sync),
            &|| cp(Then::SyncAndHash),
            &|| ours(&[HashKind::Xxh64], Overlap::Threads),
            &|| ours(&[HashKind::Xxh64], Overlap::Single),
            &|| ours(&[HashKind::Xxh3], Overlap::Threads),
            &|| ours(&HashKind::ALL, Overlap::Threads),
        ];
        // Each round starts with another contender, so none always runs right after the same one.
        for offset in 0..contenders.len() {
            let index = (offset + round) % contenders.len();
            let _ = Command::new("sync").status();
            times[index].push(contenders[index]());
        }
    }
    let [cp, cp_sync, cp_verified, xxh64, xxh64_single, xxh3, all] = times.map(median);

    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!(
        "copy_speed: {mib} MiB in the page cache, median of {runs} runs, in {}",
        base.display()
    );
    println!("  {:<34} {:>8.0} MB/s   1.00 (baseline)", "cp", rate(cp));
    let show = |name: &str, d: Duration| {
        println!(
            "  {:<34} {:>8.0} MB/s   {:.2} of cp, {:.2} of cp + sync",
            name,
            rate(d),
            cp.as_secs_f64() / d.as_secs_f64(),
            cp_sync.as_secs_f64() / d.as_secs_f64()
        );
    };
    show("cp + sync FILE", cp_sync);
    show("cp + sync + xxh64 of the copy", cp_verified);
    show("shotrouter copy, xxh64 (verified)", xxh64);
    show("  the same, one thread", xxh64_single);
    show("shotrouter copy, xxh3 (verified)", xxh3);
    show("shotrouter copy, all four (verified)", all);
}

/// What follows `cp` in a contender.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    Sync,
    SyncAndHash,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `mib` MiB of incompressible-looking bytes (a cheap xorshift stream).
fn write_source(path: &Path, mib: usize) {
    use std::io::Write;
    let mut file =
        std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path).expect("source"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block).expect("write source");
    }
    file.flush().expect("flush");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
