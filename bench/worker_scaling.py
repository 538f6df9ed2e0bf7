"""4. Worker scaling: 20 one-minute clips through 1 converter vs 2 converters (real processes, real RabbitMQ).

One video is stored once and 20 jobs point at it (KEEP_SOURCE_VIDEOS=1), so every run converts the same
bytes. Each configuration starts its `manage.py run_converter` processes, warms them with one job, then
publishes the 20 and times until all are done. Paired runs, medians.

Usage: python -m bench.worker_scaling [--clips 20] [--seconds 60] [--runs 5]
"""

import argparse
import os
import time

from bench import _common

TARGET = 1.6


def _jobs(template, count: int):
    from uploads.models import Job

    return [
        Job.objects.create(
            owner=template.owner,
            status=Job.Status.QUEUED,
            original_filename=template.original_filename,
            size=template.size,
            video_file_id=template.video_file_id,
            duration=template.duration,
        )
        for _ in range(count)
    ]


def _all_done(jobs, timeout: float) -> None:
    from tests.support.processes import wait_until
    from uploads.models import Job

    ids = [job.id for job in jobs]
    finished = wait_until(
        lambda: Job.objects.filter(id__in=ids, status__in=["done", "failed"]).count() == len(ids),
        timeout=timeout,
        interval=0.05,
    )
    failed = Job.objects.filter(id__in=ids).exclude(status="done").count()
    if not finished or failed:
        raise RuntimeError(f"{failed} of {len(ids)} jobs did not end done")


def _batch_seconds(template, converters: int, clips: int, workdir) -> float:
    from tests.support.processes import manage_command, stop_process
    from videomp3 import broker

    processes = [
        manage_command(["run_converter"], workdir / f"converter-{converters}-{i}.log") for i in range(converters)
    ]
    try:
        for job in (warm := _jobs(template, converters)):
            broker.publish(broker.VIDEO, str(job.id))
        _all_done(warm, timeout=300)
        jobs = _jobs(template, clips)
        started = time.perf_counter()
        for job in jobs:
            broker.publish(broker.VIDEO, str(job.id))
        _all_done(jobs, timeout=clips * 60 + 120)
        return time.perf_counter() - started
    finally:
        for process in processes:
            stop_process(process)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2 if _common.smoke() else 20)
    parser.add_argument("--seconds", type=int, default=2 if _common.smoke() else 60)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 5)
    args = parser.parse_args(argv)
    clip = _common.media(args.seconds)
    rows, ones, twos = [], [], []
    with _common.services() as (_env, workdir):
        template = _common.make_job(clip)
        for run in range(1, args.runs + 1):
            one = _batch_seconds(template, 1, args.clips, workdir)
            two = _batch_seconds(template, 2, args.clips, workdir)
            ones.append(one)
            twos.append(two)
            rows.append((run, f"{one:.2f}", f"{two:.2f}", f"{one / two:.2f}"))
    one_med, two_med = _common.median(ones), _common.median(twos)
    speedup = one_med / two_med
    rows.append(("median", f"{one_med:.2f}", f"{two_med:.2f}", f"{speedup:.2f}"))
    _common.table(
        f"Worker scaling: {args.clips} x {args.seconds}s 720p MP4, 1 vs 2 run_converter processes, {os.cpu_count()} cores",
        rows,
        ("run", "1 converter s", "2 converters s", "speed-up"),
    )
    print(
        f"speed-up {speedup:.2f}x, target >= {TARGET}: {'met' if speedup >= TARGET else 'NOT met'} "
        "(ffmpeg runs with its default threads; SecantusDB, MariaDB and RabbitMQ share the same cores)"
    )
    results = {
        "worker_scaling_speedup": {
            "value": round(speedup, 3),
            "unit": "x (1 converter time / 2 converters time)",
            "target": f">= {TARGET}",
            "met": speedup >= TARGET,
        },
        "worker_scaling_one_median": {"value": round(one_med, 2), "unit": "s", "target": "reported", "met": True},
        "worker_scaling_two_median": {"value": round(two_med, 2), "unit": "s", "target": "reported", "met": True},
    }
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
