"""Shared by the bench scripts: generated media (cached), real services, results file, tables."""

import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS = BENCH_DIR / "results" / "latest.json"
SECANTUS_NOTE = "GridFS is served by SecantusDB (a Python MongoDB-wire server, much slower than mongod)"

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


def media(seconds: int, size: str = "1280x720", rate: int = 30) -> Path:
    """An H.264+AAC MP4 with its index at the end (no faststart), cached under bench/.cache/."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"video-{seconds}s-{size.split('x')[1]}p.mp4"
    if target.exists():
        return target
    partial = target.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={rate}:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            str(partial),
        ],
        check=True,
    )
    partial.replace(target)
    return target


def mp3_in_container(seconds: int) -> Path:
    """A Matroska file with small H.264 video and 128k MP3 audio (MP3 in a container), cached under bench/.cache/."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"video-{seconds}s-120p-mp3.mkv"
    if target.exists():
        return target
    partial = target.with_suffix(".part.mkv")
    # fmt: off
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=5:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "libmp3lame", "-b:a", "128k", "-ac", "2", "-shortest", "-f", "matroska", str(partial),
        ],
        check=True,
    )
    # fmt: on
    partial.replace(target)
    return target


def raw_ffmpeg(source: Path, out: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-vn",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            str(out),
        ],
        check=True,
    )


@contextlib.contextmanager
def services():
    """A fresh MariaDB database, a SecantusDB process and a RabbitMQ queue prefix; env set, Django set up.

    Yields the environment role processes need. Everything is removed afterwards.
    """
    from tests.support.services import SecantusProcess, amqp_url

    pid = os.getpid()
    db_name = f"videomp3_bench_{pid}"
    workdir = Path(tempfile.mkdtemp(prefix="videomp3-bench-"))
    (workdir / "secantus").mkdir()
    secantus = SecantusProcess(workdir / "secantus", workdir / "secantus.log")
    subprocess.run(["mysql", "-uroot", "-h127.0.0.1", "-e", f"CREATE DATABASE {db_name}"], check=True)
    try:
        secantus.start()
        env = {
            "DJANGO_SETTINGS_MODULE": "videomp3.settings",
            "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{db_name}",
            "MONGODB_URI": secantus.uri,
            "MONGODB_DB": "videomp3_bench",
            "AMQP_URL": amqp_url(),
            "QUEUE_PREFIX": f"bench-{pid}-",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "CONVERSION_TEMP_DIR": str(workdir),
            "DEBUG": "1",
            "KEEP_SOURCE_VIDEOS": "1",  # one stored video serves every run
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(env)
        import django
        from django.conf import settings

        if settings.configured:  # a second script in the same `python -m bench` run: point at the new services
            from uploads import storage

            settings.MONGODB_URI = env["MONGODB_URI"]
            storage.reset_client()
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        try:
            yield env, workdir
        finally:
            from videomp3 import broker

            with contextlib.suppress(Exception):
                broker.delete_queues()
            from django.db import connections

            connections.close_all()
    finally:
        secantus.stop()
        subprocess.run(["mysql", "-uroot", "-h127.0.0.1", "-e", f"DROP DATABASE IF EXISTS {db_name}"], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def make_job(path: Path, *, username: str = "bench"):
    """A queued Job whose video is stored in GridFS, as the upload path leaves it."""
    from django.contrib.auth import get_user_model

    from conversion import ffmpeg
    from uploads import storage
    from uploads.models import Job

    user, _ = get_user_model().objects.get_or_create(email=f"{username}@example.com")
    stored = storage.save_path(storage.VIDEOS, path, filename=path.name, content_type="video/mp4")
    return Job.objects.create(
        owner=user,
        status=Job.Status.QUEUED,
        original_filename=path.name,
        size=stored.size,
        video_file_id=stored.file_id,
        duration=ffmpeg.media_duration(path),
    )


def median(values):
    return statistics.median(values)


def table(title: str, rows: list[tuple], headers: tuple) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    print(f"\n== {title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    return {
        "cores": os.cpu_count(),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "cpu_model": cpu,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def record(results: dict) -> None:
    """Merge these results into bench/results/latest.json (other scripts' entries are kept)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(results)
    current["machine"] = machine()
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
