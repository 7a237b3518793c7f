#!/usr/bin/env python3
"""benches/http-api: see that script's header. Every figure is printed beside its baseline from
the same run, and as a ratio."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.path.abspath("target/release/shotrouter")

RULES = """version: 1
watch: [shots]
jobs: 2
rules:
  - name: review-quicktime
    match: "*/*/renders/*/v*/*.exr"
    run: ["true", -i, "{path}", -c:v, prores_ks, "{root}/review/{stem}.mov"]
  - name: plate-check
    match: "*/*/renders/*/v*/*.1001.exr"
    run: ["false"]
"""


def make_tree(root, n):
    """n frames in folders of 100, like a render night; 1 % of them frame 1001."""
    for i in range(n):
        d = f"{root}/shots/sq{10 + i // 10000:03d}/sh{(i // 100) % 100 * 10:04d}/renders/beauty/v003"
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        open(f"{d}/sh{(i // 100) % 100 * 10:04d}_beauty_v003.{1001 + i % 100}.exr", "wb").close()


def run_once(work, extra=()):
    """`watch --once` over the tree; returns (seconds, stderr path)."""
    log = f"{work}/once-{time.monotonic_ns()}.log"
    start = time.monotonic()
    with open(log, "wb") as err:
        subprocess.run([BIN, "watch", "--once", *extra, "--state", f"{work}/state", f"{work}/rules.yaml"],
                       stderr=err, stdout=subprocess.DEVNULL, check=False)
    return time.monotonic() - start, log


def port_in(log, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log, errors="replace").read())
        except FileNotFoundError:
            m = None
        if m:
            return int(m.group(1))
        time.sleep(0.02)
    raise SystemExit(f"no `listening on` line in {log}")


def serve(state, log):
    proc = subprocess.Popen([BIN, "serve", "--state", state, "--http", "127.0.0.1:0"],
                            stderr=open(log, "wb"), stdout=subprocess.DEVNULL)
    return proc, port_in(log)


def wrk(url, seconds):
    # One second of warm-up first: connections pooled, the live view computed.
    subprocess.run(["wrk", "-t2", "-c200", "-d1s", url], capture_output=True, check=True)
    out = subprocess.run(["wrk", "-t2", "-c200", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    def ms(text):
        value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: (.*)", out)
    bad = int(errors.group(1)) if errors else 0
    if socket:
        print(f"    (wrk socket errors: {socket.group(1)})")
    return p99, rps, bad, p50


def first_load(url, runs=5):
    out = subprocess.run(["node", "benches/http_api_firstload.mjs", url, str(runs)],
                         capture_output=True, text=True, check=True).stdout
    return statistics.median(json.loads(out)["ms"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--throughput-files", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        # A store of N jobs, through the real daemon (1 % of them failed).
        make_tree(work, args.jobs)
        open(f"{work}/rules.yaml", "w").write(RULES)
        took, _ = run_once(work)
        print(f"store: {args.jobs} files -> jobs in {took:.0f} s")
        empty = f"{work}/empty"
        os.makedirs(f"{empty}/shots")
        open(f"{empty}/rules.yaml", "w").write(RULES)
        run_once(empty)

        proc, port = serve(f"{work}/state", f"{work}/serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            print(f"\nlatency under 200 connections, {args.seconds} s each (wrk), {args.jobs} jobs:")
            static = wrk(f"{base}/dashboard.css", args.seconds)
            print(f"  baseline        GET {'/dashboard.css':<38} p99 {static[0]:8.2f} ms  p50 {static[3]:7.2f} ms  {static[1]:8.0f} req/s")
            for name, path in [("status", "/api/v1/status"),
                               ("jobs", "/api/v1/jobs"),
                               ("jobs failed", "/api/v1/jobs?status=failed&limit=50"),
                               ("jobs page 1000", "/api/v1/jobs?before=50000&limit=50")]:
                p99, rps, errors, p50 = wrk(base + path, args.seconds)
                print(f"  {name:14}  GET {path:<38} p99 {p99:8.2f} ms  p50 {p50:7.2f} ms  {rps:8.0f} req/s"
                      f"  = {p99 / static[0]:5.1f}x baseline p99{'  NON-2xx: ' + str(errors) if errors else ''}")
            full = first_load(base + "/")
        finally:
            proc.terminate()
            proc.wait()
        proc, port = serve(f"{empty}/state", f"{work}/serve-empty.log")
        try:
            bare = first_load(f"http://127.0.0.1:{port}/")
        finally:
            proc.terminate()
            proc.wait()
        print(f"\ndashboard first load (median of 5, headless Chromium, fresh context):")
        print(f"  empty store {bare:7.0f} ms   {args.jobs} jobs {full:7.0f} ms   = {full / bare:4.2f}x")

        # Throughput: watch --once over a fresh tree, server off vs on with a reader.
        print(f"\nwatch --once over {args.throughput_files} files (median of 3, alternating):")
        off, on = [], []
        for _ in range(3):
            for http in (False, True):
                tree = tempfile.mkdtemp(dir=work)
                make_tree(tree, args.throughput_files)
                open(f"{tree}/rules.yaml", "w").write(RULES)
                stop = threading.Event()
                if http:
                    log = f"{tree}/once.log"
                    def reader():
                        try:
                            p = port_in(log)
                        except SystemExit:
                            return
                        while not stop.wait(1.0):
                            for path in ("/api/v1/status", "/api/v1/jobs", "/healthz"):
                                try:
                                    urllib.request.urlopen(f"http://127.0.0.1:{p}{path}", timeout=5).read()
                                except OSError:
                                    pass
                    start = time.monotonic()
                    thread = threading.Thread(target=reader)
                    with open(log, "wb") as err:
                        thread.start()
                        subprocess.run([BIN, "watch", "--once", "--http", "127.0.0.1:0", "--state",
                                        f"{tree}/state", f"{tree}/rules.yaml"],
                                       stderr=err, stdout=subprocess.DEVNULL, check=False)
                    took = time.monotonic() - start
                    stop.set()
                    thread.join()
                    on.append(took)
                else:
                    took, _ = run_once(tree)
                    off.append(took)
        a, b = statistics.median(off), statistics.median(on)
        n = args.throughput_files
        print(f"  server off {n / a:7.0f} jobs/s   on + reader {n / b:7.0f} jobs/s   = {b / a - 1:+.1%} time")


if __name__ == "__main__":
    sys.exit(main())
