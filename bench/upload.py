"""2. Upload: a 1 GiB H.264/AAC MP4 through POST /api/jobs/ against POSTing the same bytes to a discard endpoint.

Both sides run under the same gunicorn config (docker/gunicorn.conf.py, one worker, so the worker measured is
the one that took the request): the web role (`videomp3.wsgi`) and bench/discard_wsgi.py, a WSGI app that
reads the body in 1 MiB pieces and throws it away. The client and the multipart body are the same (only the
`file` field). Each upload comes from a user made for it (dedup cannot skip the work); no converter runs.
Measured: request start -> response, and the peak RSS of the worker process tree (the worker plus its
ffprobe/ffmpeg children, from /proc every 50 ms); the web role's `upload timings` line gives the breakdown.
Paired runs (discard, then web), medians.

Then 3. Resumable upload: the same file sent with the tus protocol (tuspy, 8 MiB PATCHes) to /api/uploads/,
against a plain GridFS write of the same bytes from the bench process (core.storage.save_path), in the same
run. Compared: the transfer (every PATCH until the last byte is stored, that is the whole upload minus the
job-making after it, read from the web role's `upload timings` line) against the plain write, as a
throughput ratio (plain write s / transfer s; 1.0 = as fast as GridFS takes the bytes).

Usage: python -m bench.upload [--mib 1024] [--runs 3] [--chunk-mib 8]
"""

import argparse
import time

from bench import _common

TARGET_RATIO = 1.3
TARGET_RESUMABLE_RATIO = 0.8
TARGET_RSS_MIB = 200
PHASES = ("receive", "hash", "probe", "extract", "cover", "store", "commit")


def _timed_upload(base_url: str, worker: int, path, authorization: str, target: str) -> tuple[float, float, dict]:
    """(seconds from request start to response, peak RSS MiB of the worker tree, the JSON answer)."""
    with _common.RssSampler(worker) as sampler:
        started = time.perf_counter()
        answer = _common.upload(base_url, path, authorization, target=target)
        elapsed = time.perf_counter() - started
    return elapsed, sampler.peak / 2**20, answer


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=4 if _common.smoke() else 1024)
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 3)
    parser.add_argument("--chunk-mib", type=int, default=1 if _common.smoke() else 8)
    args = parser.parse_args(argv)
    video = _common.media_of_size(args.mib)
    warm = _common.media(2)
    size_mib = video.stat().st_size / 2**20
    rows, webs, discards, peaks, discard_peaks, phases = [], [], [], [], [], []
    resumable_rows, plain_writes, transfers, resumables = [], [], [], []
    with (
        _common.services() as (_env, workdir),
        _common.gunicorn(workdir) as (base_url, web_master, web_log),
        _common.gunicorn(workdir, app="bench.discard_wsgi:application") as (discard_url, discard_master, _),
    ):
        web_worker, discard_worker = _common.gunicorn_worker(web_master), _common.gunicorn_worker(discard_master)
        # Warm-up: the first request imports the views; the first read puts the file in the page cache.
        _common.upload(base_url, warm, _common.fresh_authorization())
        _timed_upload(discard_url, discard_worker, video, "-", "/")
        for run in range(1, args.runs + 1):
            discard, discard_peak, answer = _timed_upload(discard_url, discard_worker, video, "-", "/")
            if answer["discarded"] < video.stat().st_size:
                raise RuntimeError(f"the discard endpoint read {answer['discarded']} bytes")
            web, peak, job = _timed_upload(base_url, web_worker, video, _common.fresh_authorization(), "/api/jobs/")
            timings = _common.phase_timings(web_log, "upload", job["id"])
            webs.append(web)
            discards.append(discard)
            peaks.append(peak)
            discard_peaks.append(discard_peak)
            phases.append(timings)
            rows.append(
                (run, f"{discard:.2f}", f"{web:.2f}", f"{web / discard:.2f}", f"{peak:.1f}", f"{discard_peak:.1f}")
            )
        for run in range(1, args.runs + 1):
            plain = _plain_gridfs_write(video)
            total, job = _resumable_upload(base_url, video, args.chunk_mib * 2**20)
            finish = sum(_common.phase_timings(web_log, "upload", job["id"]).values())
            transfer = total - finish
            plain_writes.append(plain)
            transfers.append(transfer)
            resumables.append(total)
            resumable_rows.append((run, f"{plain:.2f}", f"{transfer:.2f}", f"{plain / transfer:.2f}", f"{total:.2f}"))
    discard_med, web_med = _common.median(discards), _common.median(webs)
    peak_med, discard_peak_med = _common.median(peaks), _common.median(discard_peaks)
    peak_max = max(peaks)
    ratio = web_med / discard_med
    rows.append(
        ("median", f"{discard_med:.2f}", f"{web_med:.2f}", f"{ratio:.2f}", f"{peak_med:.1f}", f"{discard_peak_med:.1f}")
    )
    _common.table(
        f"Upload: {size_mib:.0f} MiB 720p H.264/AAC MP4 (index at end), POST /api/jobs/ vs a discard endpoint, "
        "both under docker/gunicorn.conf.py with 1 worker",
        rows,
        ("run", "discard s", "web s", "web / discard", "web worker peak MiB", "discard worker peak MiB"),
    )
    phase_med = {p: _common.median([t.get(p, 0.0) for t in phases]) for p in PHASES}
    rest = web_med - sum(phase_med.values())
    _common.table(
        "Upload: per-phase medians (the web role's `upload timings` line)",
        [
            *((p, f"{v:.2f}") for p, v in phase_med.items()),
            ("rest (HTTP, auth, multipart outside receive)", f"{rest:.2f}"),
        ],
        ("phase", "s"),
    )
    print(
        f"upload {ratio:.2f}x discard (target <= {TARGET_RATIO}x): {'met' if ratio <= TARGET_RATIO else 'NOT met'}; "
        f"web worker peak {peak_med:.1f} MiB, highest {peak_max:.1f} MiB (target <= {TARGET_RSS_MIB}): "
        f"{'met' if peak_max <= TARGET_RSS_MIB else 'NOT met'}"
    )
    plain_med, transfer_med, resumable_med = map(_common.median, (plain_writes, transfers, resumables))
    resumable_ratio = plain_med / transfer_med
    resumable_rows.append(
        ("median", f"{plain_med:.2f}", f"{transfer_med:.2f}", f"{resumable_ratio:.2f}", f"{resumable_med:.2f}")
    )
    _common.table(
        f"Resumable upload: the same {size_mib:.0f} MiB with tus (tuspy, {args.chunk_mib} MiB PATCHes) to "
        f"/api/uploads/ vs a plain GridFS write of the same bytes; beside it, POST /api/jobs/ took {web_med:.2f} s",
        resumable_rows,
        ("run", "GridFS write s", "tus transfer s", "throughput ratio", "tus upload to job s"),
    )
    print(
        f"resumable upload {resumable_ratio:.2f}x a plain GridFS write's throughput "
        f"(target >= {TARGET_RESUMABLE_RATIO}x): {'met' if resumable_ratio >= TARGET_RESUMABLE_RATIO else 'NOT met'}; "
        f"to a job {resumable_med:.2f} s against {web_med:.2f} s for the multipart upload"
    )
    print(f"note: {_common.SECANTUS_NOTE}")
    results = {
        "upload_1gib_vs_discard": _common.entry(
            round(ratio, 3), "x (web upload / discard endpoint)", f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO
        ),
        "upload_web_peak_rss": _common.entry(
            round(peak_max, 1), "MiB (highest of the runs)", f"<= {TARGET_RSS_MIB}", peak_max <= TARGET_RSS_MIB
        ),
        "upload_web_median": _common.entry(round(web_med, 2), "s"),
        "upload_discard_median": _common.entry(round(discard_med, 2), "s"),
        "upload_discard_peak_rss": _common.entry(round(discard_peak_med, 1), "MiB"),
        "upload_input_size": _common.entry(round(size_mib, 1), "MiB"),
    }
    results["resumable_upload_vs_gridfs_write"] = _common.entry(
        round(resumable_ratio, 3),
        f"x (plain GridFS write s / tus transfer s, {args.chunk_mib} MiB PATCHes)",
        f">= {TARGET_RESUMABLE_RATIO}",
        resumable_ratio >= TARGET_RESUMABLE_RATIO,
    )
    results["resumable_upload_median"] = _common.entry(round(resumable_med, 2), "s (to the job)")
    results["resumable_gridfs_write_median"] = _common.entry(round(plain_med, 2), "s")
    for phase, value in phase_med.items():
        results[f"upload_phase_{phase}"] = _common.entry(round(value, 2), "s")
    _common.record(results)
    return results


def _plain_gridfs_write(path) -> float:
    """Seconds to store the file in GridFS from this process, as core.storage stores any file."""
    from core import storage

    started = time.perf_counter()
    stored = storage.save_path(storage.VIDEOS, path, filename=path.name, content_type="application/octet-stream")
    elapsed = time.perf_counter() - started
    storage.delete(storage.VIDEOS, stored.file_id)
    return elapsed


def _resumable_upload(base_url: str, path, chunk_size: int) -> tuple[float, dict]:
    """(seconds from creation to the job, the job) of a tus upload by the reference client, as a fresh user."""
    import json

    from tusclient import client as tus

    headers = {"Authorization": _common.fresh_authorization()}
    started = time.perf_counter()
    uploader = tus.TusClient(f"{base_url}/api/uploads/", headers=headers).uploader(
        str(path), chunk_size=chunk_size, metadata={"filename": path.name}
    )
    uploader.upload()
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(uploader.request.response_content)


if __name__ == "__main__":
    main()
