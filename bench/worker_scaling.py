"""3. Worker scaling: 20 one-minute clips through 1 converter vs 2 converters (real processes, real RabbitMQ).

The one-minute 720p clip goes through the web role's own upload code once (uploads.services.intake.job_create,
in-process: probe, audio stream-copied into a small QuickTime file, cover frame, GridFS bucket `sources`);
then 20 queued jobs share that job's source_file_id and cover_file_id and copy its probed fields. Each job
is then exactly the work a converter does for a unique upload of that clip (download the small source,
encode with the default options, embed the cover, store the MP3), and the batch measures the converters
alone, not 20 uploads through the web role on the same 2 cores. Each configuration starts its
`manage.py run_converter` processes, warms each with one job, then publishes the 20 and times until the
last row reads done. Paired runs (1, then 2 converters), medians.

Usage: python -m bench.worker_scaling [--clips 20] [--seconds 60] [--runs 3]
"""

import argparse
import os
import time

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


def _phase(workdir, converters: int, job_id) -> dict:
    """The job's `conversion timings` (logged by whichever converter took it, just after the row read done)."""
    logs = [workdir / f"converter-{converters}-{i}.log" for i in range(converters)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for log in logs:
            if f"conversion timings job={job_id}" in log.read_text(errors="replace"):
                return _common.phase_timings(log, "conversion", job_id)
        time.sleep(0.05)
    raise RuntimeError(f"no converter logged the timings of job {job_id}")


def _batch_seconds(template, converters: int, clips: int, workdir, usage: dict) -> float:
    from core import broker

    processes = [
        _common.role(["run_converter"], workdir / f"converter-{converters}-{i}.log") for i in range(converters)
    ]
    try:
        for job in (warm := _jobs(template, converters)):
            broker.publish(broker.VIDEO, str(job.id))
        _all_done(warm, timeout=300)
        jobs = _jobs(template, clips)
        secantus, converter_pids = _common.secantus_pids(workdir), [p.pid for p in processes]

        def cpu() -> tuple[float, float, float]:
            return (
                _common.busy_cpu_seconds(),
                _common.busy_cpu_seconds(secantus),
                _common.busy_cpu_seconds(converter_pids, reaped_children=True),
            )

        before = cpu()
        started = time.perf_counter()
        for job in jobs:
            broker.publish(broker.VIDEO, str(job.id))
        _all_done(jobs, timeout=clips * 60 + 120)
        elapsed = time.perf_counter() - started
        after = cpu()
        # What bounds the speed-up: how many of the cores were busy, how much of them the converters (with
        # their ffmpeg children) and SecantusDB (one Python process serving every GridFS read and write) took.
        for key, used in zip(
            ("cores_busy", "secantus_core", "converters_cores"),
            (a - b for a, b in zip(after, before, strict=True)),
            strict=True,
        ):
            usage.setdefault(key, []).append(used / elapsed)
        # Each job's own phases (the converter's `conversion timings` line): how much slower one job gets.
        for phase in ("download", "encode", "store"):
            usage.setdefault(phase, []).append(
                _common.median([_phase(workdir, converters, job.id).get(phase, 0.0) for job in jobs])
            )
        return elapsed
    finally:
        for process in processes:
            _common.stop(process)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2 if _common.smoke() else 20)
    parser.add_argument("--seconds", type=int, default=2 if _common.smoke() else 60)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 3)
    args = parser.parse_args(argv)
    clip = _common.media(args.seconds)
    rows, ones, twos = [], [], []
    with _common.services() as (_env, workdir):
        template = _common.stored_upload(clip)
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
    usage = {n: {k: _common.median(v) for k, v in u.items()} for n, u in (("one", usage_one), ("two", usage_two))}
    _common.table(
        "Worker scaling: where the time went (medians over the runs; per job: medians of its `conversion timings`)",
        [
            (label, f"{usage['one'][key]:.2f}", f"{usage['two'][key]:.2f}")
            for label, key in (
                (f"cores busy (of {os.cpu_count()})", "cores_busy"),
                ("· converters + their ffmpeg, cores", "converters_cores"),
                ("· SecantusDB, cores", "secantus_core"),
                ("per job: download s", "download"),
                ("per job: encode s", "encode"),
                ("per job: store s", "store"),
            )
        ],
        ("", "1 converter", "2 converters"),
    )
    results = {
        "worker_scaling_speedup": _common.entry(
            round(speedup, 3), "x (1 converter time / 2 converters time)", f">= {TARGET}", speedup >= TARGET
        ),
        "worker_scaling_one_median": _common.entry(round(one_med, 2), "s"),
        "worker_scaling_two_median": _common.entry(round(two_med, 2), "s"),
    }
    for name, values in usage.items():
        for key, value in values.items():
            unit = "s per job" if key in ("download", "encode", "store") else "cores"
            results[f"worker_scaling_{key}_{name}"] = _common.entry(round(value, 2), unit)
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
