"""Drives benches/lineage-cost: see that script. Prints one table; nothing is asserted here.

Each run starts `shotrouter watch --state DIR rules.yaml` on a fresh tree (the LUT already in
it), drops a burst of files into it (each written under a name no rule matches, then renamed
into place, as a renderer publishes a frame), and times from the first file to the daemon's
"idle: ... succeeded=F" line: every job run and every write of its end (and, with lineage on,
of what it used) committed. The four cases run interleaved in each round, the order of "on"
and "off" swapped every other round, so drift of the machine falls on all of them alike.

`lineage: {record: false}` skips the store's writes of what a run used (`Write::Used`: the
`job_inputs` rows, the programs and work hash on the job) and the rules' work hashes; the
executor still looks at the inputs and programs before each run (the same in both cases here).
On a shared 2-core machine one round's on/off ratio spreads by 20-30%: 5 rounds give the
median to about +-10%, `--rounds 15` or more (about 5 minutes) to a few percent. The daemon's
CPU per job is its user+system time in clock ticks over the burst.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime
from pathlib import Path

sys.dont_write_bytecode = True  # no benches/__pycache__ from the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
from watch_latency import BIN, build_stamp, wait_for  # noqa: E402

DIRS = 20

# (label, with `inputs:`, lineage recorded)
CASES = [
    ("inputs: [lut], lineage on", True, True),
    ("inputs: [lut], lineage off", True, False),
    ("no inputs, lineage on", False, True),
    ("no inputs, lineage off", False, False),
]

# Trees are deleted only at the very end (see watch_latency.py: mass deletions slow ext4's
# inode allocation for a while, which would tax whichever case runs next).
KEEP = []


def rules_text(tree, stamp, log, inputs, record):
    declared = '    inputs: ["{root}/lut.cube"]\n' if inputs else ""
    return (
        f"version: 1\nwatch: [{tree}]\njobs: 2\n"
        f"lineage: {{record: {'true' if record else 'false'}}}\n"
        f"rules:\n  - name: stamp\n    match: \"**/*.exr\"\n{declared}"
        f"    run: [{stamp}, {log}, \"{{path}}\"]\n"
    )


def log_time(line):
    """The wall-clock time (seconds since the epoch) of a daemon log line."""
    stamp = line.split(" ", 1)[0].rstrip("Z")
    whole, _, frac = stamp.partition(".")
    t = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return (t - datetime(1970, 1, 1)).total_seconds() + float("0." + (frac or "0"))


def daemon_cpu(pid):
    """CPU seconds (user + system, all threads, not its jobs) the daemon has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(stamp, files, inputs, record, limit):
    tmp = Path(tempfile.mkdtemp(prefix="sr-lineage-"))
    KEEP.append(tmp)
    tree, log = tmp / "tree", tmp / "stamps.log"
    tree.mkdir()
    (tree / "lut.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n")
    folders = [tree / f"d{d:02d}" for d in range(DIRS)]
    for folder in folders:
        folder.mkdir()
    rules = tmp / "rules.yaml"
    rules.write_text(rules_text(tree, stamp, log, inputs, record))
    err_path = tmp / "daemon.log"
    err = open(err_path, "w")
    env = {**os.environ, "SHOTROUTER_LOG": "warn,shotrouter::engine::lifecycle=info"}
    proc = subprocess.Popen([BIN, "watch", "--state", tmp / "state", rules], stderr=err, env=env)
    try:
        assert wait_for(lambda: " watching " in err_path.read_text(), 30), "shotrouter did not start"
        # The start's own idle line, so the one looked for below is the burst's.
        wait_for(lambda: "succeeded=0" in err_path.read_text(), 5)
        cpu_before = daemon_cpu(proc.pid)
        started = time.time()
        for i in range(files):
            final = folders[i % DIRS] / f"f{i:05d}.exr"
            part = final.with_name(final.name + ".part")
            with open(part, "wb") as out:
                out.write(b"x")
            os.rename(part, final)
        written = time.time()
        wanted = f"succeeded={files} "
        done = None
        deadline = time.monotonic() + limit
        with open(err_path) as reader:
            pending = ""
            while done is None and time.monotonic() < deadline:
                chunk = reader.read()
                if not chunk:
                    time.sleep(0.05)
                    continue
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    if "idle:" in line and (line + " ").find(wanted) >= 0:
                        done = log_time(line)
                    elif "idle:" in line and "failed=0" not in line:
                        print(f"  warning: jobs failed: {line}", file=sys.stderr)
        cpu = daemon_cpu(proc.pid) - cpu_before
    finally:
        proc.terminate()
        proc.wait()
        err.close()
    if done is None:
        print(f"  warning: no 'idle ... {wanted.strip()}' line within {limit}s ({tmp})", file=sys.stderr)
        return None
    took = done - started
    return {"rate": files / took, "cpu_us": cpu / files * 1e6, "write_s": written - started}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000, help="files per burst")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; each runs every case once")
    ap.add_argument("--only", choices=["inputs", "no-inputs"], help="run the cases of one rule")
    ap.add_argument("--limit", type=float, default=120, help="seconds a burst may take")
    args = ap.parse_args()
    cases = [c for c in CASES if args.only is None or c[1] == (args.only == "inputs")]
    stamp_dir = Path(tempfile.mkdtemp(prefix="sr-lineage-bench-"))
    KEEP.append(stamp_dir)
    stamp = build_stamp(stamp_dir)
    runs = {c[0]: [] for c in cases}
    for r in range(args.rounds):
        # on, off, on, off in even rounds; off, on, off, on in odd ones.
        order = cases if r % 2 == 0 else [c for pair in zip(cases[1::2], cases[0::2]) for c in pair]
        for label, inputs, record in order:
            runs[label].append(one_run(stamp, args.files, inputs, record, args.limit))
        done = (f"{label}: {runs[label][-1]['rate']:.0f}/s" if runs[label][-1] else f"{label}: missed"
                for label, _, _ in cases)
        print(f"  round {r + 1}/{args.rounds}: " + "; ".join(done), file=sys.stderr, flush=True)

    print(f"\nlineage recording: {args.files} files per burst (written, then renamed into place, into {DIRS} folders),"
          f" `jobs: 2`, the stamp helper as the job; {args.rounds} rounds, cases interleaved")
    print("jobs/s: first file written -> daemon idle with every job's end (and lineage) committed;"
          " CPU: the daemon's own user+system per job")
    print(f"  {'case':28} {'median jobs/s':>13} {'min..max':>13} {'CPU us/job':>11}")
    med = {}
    for label, _, _ in cases:
        ok = [x for x in runs[label] if x]
        if not ok:
            print(f"  {label:28} {'no complete run':>13}")
            continue
        rates = [x["rate"] for x in ok]
        med[label] = statistics.median(rates)
        cpu = statistics.median(x["cpu_us"] for x in ok)
        print(f"  {label:28} {med[label]:13.0f} {min(rates):6.0f}..{max(rates):<6.0f} {cpu:11.0f}")
    print(f"\n  {'on / off':28} {'median ratio':>13} {'per-round ratios (on/off, same round)'}")
    for i in range(0, len(cases), 2):
        on, off = cases[i][0], cases[i + 1][0]
        if on not in med or off not in med:
            continue
        paired = [a["rate"] / b["rate"] for a, b in zip(runs[on], runs[off]) if a and b]
        cpu_on = statistics.median(x["cpu_us"] for x in runs[on] if x)
        cpu_off = statistics.median(x["cpu_us"] for x in runs[off] if x)
        rule = on.split(",")[0]
        print(f"  {rule:28} {med[on] / med[off]:13.3f} "
              f"{' '.join(f'{p:.3f}' for p in paired)}  (median {statistics.median(paired):.3f},"
              f" {min(paired):.3f}..{max(paired):.3f}); daemon CPU/job {cpu_on / cpu_off:.2f}x")
    print("  a ratio of 0.950 is the issue's 5% budget; below it recording costs more")
    for path in KEEP:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
