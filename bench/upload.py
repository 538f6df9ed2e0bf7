"""3. Upload: a 1 GiB file through the web role under gunicorn into GridFS, against a raw GridFS write.

The web worker runs docker/gunicorn.conf.py (the production settings, one worker); its peak RSS
(worker plus its ffprobe child, from /proc every 50 ms) is measured during a 1 GiB and a 100 MiB
upload. The raw baseline writes the same file with pymongo's GridFSBucket.upload_from_stream to
the same SecantusDB server. Paired runs, medians.

Usage: python -m bench.upload [--mib 1024] [--small-mib 100] [--runs 5]
"""

import argparse
import time

from bench import _common

TARGET_RSS_MIB = 200
TARGET_RSS_GROWTH = 1.2
TARGET_THROUGHPUT = 0.7


def _raw_gridfs_write(path) -> float:
    # The baseline on purpose bypasses uploads.storage: plain pymongo, as any client would write.
    import gridfs
    import pymongo
    from django.conf import settings

    client = pymongo.MongoClient(settings.MONGODB_URI)
    try:
        bucket = gridfs.GridFSBucket(client[settings.MONGODB_DB], bucket_name="raw")
        started = time.perf_counter()
        with open(path, "rb") as source:
            file_id = bucket.upload_from_stream(path.name, source)
        elapsed = time.perf_counter() - started
        bucket.delete(file_id)
    finally:
        client.close()
    return elapsed


def _web_upload(base_url: str, worker_pid: int, path) -> tuple[float, float]:
    """(seconds from the first byte sent to the response, peak RSS MiB of the worker tree)."""
    from uploads import services as job_services
    from uploads.models import Job

    with _common.RssSampler(worker_pid) as sampler:
        started = time.perf_counter()
        job = _common.upload(base_url, path, _common.authorization())
        elapsed = time.perf_counter() - started
    job_services.job_delete(job=Job.objects.get(id=job["id"]))
    return elapsed, sampler.peak / 2**20


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=4 if _common.smoke() else 1024)
    parser.add_argument("--small-mib", type=int, default=1 if _common.smoke() else 100)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 5)
    args = parser.parse_args(argv)
    big, small = _common.wav(args.mib), _common.wav(args.small_mib)
    rows, webs, raws, peaks, small_peaks = [], [], [], [], []
    with _common.services() as (_env, workdir), _common.gunicorn(workdir) as (base_url, worker):
        _web_upload(base_url, worker, small)  # warm-up: the first request imports the views
        for run in range(1, args.runs + 1):
            raw = _raw_gridfs_write(big)
            web, peak = _web_upload(base_url, worker, big)
            _, small_peak = _web_upload(base_url, worker, small)
            raws.append(raw)
            webs.append(web)
            peaks.append(peak)
            small_peaks.append(small_peak)
            rows.append((run, f"{raw:.2f}", f"{web:.2f}", f"{raw / web:.2f}", f"{peak:.1f}", f"{small_peak:.1f}"))
    raw_med, web_med = _common.median(raws), _common.median(webs)
    peak_med, small_med = _common.median(peaks), _common.median(small_peaks)
    throughput, growth = raw_med / web_med, peak_med / small_med
    rows.append(
        ("median", f"{raw_med:.2f}", f"{web_med:.2f}", f"{throughput:.2f}", f"{peak_med:.1f}", f"{small_med:.1f}")
    )
    _common.table(
        f"Upload: {args.mib} MiB WAV through gunicorn (docker/gunicorn.conf.py, 1 worker) vs raw GridFS write",
        rows,
        ("run", "raw GridFS s", "web upload s", "throughput vs raw", "worker peak MiB", f"{args.small_mib} MiB peak"),
    )
    print(
        f"throughput {throughput:.2f}x raw (target >= {TARGET_THROUGHPUT}), worker peak {peak_med:.1f} MiB "
        f"(target <= {TARGET_RSS_MIB}), {args.mib}/{args.small_mib} MiB peak {growth:.2f} (target <= {TARGET_RSS_GROWTH})"
    )
    print(f"note: {_common.SECANTUS_NOTE}")
    results = {
        "upload_throughput_vs_raw": {
            "value": round(throughput, 3),
            "unit": "x raw GridFS write",
            "target": f">= {TARGET_THROUGHPUT}",
            "met": throughput >= TARGET_THROUGHPUT,
        },
        "upload_worker_peak_rss": {
            "value": round(peak_med, 1),
            "unit": "MiB",
            "target": f"<= {TARGET_RSS_MIB}",
            "met": peak_med <= TARGET_RSS_MIB,
        },
        "upload_rss_growth_big_over_small": {
            "value": round(growth, 3),
            "unit": "ratio",
            "target": f"<= {TARGET_RSS_GROWTH}",
            "met": growth <= TARGET_RSS_GROWTH,
        },
        "upload_web_median": {"value": round(web_med, 2), "unit": "s", "target": "reported", "met": True},
        "upload_raw_gridfs_median": {"value": round(raw_med, 2), "unit": "s", "target": "reported", "met": True},
    }
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
