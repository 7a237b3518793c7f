"""Drives benches/cluster: see that script. Prints tables; nothing is asserted here.

Every measurement starts from nothing: a new tree, a new rules file, a new store (a new
`.shotrouter` folder for SQLite, a new database on the run's own server for PostgreSQL), one
`shotrouter watch --no-run` that only enqueues, and `shotrouter worker` processes that claim and
run. Both backends run in the same run, interleaved, so each is the other's baseline.

1. Coordination overhead: N jobs of `sleep 0.2` on 1, 2, 4, 8 workers (`--jobs 1` each). The
   files are written and the watcher has enqueued every job before the first worker starts, so
   detection is not in the figure. Elapsed = from just before the first worker is spawned (wall
   clock, ms) to the last job's `finished_at` in the store; jobs/s against the ideal of
   workers x 5/s. The same from the first job's `started_at` ("steady") leaves out the workers'
   start-up (process start, store open, node registration).
2. Trivial jobs: N jobs of `true`, queued first, on one worker with `--jobs 4`; the same
   elapsed (worker spawn -> last `finished_at`), jobs/s, PostgreSQL against SQLite.
3. Enqueue-to-start latency: one idle worker (`--jobs 2`, started and waiting), files written
   one at a time 50-150 ms apart (seeded); each job runs benches/helpers/stamp_wall.c, which
   records CLOCK_REALTIME in ms as its first act; latency = stamp - the job row's `created_at`
   (the store's clock: the watcher's for SQLite, the database's for PostgreSQL; same machine).

The store's rows are read with `shotrouter jobs --json` (`--state` for SQLite; `--store URL`
for PostgreSQL when this build's `jobs` takes it, else `psql` on the same table).

PostgreSQL: the driver starts its own server as the tests do (initdb into a temp folder as the
`postgres` user, trust auth, 127.0.0.1 and a free port, socket in the temp folder) and stops it
(`pg_ctl stop -m immediate`) at the end, also on errors and Ctrl-C. By default it runs with
`synchronous_commit=off`, the durability SQLite's WAL + `synchronous=NORMAL` gives the embedded
store (commits survive a crash of the process, not of the machine);
`--pg-synchronous-commit on` measures the stock setting.
"""
import argparse, functools, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"
KEEP = []


def scratch(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    KEEP.append(path)
    return path


def now_ms():
    return time.time() * 1000.0


def wait_for(what, cond, limit, every=0.05):
    deadline = time.monotonic() + limit
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(every)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def is_root():
    return os.geteuid() == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL's initdb is neither on PATH nor under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class PgServer:
    """A PostgreSQL server of this run only, in a temp folder; `stop()` is idempotent."""

    def __init__(self, synchronous_commit, options=()):
        self.bin = pg_bin()
        self.dir = scratch("sr-bench-pg-")
        self.data = self.dir / "data"
        self.port = None
        self.databases = 0
        if is_root():
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        os.chmod(self.dir, 0o700)
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        (self.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        for _ in range(3):
            port = free_port()
            options = f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c synchronous_commit={synchronous_commit}" + "".join(f" -c {o}" for o in options)
            done = self.run("pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "60", "-o", options, "start", check=False)
            if done.returncode == 0:
                self.port = port
                break
        if self.port is None:
            raise RuntimeError(f"PostgreSQL did not start: {(self.dir / 'server.log').read_text(errors='replace')}")

    def command(self, program, *args):
        argv = [str(self.bin / program), *map(str, args)]
        return ["runuser", "-u", "postgres", "--", *argv] if is_root() else argv

    def run(self, program, *args, check=True):
        done = subprocess.run(self.command(program, *args), capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr}")
        return done

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql):
        done = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url(db), "-c", sql], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr}")
        return done.stdout

    def fresh_database(self):
        self.databases += 1
        name = f"bench{self.databases}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name

    def stop(self):
        if self.port is not None:
            self.run("pg_ctl", "-D", self.data, "stop", "-m", "immediate", "-w", check=False)
            self.port = None


@functools.cache
def takes_store(command):
    """Whether this build's `shotrouter COMMAND` has a `--store` option."""
    out = subprocess.run([BIN, command, "--help"], capture_output=True, text=True).stdout
    return "--store" in out


class Cluster:
    """One store, one `watch --no-run`, and workers started on demand."""

    def __init__(self, backend, server, command):
        self.backend = backend
        self.tmp = scratch(f"sr-bench-{backend}-")
        self.tree = self.tmp / "shots"
        self.tree.mkdir()
        rules = self.tmp / "rules.yaml"
        argv = ", ".join(json.dumps(str(a)) for a in command)
        rules.write_text(f"version: 1\nwatch: [{json.dumps(str(self.tree))}]\nrules:\n  - name: bench\n    match: \"**\"\n    run: [{argv}]\n")
        self.server = server
        if backend == "sqlite":
            self.store = str(self.tmp / ".shotrouter")
            watch_store = []
        else:
            self.db = server.fresh_database()
            self.store = server.url(self.db)
            watch_store = ["--store", self.store]
        self.procs = []
        log = self.tmp / "watch.log"
        self.watcher = self.spawn(["watch", "--no-run", *watch_store, rules], log)
        try:
            wait_for("the watcher to place its watches", lambda: " watching " in log.read_text(errors="replace") or self.dead(self.watcher, log), 30)
        except BaseException:
            self.stop()
            raise

    def spawn(self, args, log):
        proc = subprocess.Popen([BIN, *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env={**os.environ, "SHOTROUTER_LOG": "info"})
        proc.log = log
        self.procs.append(proc)
        return proc

    @staticmethod
    def dead(proc, log):
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name} exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        return False

    def worker(self, name, jobs):
        return self.spawn(["worker", "--store", self.store, "--name", name, "--jobs", jobs], self.tmp / f"{name}.log")

    def rows(self):
        """(status, created_at, started_at, finished_at, path under the tree, node) of every job."""
        if self.backend == "sqlite" or takes_store("jobs"):
            where = ["--state", self.store] if self.backend == "sqlite" else ["--store", self.store]
            done = subprocess.run([BIN, "jobs", "--json", "--limit", "10000000", *where], capture_output=True)
            if done.returncode != 0:
                raise RuntimeError(f"shotrouter jobs: {done.stderr.decode(errors='replace')}")
            prefix = f"{self.tree}/"
            return [(r["status"], r["created_at"], r.get("started_at"), r.get("finished_at"), r["path"].removeprefix(prefix), r.get("node")) for r in json.loads(done.stdout)]
        out = self.server.psql(self.db, "SELECT j.status, j.created_at, j.started_at, j.finished_at, convert_from(f.rel, 'UTF8'), j.node FROM jobs j JOIN files f ON f.id = j.file_id")
        rows = []
        for line in out.splitlines():
            status, created, started, finished, rel, node = line.split("\t")
            rows.append((status, int(created), int(started) if started else None, int(finished) if finished else None, rel, node))
        return rows

    def claimed_at(self):
        """{path under the tree: claimed_at} (ms), read from the store's table directly (the
        CLI does not show claim times): splits a latency into waking + claiming and spawning."""
        if self.backend == "sqlite":
            import sqlite3
            db = sqlite3.connect(f"file:{self.store}/shotrouter.db?mode=ro", uri=True)
            rows = db.execute("SELECT CAST(f.rel AS TEXT), j.claimed_at FROM jobs j JOIN files f ON f.id = j.file_id").fetchall()
            db.close()
            return {rel: at for rel, at in rows if at is not None}
        out = self.server.psql(self.db, "SELECT convert_from(f.rel, 'UTF8'), j.claimed_at FROM jobs j JOIN files f ON f.id = j.file_id WHERE j.claimed_at IS NOT NULL")
        return {rel: int(at) for rel, at in (line.split("\t") for line in out.splitlines())}

    def count(self, status):
        for proc in self.procs:
            self.dead(proc, proc.log)
        return sum(1 for r in self.rows() if r[0] == status)

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_files(tree, n, folders=10):
    for i in range(n):
        folder = tree / f"sh{i % folders:03d}"
        folder.mkdir(exist_ok=True)
        with open(folder / f"f{i:05d}.exr", "wb") as f:
            f.write(b"x")


def split_time(rows):
    """Where a worker's time goes, from the store's stamps (each is the commit of a write):
    mean ms from a job's `started_at` to its `finished_at` (the step, plus the end's commit),
    and mean ms from one job's `finished_at` to the next `started_at` on the same node (the
    claim, the spawn, the start's commit). Meaningful for --jobs 1 workers."""
    by_node = {}
    for r in rows:
        by_node.setdefault(r[5], []).append((r[2], r[3]))
    runs, gaps = [], []
    for spans in by_node.values():
        spans.sort()
        runs += [f - s for s, f in spans]
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    mean = lambda v: sum(v) / len(v) if v else float("nan")
    return mean(runs), mean(gaps)


def queued_then_run(backend, server, command, n, workers, jobs_each, work_s):
    """Writes n files, waits until all are queued, starts the workers; (elapsed from the
    spawn, elapsed from the first start) in seconds, and split_time's figures."""
    cluster = Cluster(backend, server, command)
    try:
        write_files(cluster.tree, n)
        wait_for(f"{n} jobs queued", lambda: cluster.count("queued") >= n, 60 + n * 0.05, every=0.5)
        t0 = now_ms()
        for w in range(workers):
            cluster.worker(f"w{w + 1}", jobs_each)
        limit = 60 + 3 * n * work_s / (workers * jobs_each)
        wait_for(f"{n} jobs done", lambda: cluster.count("done") >= n, limit, every=0.5)
        rows = [r for r in cluster.rows() if r[0] == "done"]
        last = max(r[3] for r in rows)
        first = min(r[2] for r in rows)
        return (last - t0) / 1000, (last - first) / 1000, *split_time(rows)
    finally:
        cluster.stop()


def coordination(backends, server, n, counts, repeat):
    print(f"\n1. coordination overhead: {n} jobs of `sleep 0.2`, queued before the workers start; each worker --jobs 1")
    print(f"   {'backend':10} {'workers':>7} {'ideal/s':>8} {'jobs/s':>8} {'of ideal':>9} {'steady/s':>9} {'of ideal':>9} {'run ms':>7} {'gap ms':>7}   runs (of ideal)")
    results = {}
    for workers in counts:
        for _ in range(repeat):
            for backend in backends:
                results.setdefault((backend, workers), []).append(queued_then_run(backend, server, ["sleep", "0.2"], n, workers, 1, 0.2))
        for backend in backends:
            runs = results[(backend, workers)]
            ideal = workers * 5.0
            elapsed, steady, run_ms, gap_ms = sorted(runs)[len(runs) // 2]
            rate, steady_rate = n / elapsed, n / steady
            all_runs = " ".join(f"{n / r[0] / ideal:.0%}" for r in runs)
            print(f"   {backend:10} {workers:7d} {ideal:8.1f} {rate:8.2f} {rate / ideal:9.1%} {steady_rate:9.2f} {steady_rate / ideal:9.1%} {run_ms:7.1f} {gap_ms:7.1f}   {all_runs}", flush=True)
    return results


def trivial(backends, server, n, repeat):
    print(f"\n2. trivial jobs: {n} jobs of `true`, queued first, one worker --jobs 4 (worker spawn -> last done)")
    rates = {b: [] for b in backends}
    for _ in range(repeat):
        for backend in backends:
            elapsed = queued_then_run(backend, server, ["true"], n, 1, 4, 0.002)
            rates[backend].append(n / elapsed[0])
    med = {b: sorted(r)[len(r) // 2] for b, r in rates.items()}
    for backend in backends:
        runs = " ".join(f"{r:.0f}" for r in rates[backend])
        ratio = f"  {med[backend] / med['sqlite']:.2f}x SQLite" if "sqlite" in med and backend != "sqlite" else ""
        print(f"   {backend:10} {med[backend]:8.1f} jobs/s{ratio}   runs: {runs}", flush=True)
    return med


def latency(backends, server, n, stamp, seed):
    print(f"\n3. enqueue -> start latency on an idle worker (--jobs 2): {n} files, one every 50-150 ms")
    print(f"   {'backend':10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missed':>7}   enqueue->claim p50/p99, claim->start p50/p99; close->enqueue p50 (the watcher)")
    out = {}
    for backend in backends:
        log_path = scratch("sr-bench-lat-") / "stamps.log"
        cluster = Cluster(backend, server, [stamp, log_path, "{path}"])
        try:
            w = cluster.worker("idle", 2)
            wait_for("the worker to start", lambda: "worker started" in w.log.read_text(errors="replace") or cluster.dead(w, w.log), 30)
            time.sleep(1.0)
            rng = random.Random(seed)
            closed = {}
            for i in range(n):
                path = cluster.tree / f"sh{i % 10:03d}" / f"f{i:05d}.exr"
                path.parent.mkdir(exist_ok=True)
                with open(path, "wb") as f:
                    f.write(b"x")
                closed[str(path.relative_to(cluster.tree))] = now_ms()
                time.sleep(rng.uniform(0.05, 0.15))

            def stamps():
                found = {}
                if log_path.exists():
                    for line in log_path.read_text(errors="replace").splitlines():
                        t, _, p = line.partition(" ")
                        found.setdefault(p.removeprefix(f"{cluster.tree}/"), float(t))
                return found

            wait_for(f"{n} stamps", lambda: len(stamps()) >= n, 60, every=0.2)
            got = stamps()
            created = {r[4]: r[1] for r in cluster.rows()}
            if not any(p in created for p in got):
                raise RuntimeError("job rows do not name their paths; cannot pair stamps with rows")
            lat = [got[p] - created[p] for p in got if p in created]
            detect = [created[p] - closed[p] for p in closed if p in created]
            try:
                claimed = cluster.claimed_at()
            except Exception as e:  # the split is a diagnosis; the figure stands without it
                print(f"   (no claim times: {e})")
                claimed = {}
            wake = [claimed[p] - created[p] for p in got if p in created and p in claimed]
            spawn = [got[p] - claimed[p] for p in got if p in claimed]
            out[backend] = lat
            print(f"   {backend:10} {pct(lat, 50):8.1f} {pct(lat, 90):8.1f} {pct(lat, 99):8.1f} {max(lat):8.1f} {n - len(lat):7d}   {pct(wake, 50):.0f}/{pct(wake, 99):.0f} ms, {pct(spawn, 50):.0f}/{pct(spawn, 99):.0f} ms; {pct(detect, 50):.1f} ms", flush=True)
        finally:
            cluster.stop()
    return out


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs-count", type=int, default=1000, help="jobs per coordination run (issue 12: 1,000)")
    ap.add_argument("--workers", default="1,2,4,8", help="worker counts for the coordination runs")
    ap.add_argument("--trivial-count", type=int, default=2000, help="jobs of `true` for the throughput run")
    ap.add_argument("--latency-count", type=int, default=200, help="files for the latency run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure (median shown)")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    ap.add_argument("--only", choices=["coordination", "trivial", "latency"], help="run one part")
    ap.add_argument("--pg-synchronous-commit", default="off", choices=["on", "off"], help="the server's synchronous_commit (off matches SQLite's synchronous=NORMAL)")
    ap.add_argument("--pg-option", action="append", default=[], metavar="NAME=VALUE", help="another server setting (e.g. log_min_duration_statement=0 to profile)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folders (stores, logs, the server's log) and print where")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/shotrouter", help="the shotrouter to measure (default: this tree's release build)")
    args = ap.parse_args()
    BIN = args.bin.resolve()
    backends = [b for b in args.backends.split(",") if b]
    server = None
    stamp = scratch("sr-bench-bin-") / "stamp_wall"
    subprocess.run(["cc", "-O2", "-o", stamp, ROOT / "benches/helpers/stamp_wall.c"], check=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if "postgres" in backends:
            if not takes_store("watch"):
                print("PostgreSQL not measured: this build's `watch` has no --store (the PostgreSQL store is not wired in)")
                backends.remove("postgres")
            else:
                server = PgServer(args.pg_synchronous_commit, args.pg_option)
                print(f"PostgreSQL {server.bin} on 127.0.0.1:{server.port}, synchronous_commit={args.pg_synchronous_commit}")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; backends: {', '.join(backends)}")
        if args.only in (None, "coordination"):
            coordination(backends, server, args.jobs_count, [int(w) for w in args.workers.split(",")], args.repeat)
        if args.only in (None, "trivial"):
            trivial(backends, server, args.trivial_count, args.repeat)
        if args.only in (None, "latency"):
            latency(backends, server, args.latency_count, stamp, args.seed)
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print("kept:", *KEEP, sep="\n  ")
        else:
            for path in KEEP:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
