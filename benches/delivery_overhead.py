"""Drives benches/delivery-overhead: see that script. Prints one table; nothing is asserted here.

For each case and run, a fresh sequence is delivered into the watched tree (copied frame by frame
from fixtures rendered once). shotrouter's rule has `expect:` covering every frame, so the job
fires as soon as the last frame is closed: no settle wait is in the measurement. The clock stops
when the product appears under its final name (it is renamed into place only after ffprobe
verified it). The same ffmpeg argv (as `shotrouter explain` prints it) is then run by hand on the
same frames, and ffprobe after it, so the difference is shotrouter's own overhead.
"""
import argparse, os, shutil, statistics, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/shotrouter"

CASES = {
    "prores-48x320x180": dict(size="320x180", count=48, ext="mov",
        args=["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv422p10le,setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
              "-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0", "-pix_fmt", "yuv422p10le"],
        verify="{codec: prores, frames: \"{seq.count}\", timecode: \"{timecode}\"}"),
    "dnxhd-8x1920x1080": dict(size="1920x1080", count=8, ext="mxf",
        args=["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv422p", "-c:v", "dnxhd", "-b:v", "175M", "-f", "mxf"],
        verify="{codec: dnxhd, frames: \"{seq.count}\", timecode: \"{timecode}\"}"),
}

PROBE = ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "format_tags=timecode,comment:stream=codec_type,codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_frames,duration_ts,time_base:stream_tags=timecode"]


def ffmpeg_argv(case, pattern, out):
    return (["ffmpeg", "-nostdin", "-v", "error", "-y", "-framerate", "24", "-start_number", "1001",
             "-i", str(pattern)] + case["args"] + ["-timecode", "01:00:00:00", str(out)])


def rules(tmp, verify):
    lines = ["version: 1", f"watch: [{tmp / 'shots'}]",
             'timecode: {fps: 24, start: "01:00:00:00", at_frame: 1001}', "jobs: 1", "rules:"]
    for name, case in CASES.items():
        argv = ffmpeg_argv(case, "{seq.pattern}", "{out}")
        argv[argv.index("1001")] = "{seq.start}"
        argv[argv.index("01:00:00:00")] = "{timecode}"
        quoted = ", ".join('"' + a.replace('"', '\\"') + '"' for a in argv)
        lines += [f"  - name: {name}",
                  f'    match: "{name}/*/*.tif"',
                  f'    sequence: {{expect: "1001-{1000 + case["count"]}"}}',
                  "    settle: 1h",
                  f'    output: "{{dir}}/{{seq.name}}.{case["ext"]}"',
                  f"    run: [{quoted}]"]
        if verify:
            lines.append(f"    verify: {case['verify']}")
    return "\n".join(lines) + "\n"


def wait_for(path, limit=120):
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.002)


def deliver(frames, dest):
    # A renderer makes the version folder, then writes frames over seconds. Frames written in
    # the instant before shotrouter's watch on a brand-new folder is placed are found by its scan
    # instead, and wait 500 ms of stillness (a scan cannot see a close); that is not what this
    # measures, so the folder is made first.
    dest.mkdir(parents=True)
    time.sleep(0.2)
    for frame in frames:
        with open(frame, "rb") as src, open(dest / frame.name, "wb") as out:
            shutil.copyfileobj(src, out)
    return time.monotonic()  # the last frame is closed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sr-delivery-"))
    fixtures = {}
    for name, case in CASES.items():
        d = tmp / "fixtures" / name
        d.mkdir(parents=True)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={case['size']}:rate=24",
                        "-frames:v", str(case["count"]), "-pix_fmt", "rgb48le", "-compression_algo", "deflate", "-start_number", "1001",
                        str(d / "s.%04d.tif")], check=True)
        fixtures[name] = sorted(d.iterdir())
    results = {(name, kind): [] for name in CASES for kind in ("hand", "hand+probe", "sr", "sr+verify")}
    for verify in (False, True):
        (tmp / "shots").mkdir(exist_ok=True)
        (tmp / "rules.yaml").write_text(rules(tmp, verify))
        log = open(tmp / f"daemon-{verify}.log", "w")
        daemon = subprocess.Popen([BIN, "watch", "--no-store", "rules.yaml"], cwd=tmp, stderr=log)
        wait_for_text(tmp / f"daemon-{verify}.log", " watching ")
        for run in range(opts.runs):
            for name, case in CASES.items():
                seq = f"{name}/{'v' if verify else 'n'}{run}"
                closed = deliver(fixtures[name], tmp / "shots" / seq)
                wait_for(tmp / "shots" / seq / f"s.{case['ext']}")
                results[(name, "sr+verify" if verify else "sr")].append(time.monotonic() - closed)
                # By hand, on the same frames, same argv.
                out = tmp / f"hand.{case['ext']}"
                start = time.monotonic()
                subprocess.run(ffmpeg_argv(case, tmp / "shots" / seq / "s.%04d.tif", out), check=True)
                made = time.monotonic()
                subprocess.run(PROBE + [str(out)], check=True, stdout=subprocess.DEVNULL)
                probed = time.monotonic()
                results[(name, "hand+probe" if verify else "hand")].append(
                    (probed - start) if verify else (made - start))
        daemon.terminate()
        daemon.wait()
    print(f"runs per cell: {opts.runs} (median, ms; each shotrouter run is interleaved with a hand run)")
    print(f"{'case':<20} {'hand ffmpeg':>12} {'shotrouter':>11} {'overhead':>9} {'%':>6}   "
          f"{'hand+ffprobe':>12} {'sr+verify':>10} {'overhead':>9} {'%':>6}")
    for name in CASES:
        m = {k: statistics.median(results[(name, k)]) * 1000 for k in ("hand", "sr", "hand+probe", "sr+verify")}
        o1, o2 = m["sr"] - m["hand"], m["sr+verify"] - m["hand+probe"]
        print(f"{name:<20} {m['hand']:>12.1f} {m['sr']:>11.1f} {o1:>9.1f} {100 * o1 / m['hand']:>5.1f}%   "
              f"{m['hand+probe']:>12.1f} {m['sr+verify']:>10.1f} {o2:>9.1f} {100 * o2 / m['hand+probe']:>5.1f}%")
    shutil.rmtree(tmp)


def wait_for_text(path, text, limit=30):
    deadline = time.monotonic() + limit
    while text not in path.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {text!r} in {path}")
        time.sleep(0.01)


if __name__ == "__main__":
    main()
