"""Drives benches/metrics-cost: see that script. Prints one table; nothing is asserted here.

Each run makes a fresh tree of N files and a fresh state folder, and times `watch --once` from
start to exit (scan, plan, claim, run `true`, record: the whole dispatch path, with the store).
"""
import argparse, statistics, subprocess, tempfile, time
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
        started = time.monotonic()
        subprocess.run(argv, cwd=tmp, check=True)
        took = time.monotonic() - started
        if extra:
            text = (tmp / "m.prom").read_text()
            assert 'shotrouter_jobs{rule="trivial",state="done"} %d' % files in text, text[:2000]
        return files / took


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
    for _ in range(args.runs):
        for name, (binary, extra) in cases.items():
            rates[name].append(one_run(binary, args.files, extra))
    base = statistics.median(rates["no metrics"])
    print(f"{args.files} trivial jobs per run, {args.runs} runs each, interleaved; median jobs/s")
    print(f"{'case':32} {'jobs/s':>10} {'vs no metrics':>14}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:32} {median:10.0f} {median / base:13.3f}x")


if __name__ == "__main__":
    main()
