"""Drives benches/conform: see that script. Prints one table; nothing is asserted here.

N shots, each a 48-frame 320x180 ProRes HQ review movie of frames 1001-1048 (timecode
00:00:41:17), are published by `watch --once` (a rule copying renders); a generated EDL plays 24
frames of each (cut_in 1009..1032). shotrouter conforms it into ProRes HQ; the baseline cuts the
same frames out of the same products with one ffmpeg per shot (`trim`, ProRes HQ) and joins the
intermediates with the concat demuxer (`-c copy`); and ffmpeg's own concat demuxer reads the
products with `inpoint`/`outpoint` and re-encodes in one run (the ratio's baseline), its frames
numbered by `settb`/`setpts=N` as conform numbers its own: without, the demuxer's rounded
`inpoint` shifts the first frame by a tick and `-r` duplicates one (2,401 frames for 2,400).
Also timed: conform's own ffmpeg command alone (captured from a first conform), so what
shotrouter adds around it (picking, reading the products' headers, the verifying ffprobe) shows.
Each output is checked to hold N x 24 frames, and the baseline's frames once to be ours (framemd5).
"""
import argparse, hashlib, os, shutil, statistics, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("SHOTROUTER_BIN", ROOT / "target/release/shotrouter"))
PRORES = ["-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0", "-pix_fmt", "yuv422p10le"]


def run(argv, cwd=None):
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tc(frame, fps=24):
    s, f = divmod(frame, fps)
    return f"{s // 3600:02}:{s // 60 % 60:02}:{s % 60:02}:{f:02}"


def setup(tmp, shots):
    (tmp / "rules.yaml").write_text(
        'version: 1\nwatch: [shots]\ncuts:\n  shot: "^(?P<shot>sh[0-9]{4})_"\n  fps: 24\nrules:\n'
        '  - name: review\n    match: "*/render/*.mov"\n    output: "{dir}/../review/{name}"\n'
        '    run: [cp, "{path}", "{out}"]\n')
    src = tmp / "src.mov"
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
         "-frames:v", "48"] + PRORES + ["-timecode", "00:00:41:17", str(src)])
    edl = ["TITLE: bench", "FCM: NON-DROP FRAME", ""]
    for n in range(shots):
        shot = f"sh{n + 1:04}"
        d = tmp / "shots" / shot / "render"
        d.mkdir(parents=True)
        (d / f"{shot}_v001.mov").write_bytes(src.read_bytes())
        rec = 86400 + 24 * n
        edl += [f"{n + 1:03}  R{n + 1:04}    V     C        {tc(3600 * 24)} {tc(3600 * 24 + 24)} {tc(rec)} {tc(rec + 24)}",
                f"* FROM CLIP NAME: {shot}_anim"]
    (tmp / "cut.edl").write_text("\n".join(edl) + "\n")
    run([BIN, "watch", "--once", "rules.yaml"], cwd=tmp)
    run([BIN, "cut", "import", "--rules", "rules.yaml", "cut.edl", "--name", "bench"], cwd=tmp)
    # One conform through a wrapper that keeps ffmpeg's argv (NUL-separated) for `ffmpeg_alone`.
    wrap = tmp / "wrap"
    wrap.mkdir()
    (wrap / "ffmpeg").write_text(
        f'#!/bin/sh\nprintf "%s\\0" "$@" > {tmp / "argv"}\nexec {shutil.which("ffmpeg")} "$@"\n')
    (wrap / "ffmpeg").chmod(0o755)
    env = dict(os.environ, PATH=f"{wrap}:{os.environ['PATH']}")
    subprocess.run([BIN, "conform", "--rules", "rules.yaml", "--from", "review", "--output", "ours.mov"],
                   cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_frames", "-of", "csv=p=0", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def ours(tmp):
    run([BIN, "conform", "--rules", "rules.yaml", "--from", "review", "--output", "ours.mov"], cwd=tmp)
    return tmp / "ours.mov"


def ffmpeg_alone(tmp):
    """conform's ffmpeg command as it ran, writing elsewhere: the filter graph's own cost."""
    argv = (tmp / "argv").read_bytes().split(b"\0")[:-1]
    out = tmp / "alone.mov"
    run(["ffmpeg"] + argv[:-1] + [b"file:" + bytes(out)])
    return out


def decoded(path):
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "framemd5", "-"],
                         check=True, capture_output=True, text=True).stdout
    return hashlib.sha256("".join(l.split(",")[-1] for l in out.splitlines()
                                  if not l.startswith("#")).encode()).hexdigest()


def baseline(tmp, shots):
    work = tmp / "trimmed"
    work.mkdir(exist_ok=True)
    lines = []
    for n in range(shots):
        shot = f"sh{n + 1:04}"
        product = tmp / "shots" / shot / "review" / f"{shot}_v001.mov"
        part = work / f"{n:04}.mov"
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(product), "-vf",
             "trim=start_frame=8:end_frame=32,setpts=PTS-STARTPTS"] + PRORES + [str(part)])
        lines.append(f"file '{part}'")
    (work / "list.txt").write_text("\n".join(lines) + "\n")
    out = tmp / "base.mov"
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
         str(work / "list.txt"), "-c", "copy", "-timecode", "01:00:00:00", str(out)])
    return out


def concat_inpoints(tmp, shots):
    """ffmpeg's own concat demuxer over the products, each trimmed by `inpoint`/`outpoint`,
    re-encoded to ProRes HQ in one run (the demuxer cuts by time, not by frame)."""
    lines = []
    for n in range(shots):
        shot = f"sh{n + 1:04}"
        product = tmp / "shots" / shot / "review" / f"{shot}_v001.mov"
        lines += [f"file '{product}'", f"inpoint {8 / 24:.6f}", f"outpoint {32 / 24:.6f}"]
    (tmp / "inpoints.txt").write_text("\n".join(lines) + "\n")
    out = tmp / "inpoints.mov"
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
         str(tmp / "inpoints.txt"), "-vf", "settb=1/24,setpts=N", "-r", "24"] + PRORES
        + ["-timecode", "01:00:00:00", str(out)])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        setup(tmp, args.shots)
        base_name = "ffmpeg concat demuxer, inpoint/outpoint"
        cases = (("shotrouter conform (one filter graph)", lambda: ours(tmp)),
                 ("  its ffmpeg command alone", lambda: ffmpeg_alone(tmp)),
                 ("ffmpeg per shot + concat demuxer", lambda: baseline(tmp, args.shots)),
                 (base_name, lambda: concat_inpoints(tmp, args.shots)))
        times = {name: [] for name, _ in cases}
        checks = []
        for _ in range(args.runs):
            for name, f in cases:
                start = time.perf_counter()
                out = f()
                times[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                got = frames(out)
                if name == base_name:
                    checks.append(time.perf_counter() - start)
                if got != 24 * args.shots:
                    print(f"  note: {name} wrote {got} frames, not {24 * args.shots}")
        if decoded(tmp / "ours.mov") != decoded(tmp / "inpoints.mov"):
            print(f"  note: {base_name} decodes to other frames than conform's")
        base = statistics.median(times[base_name])
        probe = statistics.median(checks)
        print(f"conform of {args.shots} shots x 24 frames, 320x180 ProRes HQ, median of {args.runs}"
              f" (last column: the baseline plus one ffprobe of its output, {probe:.2f} s, as conform verifies)")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"  {name:42} {m:7.2f} s  {m / base:5.2f}x ffmpeg's own concat  {m / (base + probe):5.2f}x")


if __name__ == "__main__":
    main()
