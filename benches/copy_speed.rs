//! Speed of a verified `copy:` (hash while copying, read back, flush, compare) against the
//! like-for-like baseline run in the same process: `cp SRC DST`, then `sync DST`, then
//! `xxh64sum DST` (three tools, one after another, as a careful operator would). Measured on a
//! tmpfs and on a local disk; prints medians and the ratio baseline time / our time (1.00 is
//! as fast as the tools, higher is faster).
//!
//! `cargo bench --bench copy_speed` copies 1 GiB that sits in the page cache, 3 rounds; set
//! `COPY_SPEED_MIB` and `COPY_SPEED_RUNS` for others, `COPY_SPEED_TMPFS` (default `/dev/shm`)
//! and `COPY_SPEED_DISK` (default the system temp folder) for the folders. Without `xxh64sum`
//! (Debian's `xxhash`) the baseline hashes its copy with the same xxHash library in a separate
//! read pass, and says so.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shotrouter::deliver::copy::{Overlap, ReadBack, TempFile, copy_verified_with};
use shotrouter::deliver::hash::{HashKind, Hashes};
use shotrouter::os::dir_handle::DirHandle;

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored: one measurement.
    let mib: usize = env_or("COPY_SPEED_MIB", 1024);
    let runs: usize = env_or("COPY_SPEED_RUNS", 3).max(1);
    let tool = Command::new("xxh64sum")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let folders = [
        (
            "tmpfs",
            std::env::var_os("COPY_SPEED_TMPFS")
                .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from),
        ),
        (
            "disk",
            std::env::var_os("COPY_SPEED_DISK").map_or_else(std::env::temp_dir, PathBuf::from),
        ),
    ];
    println!(
        "copy_speed: {mib} MiB in the page cache, median of {runs} runs; baseline `cp`, `sync FILE`, {}",
        if tool {
            "`xxh64sum` of the copy"
        } else {
            "xxh64 of the copy read back by this process (no `xxh64sum`: apt install xxhash)"
        }
    );
    for (label, base) in folders {
        measure(label, &base, mib, runs, tool);
    }
}

fn measure(label: &str, base: &Path, mib: usize, runs: usize, tool: bool) {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
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

    let baseline = || {
        let target = out.join("cp.bin");
        let started = Instant::now();
        run(Command::new("cp").arg(&source).arg(&target));
        run(Command::new("sync").arg(&target));
        if tool {
            let hashed = Command::new("xxh64sum").arg(&target).output();
            assert!(hashed.is_ok_and(|o| o.status.success()), "xxh64sum failed");
        } else {
            std::hint::black_box(hash_file(&target));
        }
        let elapsed = started.elapsed();
        std::fs::remove_file(&target).expect("rm");
        elapsed
    };
    let ours = |kinds: &[HashKind], overlap: Overlap, read_back: ReadBack| {
        let name = OsStr::new(".copy.bin");
        let started = Instant::now();
        let temp = TempFile::create(&handle, name).expect("temp");
        copy_verified_with(&source, &handle, name, &temp, kinds, overlap, read_back).expect("copy");
        let elapsed = started.elapsed();
        drop(temp);
        handle.remove(name).expect("rm");
        elapsed
    };
    // Round robin, each measurement after a `sync`: a contender neither inherits another's
    // dirty pages nor meets the disk in another mood than the others did.
    let mut times: [Vec<Duration>; 5] = Default::default();
    for round in 0..runs {
        let contenders: [&dyn Fn() -> Duration; 5] = [
            &baseline,
            &|| ours(&[HashKind::Xxh64], Overlap::Threads, ReadBack::Disk),
            &|| ours(&[HashKind::Xxh64], Overlap::Single, ReadBack::Disk),
            &|| ours(&[HashKind::Xxh64], Overlap::Threads, ReadBack::Cache),
            &|| ours(&[HashKind::Xxh3], Overlap::Threads, ReadBack::Disk),
        ];
        // Each round starts with another contender, so none always runs right after the same one.
        for offset in 0..contenders.len() {
            let index = (offset + round) % contenders.len();
            run(&mut Command::new("sync"));
            times[index].push(contenders[index]());
        }
    }
    let [baseline, xxh64, xxh64_single, xxh64_cache, xxh3] = times.map(median);
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!("{label} ({}, {}):", base.display(), fs_type(base));
    let show = |name: &str, d: Duration| {
        println!(
            "  {:<36} {:>7.3} s {:>7.0} MB/s   {:.2}x baseline",
            name,
            d.as_secs_f64(),
            rate(d),
            baseline.as_secs_f64() / d.as_secs_f64()
        );
    };
    show("cp + sync + xxh64sum (baseline)", baseline);
    show("shotrouter copy, xxh64 (verified)", xxh64);
    show("  the same, one thread", xxh64_single);
    show("  the same, read back from the cache", xxh64_cache);
    show("shotrouter copy, xxh3 (verified)", xxh3);
}

fn run(command: &mut Command) {
    let status = command.status();
    assert!(status.is_ok_and(|s| s.success()), "{command:?} failed");
}

/// The file system type of `path`, as `stat -f` names it.
fn fs_type(path: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// What `xxh64sum` does: the file read once, hashed.
fn hash_file(path: &Path) -> Vec<(HashKind, String)> {
    let mut file = std::fs::File::open(path).expect("copy");
    let mut hashes = Hashes::new(&[HashKind::Xxh64]);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer).expect("read back");
        if n == 0 {
            return hashes.finish();
        }
        hashes.update(&buffer[..n]);
    }
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
