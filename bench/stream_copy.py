"""5. Stream copy: converting MP3-in-container with `-c:a copy` against re-encoding the same input.

Both sides run core.media.ffmpeg.convert_to_mp3 with the arguments conversion/encoding.py builds for
the job (the default, which copies, vs stream_copy=False), on the same local file, paired run by run; the speedup is
median(re-encode) / median(copy). No services are needed: this is the ffmpeg step alone, which is
what stream copy changes (GridFS in and out cost the same either way).

Usage: python -m bench.stream_copy [--seconds 600] [--runs 5]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench import _common

TARGET = 10.0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2 if _common.smoke() else 600)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 5)
    args = parser.parse_args(argv)
    source = _common.mp3_in_container(args.seconds)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videomp3.settings")
    import django

    django.setup()
    from django.conf import settings

    from conversion import encoding
    from core.media import ffmpeg, probe
    from uploads import options as job_options

    info = probe.probe(source)
    stream_copy, reencode = (
        encoding.encoding_for(
            job_options.parse_options(raw, default_bitrate=settings.MP3_BITRATE_KBPS),
            audio_streams=info.audio_streams,
            duration=info.duration,
            source_tags=info.tags,
            filename_title="bench",
        )
        for raw in ({}, {"stream_copy": False})
    )
    if not stream_copy.stream_copy or reencode.stream_copy:
        raise RuntimeError("the options did not choose stream copy for one side only")

    rows, copies, encodes = [], [], []
    with tempfile.TemporaryDirectory(prefix="videomp3-bench-copy-") as tmp:
        for run in range(1, args.runs + 1):
            timings = {}
            for name, encoding in (("reencode", reencode), ("copy", stream_copy)):
                started = time.perf_counter()
                ffmpeg.convert_to_mp3(source, Path(tmp) / f"{name}.mp3", duration=info.duration, options=encoding)
                timings[name] = time.perf_counter() - started
            encodes.append(timings["reencode"])
            copies.append(timings["copy"])
            rows.append(
                (
                    run,
                    f"{timings['reencode']:.2f}",
                    f"{timings['copy']:.3f}",
                    f"{timings['reencode'] / timings['copy']:.1f}",
                )
            )
    encode_med, copy_med = _common.median(encodes), _common.median(copies)
    speedup = encode_med / copy_med
    rows.append(("median", f"{encode_med:.2f}", f"{copy_med:.3f}", f"{speedup:.1f}"))
    _common.table(
        f"Stream copy: {args.seconds}s 160x120 H.264 + 128k MP3 in Matroska, {source.stat().st_size / 2**20:.0f} MiB",
        rows,
        ("run", "re-encode s", "copy s", "speedup"),
    )
    print(f"speedup {speedup:.1f}x, target >= {TARGET:g}x: {'met' if speedup >= TARGET else 'NOT met'}")
    results = {
        "stream_copy_speedup": {
            "value": round(speedup, 1),
            "unit": "x (median re-encode / median copy)",
            "target": f">= {TARGET:g}",
            "met": speedup >= TARGET,
        },
        "stream_copy_copy_median": {"value": round(copy_med, 3), "unit": "s", "target": "reported", "met": True},
        "stream_copy_reencode_median": {"value": round(encode_med, 2), "unit": "s", "target": "reported", "met": True},
    }
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
