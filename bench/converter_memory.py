"""4. Converter memory: peak RSS of a `run_converter` process tree (python + ffmpeg child), sampled every 50 ms.

Inputs: the 10-minute 720p MP4 and a 60-minute 160x120 5 fps H.264+AAC MP4. Each goes through the web role's
own upload code first (uploads.services.intake.job_create, in-process), so the converter reads what it reads in
production: the small audio source (AAC stream-copied into QuickTime: about 9 MiB for 10 minutes, 55 MiB for
60) and the cover frame. The peak must not grow with the length of the audio: the source is downloaded to a
temp file and ffmpeg reads it from disk, so neither is held in memory.

Usage: python -m bench.converter_memory [--short 600] [--long 3600]
"""

import argparse
import os
import time
from pathlib import Path

from bench import _common

TARGET_MIB = 200
TARGET_GROWTH = 1.1


def measure(path: Path, workdir: Path, timeout: float) -> tuple[float, float, float]:
    """(peak RSS MiB of the converter tree while converting, seconds to done, source MiB)."""
    from core import broker
    from tests.support.processes import wait_until
    from uploads.models import Job

    job = _common.stored_upload(path)
    log = workdir / f"converter-{job.id}.log"
    process = _common.role(["run_converter"], log)
    try:
        time.sleep(2)  # start-up (Django import, broker connection) is not conversion
        with _common.RssSampler(process.pid) as sampler:
            started = time.perf_counter()
            broker.publish(broker.VIDEO, str(job.id))
            finished = wait_until(
                lambda: (
                    Job.objects.filter(id=job.id, status__in=["done", "failed"])
                    .values_list("status", flat=True)
                    .first()
                ),
                timeout=timeout,
                interval=0.2,
            )
            elapsed = time.perf_counter() - started
        if finished != "done":
            raise RuntimeError(f"job {job.id} ended {finished!r}; see {log}:\n{log.read_text()[-2000:]}")
    finally:
        _common.stop(process)
    return sampler.peak / 2**20, elapsed, job.source_size / 2**20


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=2 if _common.smoke() else 600)
    parser.add_argument("--long", type=int, default=4 if _common.smoke() else 3600)
    args = parser.parse_args(argv)
    short = _common.media(args.short)
    long = _common.media(args.long, size="160x120", rate=5)
    with _common.services() as (_env, workdir):
        short_peak, short_s, short_source = measure(short, workdir, timeout=args.short * 3 + 120)
        long_peak, long_s, long_source = measure(long, workdir, timeout=args.long * 3 + 120)
    growth = long_peak / short_peak
    peak = max(short_peak, long_peak)
    _common.table(
        "Converter memory: peak RSS of run_converter + ffmpeg (sampled from /proc every 50 ms)",
        [
            (
                f"{args.short}s 720p ({short.stat().st_size / 2**20:.0f} MiB)",
                f"{short_source:.1f}",
                f"{short_peak:.1f}",
                f"{short_s:.1f}",
            ),
            (
                f"{args.long}s 160x120 ({long.stat().st_size / 2**20:.0f} MiB)",
                f"{long_source:.1f}",
                f"{long_peak:.1f}",
                f"{long_s:.1f}",
            ),
        ],
        ("upload", "audio source MiB", "peak RSS MiB", "publish-to-done s"),
    )
    print(
        f"peak {peak:.1f} MiB, target <= {TARGET_MIB}: {'met' if peak <= TARGET_MIB else 'NOT met'}; "
        f"long/short {growth:.2f}, target <= {TARGET_GROWTH}: {'met' if growth <= TARGET_GROWTH else 'NOT met'}"
    )
    results = {
        "converter_peak_rss_10min": {
            "value": round(short_peak, 1),
            "unit": "MiB",
            "target": f"<= {TARGET_MIB}",
            "met": short_peak <= TARGET_MIB,
        },
        "converter_peak_rss_60min": {
            "value": round(long_peak, 1),
            "unit": "MiB",
            "target": f"<= {TARGET_MIB}",
            "met": long_peak <= TARGET_MIB,
        },
        "converter_rss_growth_60_over_10": {
            "value": round(growth, 3),
            "unit": "ratio",
            "target": f"<= {TARGET_GROWTH}",
            "met": growth <= TARGET_GROWTH,
        },
        "converter_audio_source_10min": _common.entry(round(short_source, 1), "MiB"),
        "converter_audio_source_60min": _common.entry(round(long_source, 1), "MiB"),
    }
    _common.record(results)
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
