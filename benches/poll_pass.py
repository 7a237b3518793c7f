"""Drives benches/poll-pass: see that script. Prints tables; nothing is asserted here.

One tree per file system (N empty files in F folders, two levels: dNNN/sNN/fNNNN.exr), nothing
changing. Each contender runs alone on it, in turn, in the same run:

- shotrouter: the real daemon (`shotrouter watch`, with its job store), one root with
  `source: poll`, `poll: {hot, cold, quiet}`, and a rule stamping each job start;
- watchdog's PollingObserver (PyPI, in target/bench-venv), `timeout` = its pass interval;
- notify's PollWatcher (crates.io, benches/poll-contenders/notify-poll), poll interval set,
  `compare_contents(false)`.

A pass is found from outside: the thread that polls (shotrouter's `poll`, notify's
`notify-rs poll loop`, watchdog's emitter thread) uses CPU only while it passes, so its run
time in /proc/PID/task/TID/schedstat (ns) rises in bursts separated by the idle interval.
Once the process is steady (its initial scan done, the daemon's baseline recorded: a second
without CPU), the window opens at the end of one pass and closes at the end of the K-th pass
after it. In that window:

- CPU: the whole process's on-CPU time (every thread, schedstat, ns; the same time as
  utime+stime in /proc/PID/stat, finer), divided by K;
- syscalls: `perf stat -e raw_syscalls:sys_enter -p PID` (every thread) attached for the
  window, divided by K; idle time between passes is in the window and counted, not subtracted;
- wall: each pass's burst, from its first to its last sample with run time rising (10 ms
  samples), median of the K.

shotrouter's poller looks at each folder every `cold` interval when nothing changes, all of
them in one pass: one pass is one cold interval's worth of work. Then `strace -c -f` is
attached to the daemon for one more pass for the names of the calls.

Then, in the same daemon: 100 new files in 10 random folders, 5 of them "hot" (a file arrived
there a few seconds before) and 5 quiet, in 10 rounds spread over one cold interval, each file
written (4 KiB) then closed; last write ->
job start (the rule's stamp, same monotonic clock) against hot + quiet + 1 s (hot folders) and
cold + quiet + 1 s (quiet ones). And the daemon's VmRSS/VmHWM with the index.
"""
import argparse, os, random, re, shutil, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"
NOTIFY_BIN = ROOT / "target/poll-contenders/release/notify-poll"
VENV_PY = ROOT / "target/bench-venv/bin/python"
SAMPLE = 0.01

WATCHDOG_DRIVER = r"""
import sys, time
from watchdog.events import FileSystemEventHandler
from watchdog.observers.polling import PollingObserver
root, interval = sys.argv[1], float(sys.argv[2])
observer = PollingObserver(timeout=interval)
observer.schedule(FileSystemEventHandler(), root, recursive=True)
start = time.monotonic()
observer.start()  # takes the first snapshot (the initial scan) before it returns
emitter = next(iter(observer.emitters))
print("ready", f"{time.monotonic() - start:.3f}", emitter.native_id, flush=True)
while True:
    time.sleep(3600)
"""


def make_tree(root, folders, per_folder):
    start = time.monotonic()
    for d in range(folders):
        folder = root / f"d{d // 100:03d}" / f"s{d % 100:02d}"
        folder.mkdir(parents=True)
        for f in range(per_folder):
            os.close(os.open(folder / f"f{f:04d}.exr", os.O_CREAT | os.O_WRONLY, 0o644))
    return time.monotonic() - start


def leaf_folders(tree):
    return sorted(p for top in tree.iterdir() if top.is_dir() for p in top.iterdir() if p.is_dir())


def thread_runtime(pid, tid):
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    except OSError:
        return 0


def process_runtime(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        total += thread_runtime(pid, task)
    return total


def find_thread(pid, prefix):
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            if Path(f"/proc/{pid}/task/{task}/comm").read_text().strip().startswith(prefix):
                return int(task)
        except OSError:
            pass
    return None


def memory(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024
    return get("VmRSS"), get("VmHWM")


def wait_steady(pid, quiet_for=1.0, limit=900):
    """Until the process used (almost) no CPU for `quiet_for` seconds."""
    deadline = time.monotonic() + limit
    last, since = process_runtime(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = process_runtime(pid)
        if now - last > 2_000_000:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return True
    return False


class PassWatch:
    """Follows the polling thread's bursts of run time: next_end() returns when one ends."""

    def __init__(self, pid, tid, idle_after):
        self.pid, self.tid, self.idle_after = pid, tid, idle_after

    def next_end(self, limit=900):
        deadline = time.monotonic() + limit
        last = thread_runtime(self.pid, self.tid)
        began = ended = None
        cpu0 = last
        while time.monotonic() < deadline:
            time.sleep(SAMPLE)
            now_rt = thread_runtime(self.pid, self.tid)
            t = time.monotonic()
            if now_rt > last:
                if began is None:
                    began, cpu0 = t - SAMPLE, last
                ended = t
            elif began is not None and t - ended >= self.idle_after:
                return ended - began, (now_rt - cpu0) / 1e9
            last = now_rt
        raise RuntimeError("no pass ended in time")


def perf_start(pid):
    return subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)], stderr=subprocess.PIPE, text=True)


def perf_stop(perf):
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate()
    for line in err.splitlines():
        if "raw_syscalls:sys_enter" in line:
            return int(line.split(",")[0])
    raise RuntimeError(f"perf said: {err}")


def measure(pid, tid, passes, idle_after):
    """Steady-state cost over `passes` passes of the polling thread `tid` of process `pid`."""
    watch = PassWatch(pid, tid, idle_after)
    wait_steady(pid)
    watch.next_end()
    perf = perf_start(pid)
    time.sleep(0.3)  # perf attaches during the idle gap
    cpu0, t0 = process_runtime(pid), time.monotonic()
    walls, thread_cpus = [], []
    for _ in range(passes):
        wall, cpu = watch.next_end()
        walls.append(wall)
        thread_cpus.append(cpu)
    cpu1, t1 = process_runtime(pid), time.monotonic()
    calls = perf_stop(perf)
    return {
        "passes": passes,
        "window": t1 - t0,
        "wall": statistics.median(walls),
        "cpu": (cpu1 - cpu0) / 1e9 / passes,
        "thread_cpu": statistics.median(thread_cpus),
        "syscalls": calls / passes,
        "mem": memory(pid),
    }


def strace_one_pass(pid, tid, idle_after, tmp):
    """`strace -c -f` on the process for one pass: the top calls."""
    watch = PassWatch(pid, tid, idle_after)
    watch.next_end()
    out = tmp / "strace.txt"
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    watch.next_end()
    st.send_signal(signal.SIGINT)
    st.wait()
    rows = []
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            rows.append((int(parts[3]), parts[-1]))
    rows.sort(reverse=True)
    return ", ".join(f"{n:,} {name}" for n, name in rows[:4])


def read_stamps(log):
    stamps = {}
    if log.exists():
        for line in log.read_bytes().splitlines():
            t, _, path = line.partition(b" ")
            stamps.setdefault(path.decode(), int(t))
    return stamps


def wait_for(cond, limit):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def write_file(path):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * 4096)
    last = time.monotonic_ns()
    os.close(fd)
    return last


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def run_shotrouter(tree, tmp, stamp, args):
    log = tmp / "starts.log"
    rules = tmp / "rules.yaml"
    rules.write_text(
        "version: 1\njobs: 2\nwatch:\n"
        f"  - path: {tree}\n    source: poll\n    poll: {{hot: {args.hot}s, cold: {args.cold}s, quiet: {args.quiet}s}}\n"
        f"rules:\n  - name: stamp\n    match: \"**\"\n    run: [{stamp}, {log}, \"{{path}}\"]\n"
    )
    err = open(tmp / "daemon.log", "w+")
    start = time.monotonic()
    proc = subprocess.Popen([BIN, "watch", "--state", tmp / "state", rules], stderr=err, env={**os.environ, "SHOTROUTER_LOG": "warn,shotrouter::engine=info,shotrouter::source::poll=debug"})
    try:
        ok = wait_for(lambda: "initial pass done" in Path(err.name).read_text() or proc.poll() is not None, 900)
        assert ok and proc.poll() is None, Path(err.name).read_text()[-2000:]
        initial = time.monotonic() - start
        tid = None
        wait_for(lambda: find_thread(proc.pid, "poll") is not None, 10)
        tid = find_thread(proc.pid, "poll")
        idle_after = min(0.5, args.hot / 3)
        res = measure(proc.pid, tid, args.passes, idle_after)
        res["initial"] = initial
        res["strace"] = strace_one_pass(proc.pid, tid, idle_after, tmp) if shutil.which("strace") else "strace missing"
        res["latency"] = latency(tree, log, args)
        res["mem_after"] = memory(proc.pid)
        return res
    finally:
        proc.terminate()
        proc.wait()


def latency(tree, log, args):
    rng = random.Random(args.seed)
    folders = rng.sample(leaf_folders(tree), 10)
    hot, cold = folders[:5], folders[5:]
    warm = [str(f / "warm.exr") for f in hot]
    for path in warm:
        write_file(path)
    wait_for(lambda: all(p in read_stamps(log) for p in warm), args.cold + args.quiet + 10)
    time.sleep(0.5)
    # Ten rounds spread over one cold interval, one file per folder each: the arrivals fall at
    # every phase of the poller's schedule, so the spread shows the bound, not one lucky phase.
    written = {}
    for i in range(10):
        for folder in folders:
            path = folder / f"new.{i:02d}.exr"
            written[str(path)] = (write_file(path), folder in hot)
        time.sleep(args.cold / 10)
    wait_for(lambda: all(p in read_stamps(log) for p in written), args.cold + args.quiet + 15)
    stamps = read_stamps(log)
    out = {}
    for label, is_hot in (("hot", True), ("quiet", False)):
        lat = [(stamps[p] - t) / 1e9 for p, (t, h) in written.items() if h == is_hot and p in stamps]
        missed = sum(1 for p, (_, h) in written.items() if h == is_hot and p not in stamps)
        out[label] = (lat, missed)
    for path in list(written) + warm:
        os.unlink(path)
    return out


def run_notify(tree, tmp, args):
    proc = subprocess.Popen([NOTIFY_BIN, tree, str(int(args.interval * 1000))], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", line
        wait_for(lambda: find_thread(proc.pid, "notify-rs") is not None, 10)
        tid = find_thread(proc.pid, "notify-rs")
        res = measure(proc.pid, tid, args.passes, min(0.5, args.interval / 3))
        res["initial"] = float(line[1])
        return res
    finally:
        proc.kill()
        proc.wait()


def run_watchdog(tree, tmp, args):
    proc = subprocess.Popen([VENV_PY, "-c", WATCHDOG_DRIVER, tree, str(args.interval)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", line
        res = measure(proc.pid, int(line[2]), args.passes, min(0.5, args.interval / 3))
        res["initial"] = float(line[1])
        return res
    finally:
        proc.kill()
        proc.wait()


def tmpfs_dir(keep):
    """A fresh tmpfs: mounted when root, else under /dev/shm."""
    path = Path(tempfile.mkdtemp(prefix="sr-pollpass-tmpfs-"))
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,nr_inodes=3000000", "tmpfs", path]).returncode == 0:
        keep.append(("umount", path))
        return path
    path.rmdir()
    path = Path(tempfile.mkdtemp(prefix="sr-pollpass-", dir="/dev/shm"))
    keep.append(("rm", path))
    return path


def fs_type(path):
    return subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000, help="files in the tree")
    ap.add_argument("--folders", type=int, default=10_000, help="leaf folders holding them")
    ap.add_argument("--disk-files", type=int, help="files in the local-disk tree (default: --files)")
    ap.add_argument("--fs", default="tmpfs,disk", help="which trees: tmpfs, disk or both")
    ap.add_argument("--tmpfs-tree", type=Path, help="reuse this tree (made by an earlier run) on tmpfs")
    ap.add_argument("--disk-tree", type=Path, help="reuse this tree on local disk")
    ap.add_argument("--disk-dir", type=Path, default=Path("/var/tmp"), help="where the local-disk tree goes")
    ap.add_argument("--passes", type=int, default=3, help="passes per window")
    ap.add_argument("--hot", type=float, default=2)
    ap.add_argument("--cold", type=float, default=10)
    ap.add_argument("--quiet", type=float, default=3)
    ap.add_argument("--interval", type=float, default=2, help="watchdog's timeout and notify's poll interval")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cleanup = []
    tmp = Path(tempfile.mkdtemp(prefix="sr-pollpass-"))
    cleanup.append(("rm", tmp))
    stamp = tmp / "stamp"
    subprocess.run(["cc", "-O2", "-o", stamp, ROOT / "benches/helpers/stamp.c"], check=True)
    results = []
    try:
        for fs in args.fs.split(","):
            given = args.tmpfs_tree if fs == "tmpfs" else args.disk_tree
            files = args.files if fs == "tmpfs" else (args.disk_files or args.files)
            folders = args.folders if files == args.files else max(1, args.folders * files // args.files)
            if given:
                tree = given
                files = sum(len(os.listdir(f)) for f in leaf_folders(tree))
                folders = len(leaf_folders(tree))
                made = "reused"
            else:
                base = tmpfs_dir(cleanup) if fs == "tmpfs" else Path(tempfile.mkdtemp(prefix="sr-pollpass-", dir=args.disk_dir))
                if fs != "tmpfs":
                    cleanup.append(("rm", base))
                tree = base / "tree"
                made = f"made in {make_tree(tree, folders, files // folders):.0f} s"
            label = f"{fs_type(tree)} ({fs}), {files:,} files in {folders:,} folders, {made}"
            print(f"tree: {tree}: {label}", flush=True)
            row = {"label": label}
            work = Path(tempfile.mkdtemp(prefix="sr-run-", dir=tmp))
            row["shotrouter"] = run_shotrouter(tree, work, stamp, args)
            print(f"  shotrouter done", flush=True)
            row["watchdog"] = run_watchdog(tree, work, args)
            print(f"  watchdog done", flush=True)
            row["notify"] = run_notify(tree, work, args)
            print(f"  notify done", flush=True)
            results.append(row)
    finally:
        for kind, path in reversed(cleanup):
            if kind == "umount":
                subprocess.run(["umount", path])
                path.rmdir()
            else:
                shutil.rmtree(path, ignore_errors=True)
    report(results, args)


def report(results, args):
    names = {
        "shotrouter": f"shotrouter watch (poll: hot {args.hot:g}s, cold {args.cold:g}s, quiet {args.quiet:g}s)",
        "watchdog": f"watchdog PollingObserver (timeout {args.interval:g}s)",
        "notify": f"notify PollWatcher (interval {args.interval:g}s)",
    }
    for row in results:
        print(f"\n{row['label']}: one steady-state pass (median wall; CPU of the whole process and syscalls per pass over {args.passes} passes; (poller): the polling thread's CPU, median pass)")
        print(f"  {'':58} {'wall ms':>9} {'CPU ms':>9} {'(poller)':>9} {'syscalls':>11} {'RSS MB':>7} {'HWM MB':>7} {'initial s':>9}")
        for key in ("shotrouter", "watchdog", "notify"):
            r = row[key]
            print(f"  {names[key]:58} {r['wall'] * 1e3:9.1f} {r['cpu'] * 1e3:9.1f} {r['thread_cpu'] * 1e3:9.1f} {r['syscalls']:11,.0f} {r['mem'][0]:7.0f} {r['mem'][1]:7.0f} {r['initial']:9.1f}")
        sr = row["shotrouter"]
        best_calls = min(row[k]["syscalls"] for k in ("watchdog", "notify"))
        best_cpu = min(row[k]["cpu"] for k in ("watchdog", "notify"))
        best_wall = min(row[k]["wall"] for k in ("watchdog", "notify"))
        print(f"  shotrouter against the best contender: {best_calls / sr['syscalls']:.0f}x fewer syscalls, {best_cpu / sr['cpu']:.0f}x less CPU, {best_wall / sr['wall']:.0f}x less wall per pass")
        for key in ("watchdog", "notify"):
            r = row[key]
            print(f"    vs {key}: {r['syscalls'] / sr['syscalls']:.0f}x syscalls, {r['cpu'] / sr['cpu']:.0f}x CPU, {r['wall'] / sr['wall']:.0f}x wall")
        print(f"  shotrouter's calls in one pass (strace -c -f): {sr['strace']}")
        print(f"  shotrouter daemon memory with the index: VmRSS {sr['mem'][0]:.0f} MB, VmHWM {sr['mem'][1]:.0f} MB (after the latency run: {sr['mem_after'][0]:.0f} / {sr['mem_after'][1]:.0f} MB)")
        print("  last write -> job start, 100 new files in 10 random folders (5 hot, 5 quiet):")
        for label, bound in (("hot", args.hot + args.quiet + 1), ("quiet", args.cold + args.quiet + 1)):
            lat, missed = sr["latency"][label]
            print(f"    {label:5} folders: p50 {pct(lat, 50):5.2f} s  p95 {pct(lat, 95):5.2f} s  max {max(lat, default=float('nan')):5.2f} s  (bound {bound:g} s)  missed {missed}")


if __name__ == "__main__":
    sys.exit(main())
