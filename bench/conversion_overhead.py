"""1. Conversion overhead: job_convert (GridFS in -> MP3 in GridFS) against raw ffmpeg on local disk.

Usage: python -m bench.conversion_overhead [--seconds 600] [--runs 5]

The job rows carry no probe results, so the converter grabs no cover frame: the same audio-only work
as the raw command. (A real upload of a video also gets a cover frame by default, which needs the
video on disk first, so such a job is downloaded rather than streamed.)
"""

import argparse
import functools
import tempfile
import time
from pathlib import Path

from bench import _common

TARGET = 1.20


def _timed(phases: dict, name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2 if _common.smoke() else 600)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 5)
    args = parser.parse_args(argv)
    source = _common.media(args.seconds)
    with _common.services():
        from conversion import ffmpeg, services, staging
        from uploads import storage

        template = _common.make_job(source)
        phases: dict = {}
        originals = (staging.stage_source, ffmpeg.convert_to_mp3, storage.save_path)
        staging.stage_source = _timed(phases, "staging", staging.stage_source)
        ffmpeg.convert_to_mp3 = _timed(phases, "ffmpeg", ffmpeg.convert_to_mp3)
        storage.save_path = _timed(phases, "gridfs_write", storage.save_path)
        rows, raws, pipes, breakdown = [], [], [], {"staging": [], "ffmpeg": [], "gridfs_write": []}
        try:
            with tempfile.TemporaryDirectory(prefix="videomp3-bench-raw-") as tmp:
                for run in range(1, args.runs + 1):
                    started = time.perf_counter()
                    _common.raw_ffmpeg(source, Path(tmp) / "out.mp3")
                    raw = time.perf_counter() - started

                    job = _common.job_like(template)
                    phases.clear()
                    started = time.perf_counter()
                    outcome = services.job_convert(job_id=str(job.id))
                    pipe = time.perf_counter() - started
                    if outcome != "done":
                        raise RuntimeError(f"job_convert returned {outcome}")
                    job.refresh_from_db()
                    storage.delete(storage.MP3S, job.mp3_file_id)
                    raws.append(raw)
                    pipes.append(pipe)
                    for name in breakdown:
                        breakdown[name].append(phases.get(name, 0.0))
                    rows.append(
                        (
                            run,
                            f"{raw:.2f}",
                            f"{pipe:.2f}",
                            f"{pipe / raw:.2f}",
                            *(f"{phases.get(n, 0.0):.2f}" for n in breakdown),
                        )
                    )
        finally:
            staging.stage_source, ffmpeg.convert_to_mp3, storage.save_path = originals
    raw_med, pipe_med = _common.median(raws), _common.median(pipes)
    ratio = pipe_med / raw_med
    med = {name: _common.median(values) for name, values in breakdown.items()}
    rows.append(("median", f"{raw_med:.2f}", f"{pipe_med:.2f}", f"{ratio:.2f}", *(f"{med[n]:.2f}" for n in breakdown)))
    _common.table(
        f"Conversion overhead: {args.seconds}s 720p H.264+AAC MP4 (index at end), {source.stat().st_size / 2**20:.0f} MiB",
        rows,
        ("run", "raw ffmpeg s", "job_convert s", "ratio", "staging s", "ffmpeg+GridFS read s", "GridFS write s"),
    )
    other = pipe_med - med["staging"] - med["ffmpeg"] - med["gridfs_write"]
    print(
        f"ratio {ratio:.2f}x, target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'NOT met'}; "
        f"rest of job_convert (DB, probe of the MP3, lease) {other:.2f} s"
    )
    print(f"note: {_common.SECANTUS_NOTE}")
    results = {
        "conversion_overhead_ratio": {
            "value": round(ratio, 3),
            "unit": "x raw ffmpeg",
            "target": f"<= {TARGET}",
            "met": ratio <= TARGET,
        },
        "conversion_raw_ffmpeg_median": {"value": round(raw_med, 2), "unit": "s", "target": "reported", "met": True},
        "conversion_job_convert_median": {"value": round(pipe_med, 2), "unit": "s", "target": "reported", "met": True},
    }
    for name, value in med.items():
        results[f"conversion_{name}_median"] = {
            "value": round(value, 2),
            "unit": "s",
            "target": f"reported ({_common.SECANTUS_NOTE})",
            "met": True,
        }
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
