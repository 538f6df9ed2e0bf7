"""4. Worker scaling: 20 one-minute clips through 1 converter vs 2 converters (real processes, real RabbitMQ).

One video is stored once and 20 jobs point at it (KEEP_SOURCE_VIDEOS=1), so every run converts the same
bytes. Each configuration starts its `manage.py run_converter` processes, warms them with one job, then
publishes the 20 and times until all are done. Paired runs, medians.

Usage: python -m bench.worker_scaling [--clips 20] [--seconds 60] [--runs 5]
"""

import argparse
import os
import time
from pathlib import Path

from bench import _common

TARGET = 1.6


def _jobs(template, count: int):
    return [_common.job_like(template) for _ in range(count)]


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


def _busy_cpu_seconds(pids: list[int] | None = None) -> float:
    """CPU seconds used so far: by the whole machine (pids None, from /proc/stat) or by these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    if pids is None:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / ticks  # all but idle and iowait
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / ticks


def _secantus_pids(workdir) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(workdir / "secantus").encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def _batch_seconds(template, converters: int, clips: int, workdir, usage: dict) -> float:
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
        secantus = _secantus_pids(workdir)
        machine_before, secantus_before = _busy_cpu_seconds(), _busy_cpu_seconds(secantus)
        started = time.perf_counter()
        for job in jobs:
            broker.publish(broker.VIDEO, str(job.id))
        _all_done(jobs, timeout=clips * 60 + 120)
        elapsed = time.perf_counter() - started
        # What bounds the speed-up: how many of the cores were busy, and how much of one core SecantusDB
        # (a single Python process serving every GridFS read) kept busy.
        usage.setdefault("cores_busy", []).append((_busy_cpu_seconds() - machine_before) / elapsed)
        usage.setdefault("secantus_core", []).append((_busy_cpu_seconds(secantus) - secantus_before) / elapsed)
        return elapsed
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
        usage_one: dict = {}
        usage_two: dict = {}
        for run in range(1, args.runs + 1):
            one = _batch_seconds(template, 1, args.clips, workdir, usage_one)
            two = _batch_seconds(template, 2, args.clips, workdir, usage_two)
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
    busy_one, busy_two = _common.median(usage_one["cores_busy"]), _common.median(usage_two["cores_busy"])
    store_one, store_two = _common.median(usage_one["secantus_core"]), _common.median(usage_two["secantus_core"])
    print(
        f"cores busy (of {os.cpu_count()}): {busy_one:.2f} with 1 converter, {busy_two:.2f} with 2; "
        f"SecantusDB alone kept {store_one:.2f} / {store_two:.2f} of a core busy"
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
        "worker_scaling_cores_busy_one": {
            "value": round(busy_one, 2),
            "unit": "cores",
            "target": "reported",
            "met": True,
        },
        "worker_scaling_cores_busy_two": {
            "value": round(busy_two, 2),
            "unit": "cores",
            "target": "reported",
            "met": True,
        },
        "worker_scaling_secantus_core_one": {
            "value": round(store_one, 2),
            "unit": "cores",
            "target": "reported",
            "met": True,
        },
        "worker_scaling_secantus_core_two": {
            "value": round(store_two, 2),
            "unit": "cores",
            "target": "reported",
            "met": True,
        },
    }
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
