#!/usr/bin/env python3
"""Reads a cut with OpenTimelineIO (a CMX 3600 EDL through the otio-cmx3600-adapter, or a
.otio file through OTIO's own JSON reader) and prints, as JSON, every clip of every video track
in record order: its name, source range played and record range, in whole frames.

Usage: read_cut.py CUT RATE (24, 25, 30000/1001...). Used by tests/integration/edit.rs to check shotrouter's
`edit` readers against an independent one.
"""
import json
import sys

import opentimelineio as otio


def frames(t, rate):
    """A RationalTime as whole frames at `rate` (rounded: the tests use whole frames)."""
    return int(round(t.value_rescaled_to(rate))) if abs(t.rate - rate) > 0.01 else int(round(t.value))


def main(path, rate):
    # 30000/1001 as a fraction: OpenTimelineIO's timecode accepts only the exact NTSC rates.
    num, _, den = rate.partition("/")
    rate = float(num) / float(den or 1)
    if path.endswith(".otio"):
        timeline = otio.adapters.read_from_file(path)
    else:
        timeline = otio.adapters.read_from_file(path, adapter_name="cmx_3600", rate=rate)
    start = timeline.global_start_time
    offset = frames(start, rate) if start is not None else 0
    clips = []
    for track in timeline.tracks:
        if track.kind != otio.schema.TrackKind.Video:
            continue
        shift = frames(track.source_range.start_time, rate) if track.source_range else 0
        for clip in track.find_clips(shallow_search=False):
            record = clip.range_in_parent()
            parent = clip.parent()
            base = 0
            while parent is not track:
                # A clip inside a nested stack: its parent's position in the track adds up.
                base += frames(parent.range_in_parent().start_time, rate)
                parent = parent.parent()
            source = clip.trimmed_range()
            scalar = 1.0
            for effect in clip.effects:
                if isinstance(effect, otio.schema.LinearTimeWarp):
                    scalar *= effect.time_scalar
            duration = frames(source.duration, rate)
            clips.append({
                "name": clip.name,
                "source_in": frames(source.start_time, rate),
                "source_out": frames(source.start_time, rate) + int(round(duration * abs(scalar))),
                "record_in": offset + base + frames(record.start_time, rate) - shift,
                "record_out": offset + base + frames(record.end_time_exclusive(), rate) - shift,
                "speed": scalar,
            })
    clips.sort(key=lambda c: c["record_in"])
    json.dump({"clips": clips}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
