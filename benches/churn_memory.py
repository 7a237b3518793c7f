"""Drives benches/churn-memory: see that script. Prints one table; nothing is asserted here.

Each contender is a `shotrouter watch` daemon (its own shot tree of --folders folders and its own
store) with one rule that copies each `*.dat` to a `.prod` product beside it (so the product's
provenance is exercised too; products match no rule). In rounds, each contender gets a
batch of files with names never used before, spread over every folder, each written and closed;
the driver waits until every product of the batch is published, then deletes the batch's files and
products. The daemon's VmRSS is sampled 0.3 s after the deletions, just before its next batch, and once
more at the end. The contenders run at the same time, in lockstep by batches."""
import argparse, os, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"
KEEP = []


def status_kb(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU of the daemon (all threads, not its jobs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(cond, limit, step=0.01):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


class Contender:
    def __init__(self, label, binary, folders, jobs):
        self.label, self.binary = label, binary
        self.tmp = Path(tempfile.mkdtemp(prefix="sr-churn-"))
        KEEP.append(self.tmp)
        self.tree = self.tmp / "tree"
        self.dirs = [self.tree / f"sq{d // 100:02d}" / f"sh{d:04d}" for d in range(folders)]
        for d in self.dirs:
            d.mkdir(parents=True)
        rules = self.tmp / "rules.yaml"
        rules.write_text(
            f"version: 1\nwatch: [{self.tree}]\njobs: {jobs}\nrules:\n  - name: copy\n    match: \"**/*.dat\"\n"
            f"    output: \"{{dir}}/{{stem}}.prod\"\n    run: [cp, \"{{path}}\", \"{{out}}\"]\n"
        )
        self.state = self.tmp / "state"
        self.err = open(self.tmp / "daemon.log", "w+")
        env = {**os.environ, "SHOTROUTER_LOG": "warn,shotrouter::engine::lifecycle=info"}
        self.proc = subprocess.Popen([binary, "watch", "--state", self.state, rules], stderr=self.err, env=env)
        ok = wait_for(lambda: " watching " in Path(self.err.name).read_text(), 60)
        assert ok, f"{label}: the daemon did not start: {Path(self.err.name).read_text()[-2000:]}"
        self.samples = []  # (files created and deleted so far, VmRSS kB, VmHWM kB, CPU s, store bytes)
        self.done = 0
        self.missing = 0
        self.busy = 0.0  # wall seconds spent on its batches
        self.sample()

    def store_bytes(self):
        return sum(p.stat().st_size for p in self.state.glob("shotrouter.db*") if p.is_file())

    def sample(self):
        pid = self.proc.pid
        self.samples.append((self.done, status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM"), cpu_seconds(pid), self.store_bytes()))

    def batch(self, first, count, timeout):
        start = time.monotonic()
        names = []
        for i in range(first, first + count):
            d = self.dirs[i % len(self.dirs)]
            src = d / f"f{i:07d}.dat"
            with open(src, "wb") as f:
                f.write(b"x" * 64)
            names.append((src, d / f"f{i:07d}.prod"))
        pending = [p for _, p in names]
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending if not p.exists()]
            if pending:
                time.sleep(0.02)
        self.missing += len(pending)
        for src, prod in names:
            src.unlink(missing_ok=True)
            prod.unlink(missing_ok=True)
        self.done += count
        self.busy += time.monotonic() - start

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        # On disk, not in memory: the store (its WAL checkpointed at the stop) and the job logs.
        self.stopped_store = self.store_bytes()
        self.logs = [e.stat().st_blocks * 512 for e in os.scandir(self.state / "logs" / "copy")] if (self.state / "logs" / "copy").exists() else []


def churn(c, args, barrier, stop):
    first = 0
    while first < args.files and not stop.is_set():
        count = min(args.batch, args.files - first)
        if c.done:
            time.sleep(0.3)  # its last batch's deletions arrive
            c.sample()
        c.batch(first, count, timeout=300)
        first += count
        barrier.wait()


def progress(contenders, started, args, stop):
    line = "  ".join(f"{c.label}: {mb(c.samples[-1][1]):.1f} MB" for c in contenders)
    print(f"[{time.monotonic() - started:6.0f} s] {contenders[0].done} files  {line}", file=sys.stderr, flush=True)
    if args.max_minutes and time.monotonic() - started > args.max_minutes * 60:
        stop.set()


def slope(points):
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def mb(kb):
    return kb / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000, help="files per contender, created and deleted")
    ap.add_argument("--batch", type=int, default=10_000, help="files per batch")
    ap.add_argument("--folders", type=int, default=1000, help="folders the files are spread over")
    ap.add_argument("--jobs", type=int, default=2, help="the rules' jobs: (parallel jobs)")
    ap.add_argument("--binary", action="append", metavar="[LABEL=]PATH",
                    help="a shotrouter build to measure; repeat for more contenders (default: target/release/shotrouter)")
    ap.add_argument("--max-minutes", type=float, help="stop after the round that passes this budget (fewer files, same for all)")
    ap.add_argument("--rows", type=int, default=10, help="rows of the table (besides the first batch)")
    args = ap.parse_args()
    specs = args.binary or [f"HEAD={BIN}"]
    contenders = []
    started = time.monotonic()
    try:
        for spec in specs:
            label, _, path = spec.rpartition("=")
            contenders.append(Contender(label or path, Path(path).resolve(), args.folders, args.jobs))
        # The contenders run side by side (a thread each, in lockstep by rounds, so they stop at
        # the same file count): on a shared, busy machine they see the same conditions.
        stop = threading.Event()
        barrier = threading.Barrier(len(contenders), action=lambda: progress(contenders, started, args, stop))
        threads = [threading.Thread(target=churn, args=(c, args, barrier, stop)) for c in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.0)
        for c in contenders:
            c.sample()
    finally:
        for c in contenders:
            c.stop()
    report(contenders, args)
    for path in KEEP:
        shutil.rmtree(path, ignore_errors=True)


def report(contenders, args):
    total = contenders[0].done
    print(f"daemon memory while {total} files ({args.batch} a batch, {args.folders} folders) are created, copied to a product "
          f"by `cp` ({args.jobs} jobs), and deleted with their products; VmRSS in MB")
    points = [s for s in contenders[0].samples if s[0] > 0]
    step = max(1, len(points) // args.rows)
    chosen = sorted({0, *range(step - 1, len(points), step), len(points) - 1})
    head = "".join(f" {c.label:>16}" for c in contenders)
    print(f"  {'files':>9}{head}")
    for i in chosen:
        row = "".join(f" {mb(c.samples[i + 1][1]):16.1f}" for c in contenders)
        print(f"  {points[i][0]:9d}{row}")
    print()
    print(f"  {'':30}" + "".join(f" {c.label:>16}" for c in contenders))
    rows = []
    for c in contenders:
        s = [x for x in c.samples if x[0] > 0]
        half = [(x[0], x[1] * 1024) for x in s if x[0] >= total / 2]
        per_file = slope(half)
        first, last = s[0], s[-1]
        rows.append({
            "RSS at start (MB)": f"{mb(c.samples[0][1]):.1f}",
            f"RSS after the first batch (MB)": f"{mb(first[1]):.1f}",
            "final RSS (MB)": f"{mb(last[1]):.1f}",
            "final / first batch": f"{last[1] / first[1]:.2f}x",
            "peak RSS, VmHWM (MB)": f"{mb(last[2]):.1f}",
            "slope, 2nd half (B/file)": f"{per_file:.1f}",
            "at 1,000,000 files (MB)": (f"{mb(last[1]) + per_file * (1_000_000 - total) / 2**20:.1f}" + ("" if total >= 1_000_000 else " (extrap.)")),
            "daemon CPU (s)": f"{last[3]:.0f}",
            "daemon CPU per file (us)": f"{last[3] / total * 1e6:.0f}",
            "store while running (MB)": f"{last[4] / 2**20:.1f}",
            "store after the stop (MB)": f"{c.stopped_store / 2**20:.1f}",
            "job logs (files)": f"{len(c.logs)}",
            "job logs on disk (MB)": f"{sum(c.logs) / 2**20:.1f}",
            "files/s (wall)": f"{total / c.busy:.0f}",
            "products missing": f"{c.missing}",
        })
    for key in rows[0]:
        print(f"  {key:30}" + "".join(f" {r[key]:>16}" for r in rows))


if __name__ == "__main__":
    sys.exit(main())
