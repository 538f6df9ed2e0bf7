"""1. The default path, as a user uploads: POST /api/jobs/ with only `file` until the job row reads `done`.

Production-like: gunicorn (docker/gunicorn.conf.py, its default 2 workers × 8 threads), one
`manage.py run_converter` and one `manage.py run_notifier` as their own processes, MariaDB, RabbitMQ and
SecantusDB as its own server, KEEP_SOURCE_VIDEOS=0, DEBUG off. Each upload comes from a user made for it,
so dedup (same owner, same SHA-256, same options) cannot skip its conversion; only `file` is sent, so the
default options apply (a cover frame too). The baseline, in the same run on the same file, is raw
`ffmpeg -i IN -vn -c:a libmp3lame -b:a 192k OUT` on local disk.

Per clip (a 60 s and a 10-minute 720p H.264/AAC MP4 with the index at the end), one warm-up run and then
`--runs` paired runs (raw, then upload), medians:

  upload            request start -> response (202)
  response -> done  response -> the job row reads `done` (polled every 20 ms)
  start -> done     their sum

each also as a ratio to raw, with a per-phase breakdown from the roles' own log lines
(`upload timings job=…` of the web role, `conversion timings job=…` of the converter). The job's MP3 and
raw's MP3 must decode to the same audio: md5 of `ffmpeg -i X -map 0:a:0 -f md5 -` of both.

Usage: python -m bench.default_path [--clips 60,600] [--runs 3]
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench import _common

# clip seconds -> targets (issue #13): response -> done and start -> done against raw ffmpeg.
TARGETS = {
    600: {"response_to_done_ratio": 1.15, "start_to_done_ratio": 1.5},
    60: {"response_to_done_extra": 0.5, "start_to_done_ratio": 2.4},
}
UPLOAD_PHASES = ("receive", "hash", "probe", "extract", "cover", "store", "commit")
CONVERSION_PHASES = ("queue", "download", "loudness", "encode", "store")


def _one_run(base_url: str, clip: Path, raw_out: Path, web_log: Path, converter_log: Path, timeout: float) -> dict:
    raw = _common.raw_ffmpeg(clip, raw_out)
    authorization = _common.fresh_authorization()
    started = time.perf_counter()
    job = _common.upload(base_url, clip, authorization)
    answered = time.perf_counter()
    status = _common.wait_for_job(job["id"], timeout=timeout, interval=0.02)
    done = time.perf_counter()
    if status != "done":
        raise RuntimeError(f"job {job['id']} ended {status!r}; converter log:\n{converter_log.read_text()[-2000:]}")
    return {
        "job_id": job["id"],
        "raw": raw,
        "upload": answered - started,
        "response_to_done": done - answered,
        "start_to_done": done - started,
        "upload_phases": _common.phase_timings(web_log, "upload", job["id"]),
        "conversion_phases": _common.phase_timings(converter_log, "conversion", job["id"]),
    }


def _md5_check(job_id: str, raw_out: Path, tmp: Path) -> tuple[str, str]:
    """(md5 of the job's MP3 audio, md5 of raw's MP3 audio), decoded by ffmpeg."""
    from core import storage
    from uploads.models import Job

    job = Job.objects.get(id=job_id)
    mine = tmp / "job.mp3"
    storage.copy_to_path(storage.MP3S, job.mp3_file_id, mine)
    return _common.audio_md5(mine), _common.audio_md5(raw_out)


def _verdicts(seconds: int, raw: float, response_to_done: float, start_to_done: float) -> dict[str, tuple]:
    """{result name: (value, unit, target text, met)} for this clip's targets (none for other lengths)."""
    targets = TARGETS.get(seconds, {})
    verdicts = {}
    if "response_to_done_ratio" in targets:
        limit, value = targets["response_to_done_ratio"], response_to_done / raw
        verdicts["response_to_done_ratio"] = (round(value, 3), "x raw", f"<= {limit}x raw", value <= limit)
    if "response_to_done_extra" in targets:
        limit, value = targets["response_to_done_extra"], response_to_done - raw
        verdicts["response_to_done_extra"] = (round(value, 3), "s over raw", f"<= raw + {limit} s", value <= limit)
    if "start_to_done_ratio" in targets:
        limit, value = targets["start_to_done_ratio"], start_to_done / raw
        verdicts["start_to_done_ratio"] = (round(value, 3), "x raw", f"<= {limit}x raw", value <= limit)
    return verdicts


def _report(seconds: int, clip: Path, runs: list[dict], md5s: tuple[str, str]) -> dict:
    name = f"default_path_{seconds}s"
    rows = [
        (
            i,
            f"{r['raw']:.2f}",
            f"{r['upload']:.2f}",
            f"{r['response_to_done']:.2f}",
            f"{r['start_to_done']:.2f}",
            f"{r['response_to_done'] / r['raw']:.2f}",
            f"{r['start_to_done'] / r['raw']:.2f}",
        )
        for i, r in enumerate(runs, 1)
    ]
    med = {
        key: _common.median([r[key] for r in runs]) for key in ("raw", "upload", "response_to_done", "start_to_done")
    }
    raw = med["raw"]
    rows.append(
        (
            "median",
            f"{raw:.2f}",
            f"{med['upload']:.2f}",
            f"{med['response_to_done']:.2f}",
            f"{med['start_to_done']:.2f}",
            f"{med['response_to_done'] / raw:.2f}",
            f"{med['start_to_done'] / raw:.2f}",
        )
    )
    _common.table(
        f"Default path: {seconds}s 720p H.264/AAC MP4 (index at end), {clip.stat().st_size / 2**20:.0f} MiB, "
        "POST /api/jobs/ (file only) -> done; gunicorn + run_converter + run_notifier",
        rows,
        ("run", "raw s", "upload s", "response->done s", "start->done s", "resp->done / raw", "start->done / raw"),
    )
    upload_phases = {p: _common.median([r["upload_phases"].get(p, 0.0) for r in runs]) for p in UPLOAD_PHASES}
    conversion_phases = {
        p: _common.median([r["conversion_phases"].get(p, 0.0) for r in runs]) for p in CONVERSION_PHASES
    }
    upload_rest = med["upload"] - sum(upload_phases.values())
    after_response = med["response_to_done"] - sum(v for p, v in conversion_phases.items() if p != "queue")
    phase_rows = [(f"upload: {p}", f"{v:.3f}") for p, v in upload_phases.items()]
    phase_rows.append(("upload: rest (HTTP, auth, multipart parsing outside receive, response)", f"{upload_rest:.3f}"))
    phase_rows += [(f"conversion: {p}", f"{v:.3f}") for p, v in conversion_phases.items()]
    phase_rows.append(("response->done minus download+loudness+encode+store", f"{after_response:.3f}"))
    _common.table(
        f"Default path {seconds}s: per-phase medians (from the roles' timing lines)", phase_rows, ("phase", "s")
    )

    job_md5, raw_md5 = md5s
    same = job_md5 == raw_md5
    print(f"md5 of the decoded audio: job {job_md5}, raw {raw_md5}: {'same' if same else 'DIFFERENT'}")
    results = {
        f"{name}_raw_median": _common.entry(round(raw, 3), "s"),
        f"{name}_upload_median": _common.entry(round(med["upload"], 3), "s"),
        f"{name}_upload_ratio": _common.entry(round(med["upload"] / raw, 3), "x raw"),
        f"{name}_response_to_done_median": _common.entry(round(med["response_to_done"], 3), "s"),
        f"{name}_start_to_done_median": _common.entry(round(med["start_to_done"], 3), "s"),
        f"{name}_audio_md5_same_as_raw": _common.entry(f"job {job_md5} / raw {raw_md5}", "md5", "equal", same),
    }
    for phase, value in upload_phases.items():
        results[f"{name}_phase_upload_{phase}"] = _common.entry(round(value, 3), "s")
    for phase, value in conversion_phases.items():
        results[f"{name}_phase_conversion_{phase}"] = _common.entry(round(value, 3), "s")
    results[f"{name}_response_to_done_ratio"] = _common.entry(round(med["response_to_done"] / raw, 3), "x raw")
    results[f"{name}_start_to_done_ratio"] = _common.entry(round(med["start_to_done"] / raw, 3), "x raw")
    verdicts = _verdicts(seconds, raw, med["response_to_done"], med["start_to_done"])
    for key, (value, unit, target, met) in verdicts.items():
        results[f"{name}_{key}"] = _common.entry(value, unit, target, met)
        print(f"{seconds}s {key} {value}: target {target}: {'met' if met else 'NOT met'}")
    if not verdicts:
        print(f"{seconds}s: no target for this clip length (targets are for 60 s and 600 s)")
    print(f"{seconds}s audio md5 target: the same as raw's: {'met' if same else 'NOT met'}")
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", default="2" if _common.smoke() else "60,600", help="clip lengths, seconds")
    parser.add_argument("--runs", type=int, default=1 if _common.smoke() else 3)
    args = parser.parse_args(argv)
    clips = {seconds: _common.media(seconds) for seconds in sorted(int(s) for s in args.clips.split(","))}
    results: dict = {}
    with (
        _common.services() as (_env, workdir),
        _common.gunicorn(workdir, workers=None) as (base_url, _master, web_log),
        tempfile.TemporaryDirectory(prefix="videomp3-bench-raw-") as tmp,
    ):
        converter_log, notifier_log = workdir / "converter.log", workdir / "notifier.log"
        converter = _common.role(["run_converter"], converter_log)
        notifier = _common.role(["run_notifier"], notifier_log)
        try:
            for seconds, clip in clips.items():
                raw_out = Path(tmp) / f"raw-{seconds}.mp3"
                timeout = seconds * 3 + 120
                # Run 0 warms the page cache and both roles and is not counted.
                _one_run(base_url, clip, raw_out, web_log, converter_log, timeout)
                runs = [_one_run(base_url, clip, raw_out, web_log, converter_log, timeout) for _ in range(args.runs)]
                md5s = _md5_check(runs[0]["job_id"], raw_out, Path(tmp))
                results.update(_report(seconds, clip, runs, md5s))
        finally:
            _common.stop(converter)
            _common.stop(notifier)
    print(f"note: {_common.SECANTUS_NOTE}; the machine's cores are shared by every role and store")
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
