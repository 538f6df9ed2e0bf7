"""2. Upload: a 1 GiB H.264/AAC MP4 through POST /api/jobs/ against POSTing the same bytes to a discard endpoint.

Both sides run under the same gunicorn config (docker/gunicorn.conf.py, one worker, so the worker measured is
the one that took the request): the web role (`videomp3.wsgi`) and bench/discard_wsgi.py, a WSGI app that
reads the body in 1 MiB pieces and throws it away. The client and the multipart body are the same (only the
`file` field). Each upload comes from a user made for it (dedup cannot skip the work); no converter runs.
Measured: request start -> response, and the peak RSS of the worker process tree (the worker plus its
ffprobe/ffmpeg children, from /proc every 50 ms); the web role's `upload timings` line gives the breakdown.
Paired runs (discard, then web), medians.

Usage: python -m bench.upload [--mib 1024] [--runs 3]
"""

import argparse
import time

from bench import _common

TARGET_RATIO = 1.3
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
    args = parser.parse_args(argv)
    video = _common.media_of_size(args.mib)
    warm = _common.media(2)
    size_mib = video.stat().st_size / 2**20
    rows, webs, discards, peaks, discard_peaks, phases = [], [], [], [], [], []
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
    for phase, value in phase_med.items():
        results[f"upload_phase_{phase}"] = _common.entry(round(value, 2), "s")
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
