//! benches/poll-pass contender: notify's `PollWatcher` over one tree, recursively, contents not
//! compared (size and mtime only). Prints `ready` once its initial scan is done, then runs until
//! killed; the bench measures it from outside (CPU from /proc, syscalls with perf).
//! Usage: notify-poll ROOT INTERVAL_MS
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use notify::{Config, PollWatcher, RecursiveMode, Watcher};

static EVENTS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = args.get(1).expect("usage: notify-poll ROOT INTERVAL_MS");
    let ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let config = Config::default()
        .with_poll_interval(Duration::from_millis(ms))
        .with_compare_contents(false);
    let start = Instant::now();
    let mut watcher = PollWatcher::new(
        |_event: notify::Result<notify::Event>| {
            EVENTS.fetch_add(1, Ordering::Relaxed);
        },
        config,
    )
    .expect("PollWatcher");
    // `watch` lists the whole tree (the initial scan) before it returns.
    watcher
        .watch(Path::new(root), RecursiveMode::Recursive)
        .expect("watch");
    println!("ready {:.3}", start.elapsed().as_secs_f64());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
