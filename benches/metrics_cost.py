"""Drives benches/metrics-cost: see that script. Prints one table; nothing is asserted here.

Each run makes a fresh tree of N files and a fresh state folder, and times `watch --once` from
start to exit (scan, plan, claim, run `true`, record: the whole dispatch path, with the store).
"""
import argparse, resource, statistics, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"

RULES = """version: 1
watch: [shots]
jobs: 2
rules:
  - name: trivial
    match: "**/*.dat"
    run: ["true"]
"""


def one_run(binary, files, extra):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "rules.yaml").write_text(RULES)
        for d in range(files // 100 + 1):
            folder = tmp / "shots" / f"d{d:03}"
            folder.mkdir(parents=True)
            for f in range(min(100, files - d * 100)):
                (folder / f"f{f:03}.dat").write_bytes(b"x")
        argv = [str(binary), "watch", "--once", "-q", "rules.yaml"] + extra
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run(argv, cwd=tmp, check=True)
        took = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if extra:
            text = (tmp / "m.prom").read_text()
            assert 'shotrouter_jobs{rule="trivial",state="done"} %d' % files in text, text[:2000]
        return files / took, cpu * 1e6 / files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-binary", type=Path)
    args = parser.parse_args()
    cases = {
        "no metrics": (BIN, []),
        "metrics file every 1s": (BIN, ["--metrics-file", "m.prom", "--metrics-every", "1s"]),
        "metrics file every 100ms": (BIN, ["--metrics-file", "m.prom", "--metrics-every", "100ms"]),
    }
    if args.baseline_binary:
        cases["baseline binary, no metrics"] = (args.baseline_binary, [])
    rates = {name: [] for name in cases}
    cpus = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (binary, extra) in cases.items():
            rate, cpu = one_run(binary, args.files, extra)
            rates[name].append(rate)
            cpus[name].append(cpu)
    base = statistics.median(rates["no metrics"])
    base_cpu = statistics.median(cpus["no metrics"])
    print(f"{args.files} trivial jobs per run, {args.runs} runs each, interleaved; medians")
    print("CPU is the daemon's and its jobs' user+system time (less disturbed by other load)")
    print(f"{'case':32} {'jobs/s':>8} {'vs none':>8} {'CPU us/job':>11} {'vs none':>8}")
    for name in cases:
        rate = statistics.median(rates[name])
        cpu = statistics.median(cpus[name])
        print(f"{name:32} {rate:8.0f} {rate / base:7.3f}x {cpu:11.0f} {cpu / base_cpu:7.3f}x")


if __name__ == "__main__":
    main()
