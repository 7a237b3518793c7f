"""Drives benches/watch-latency: see that script. Prints one table; nothing is asserted here."""
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"


def build_stamp(tmp):
    out = tmp / "stamp"
    subprocess.run(["cc", "-O2", "-o", out, ROOT / "benches/helpers/stamp.c"], check=True)
    return out


# Trees are deleted only at the very end: mass deletions make ext4's inode allocation slow for a
# while (it skips recently freed inodes), which would tax whichever contender runs next.
KEEP = []


def scratch(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    KEEP.append(path)
    return path


def read_stamps(log):
    stamps = {}
    dupes = 0
    if log.exists():
        for line in log.read_bytes().splitlines():
            t, _, path = line.partition(b" ")
            if path in stamps:
                dupes += 1
            stamps.setdefault(path, int(t))
    return stamps, dupes


def wait_for(cond, limit):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


class Shotrouter:
    name = "shotrouter watch"
    extra = []
    binary = BIN

    def __init__(self, tmp, tree, stamp, log):
        rules = tmp / "rules.yaml"
        rules.write_text(f"version: 1\nwatch: [{tree}]\njobs: 2\nrules:\n  - name: stamp\n    match: \"**\"\n    run: [{stamp}, {log}, \"{{path}}\"]\n")
        self.err = open(tmp / "daemon.log", "w+")
        self.proc = subprocess.Popen([self.binary, "watch", *self.extra, "--state", tmp / "state", rules], stderr=self.err, env={**os.environ, "SHOTROUTER_LOG": "warn,shotrouter::engine=info"})
        ok = wait_for(lambda: " watching " in Path(self.err.name).read_text(), 30)
        assert ok, "shotrouter did not start"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class ShotrouterNoStore(Shotrouter):
    name = "shotrouter watch --no-store"
    extra = ["--no-store"]


class InotifywaitLoop:
    name = "inotifywait | while read"

    def __init__(self, tmp, tree, stamp, log):
        script = f"inotifywait -m -r -e close_write,moved_to --format '%w%f' '{tree}' 2>'{tmp}/inw.err' | while read -r f; do '{stamp}' '{log}' \"$f\"; done"
        self.proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
        ok = wait_for(lambda: "Watches established" in Path(tmp, "inw.err").read_text() if Path(tmp, "inw.err").exists() else False, 30)
        assert ok, "inotifywait did not start"

    def stop(self):
        os.killpg(self.proc.pid, 15)
        self.proc.wait()


def baseline_of(binary):
    """The two store contenders again, run from another build (`--baseline`), so a change is
    measured against its base in the same run, interleaved on the same noisy machine."""
    store = type("BaselineStore", (Shotrouter,), {"name": "baseline watch", "binary": binary})
    no_store = type("BaselineNoStore", (ShotrouterNoStore,), {"name": "baseline --no-store", "binary": binary})
    return store, no_store


def latency(kind, stamp, files):
    tmp = scratch("sr-lat-")
    tree, log = tmp / "tree", tmp / "stamps.log"
    (tree / "shot").mkdir(parents=True)
    runner = kind(tmp, tree, stamp, log)
    closed = {}
    for i in range(files):
        path = tree / "shot" / f"frame.{i:04d}.exr"
        with open(path, "wb") as f:
            f.write(b"x" * 1024)
        closed[str(path).encode()] = time.monotonic_ns()
        time.sleep(0.01)
    wait_for(lambda: len(read_stamps(log)[0]) >= files, 30)
    runner.stop()
    stamps, dupes = read_stamps(log)
    lat = [(stamps[p] - t) / 1e6 for p, t in closed.items() if p in stamps]
    return lat, files - len(lat), dupes


def burst(kind, stamp, files, dirs=100):
    tmp = scratch("sr-burst-")
    tree, log = tmp / "tree", tmp / "stamps.log"
    tree.mkdir()
    runner = kind(tmp, tree, stamp, log)
    start = time.monotonic_ns()
    per_dir = files // dirs
    for d in range(dirs):
        folder = tree / f"d{d:03d}"
        folder.mkdir()
        for f in range(per_dir):
            with open(folder / f"f{f:04d}.exr", "wb") as out:
                out.write(b"x")
    # Done when the stamps stop growing for 2 s (the loop never reaches `files` when it misses).
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 2.0:
        n = len(read_stamps(log)[0])
        if n != last:
            last, quiet_since = n, time.monotonic()
        if n >= files and issubclass(kind, Shotrouter):
            break
        time.sleep(0.05)
    cpu = daemon_cpu(runner)
    runner.stop()
    stamps, dupes = read_stamps(log)
    end = max(stamps.values()) if stamps else start
    rate = len(stamps) / ((end - start) / 1e9) if stamps else 0
    return rate, files - len(stamps), dupes, cpu / max(len(stamps), 1) * 1e6


def daemon_cpu(runner):
    """CPU seconds (user + system, all threads, not its jobs) the daemon has used so far: a
    steadier measure of what the store costs than throughput on a noisy 2-core machine."""
    if not isinstance(runner, Shotrouter):
        return float("nan")
    fields = Path(f"/proc/{runner.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn_limit(stamp, files, workers=2):
    tmp = scratch("sr-spawn-")
    log = tmp / "stamps.log"
    names = "\n".join(f"/x/f{i}" for i in range(files)) + "\n"
    start = time.monotonic()
    subprocess.run(["xargs", "-d", "\n", "-P", str(workers), "-n", "1", stamp, log], input=names.encode(), check=True)
    elapsed = time.monotonic() - start
    return files / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300, help="files for the latency run")
    ap.add_argument("--burst", type=int, default=10_000, help="files for the burst run (100 folders)")
    ap.add_argument("--repeat", type=int, default=3, help="burst runs per contender; the median is shown")
    ap.add_argument("--only", choices=["latency", "burst"], help="run one half")
    ap.add_argument("--baseline", type=Path, help="another build of shotrouter to run beside this one")
    args = ap.parse_args()
    stamp = build_stamp(scratch("sr-bench-"))
    if args.only != "burst":
        print(f"close -> job start latency, {args.files} files written 10 ms apart (contenders interleaved, {args.repeat} rounds pooled)")
        print(f"  {'':26} {'p50 ms':>8} {'p99 ms':>8} {'missed':>7} {'twice':>6}")
        contenders = (Shotrouter, ShotrouterNoStore, InotifywaitLoop)
        if args.baseline:
            contenders = (baseline_of(args.baseline)[0], *contenders)
        pooled = {kind: ([], 0, 0) for kind in contenders}
        for _ in range(args.repeat):
            for kind in contenders:
                lat, missed, dupes = latency(kind, stamp, args.files)
                old = pooled[kind]
                pooled[kind] = (old[0] + lat, old[1] + missed, old[2] + dupes)
        p99 = {}
        for kind in contenders:
            lat, missed, dupes = pooled[kind]
            p99[kind] = pct(lat, 99)
            print(f"  {kind.name:26} {pct(lat, 50):8.2f} {p99[kind]:8.2f} {missed:7d} {dupes:6d}")
        loop = p99[InotifywaitLoop]
        print(f"\n  p99 against the inotifywait loop's: with the store {p99[Shotrouter] / loop:.2f}x, without {p99[ShotrouterNoStore] / loop:.2f}x")
    if args.only == "latency":
        return
    print(f"\nburst: {args.burst} files into 100 new folders, trivial command (median of {args.repeat}, interleaved)")
    pairs = [(Shotrouter, ShotrouterNoStore)]
    if args.baseline:
        pairs.insert(0, baseline_of(args.baseline))
    contenders = (*(kind for pair in pairs for kind in pair), InotifywaitLoop)
    runs = {"limit": [], **{kind: [] for kind in contenders}}
    for _ in range(args.repeat):
        runs["limit"].append(spawn_limit(stamp, args.burst))
        for kind in contenders:
            runs[kind].append(burst(kind, stamp, args.burst))
    limit = sorted(runs["limit"])[len(runs["limit"]) // 2]
    print(f"  {'spawn limit (xargs -P 2)':26} {limit:8.0f} /s   runs: {' '.join(f'{r:.0f}' for r in runs['limit'])}")
    for kind in contenders:
        rate, missed, dupes, _ = sorted(runs[kind])[len(runs[kind]) // 2]
        all_rates = " ".join(f"{r[0]:.0f}" for r in runs[kind])
        print(f"  {kind.name:26} {rate:8.0f} /s  ({rate / limit:5.0%} of the spawn limit)  missed {missed}, twice {dupes}   runs: {all_rates}")
    for store, no_store in pairs:
        build = "the baseline's" if store.binary != BIN else "the job"
        with_store = sorted(runs[store])[len(runs[store]) // 2][0]
        without = sorted(runs[no_store])[len(runs[no_store]) // 2][0]
        print(f"\n  {build} store costs {1 - with_store / without:.1%} of burst throughput (median with / median without)")
        cpu_with = sorted(r[3] for r in runs[store])[len(runs[store]) // 2]
        cpu_without = sorted(r[3] for r in runs[no_store])[len(runs[no_store]) // 2]
        print(f"  daemon CPU per job: {cpu_with:.0f} us with the store, {cpu_without:.0f} us without ({cpu_with / cpu_without:.2f}x)")
    for path in KEEP:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
