#!/usr/bin/env python3
"""Reads an ALE with OpenTimelineIO's ALE adapter (PyPI opentimelineio-plugins) and prints, as
JSON, what the adapter understood: the heading, and per clip its name, start and exclusive end
timecode, length in frames, source file and the remaining ALE columns (Tape, KN Start...).

Used by tests/integration/editorial.rs to check shotrouter's ALE with an independent reader.
"""
import json
import sys

import opentimelineio as otio


def main(path):
    collection = otio.adapters.read_from_file(path, adapter_name="ale")
    header = dict(collection.metadata["ALE"]["header"])
    clips = []
    for clip in collection.find_clips():
        source = clip.source_range
        rate = source.start_time.rate
        end = source.start_time + source.duration
        clips.append({
            "name": clip.name,
            "rate": rate,
            "start": otio.opentime.to_timecode(source.start_time, rate),
            "end": otio.opentime.to_timecode(end, rate),
            "frames": int(source.duration.value),
            "source_file": clip.media_reference.target_url,
            "columns": dict(clip.metadata["ALE"]),
        })
    json.dump({"header": header, "clips": clips}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
