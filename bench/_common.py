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
CACHE_DIR = Path(os.environ.get("BENCH_CACHE_DIR") or BENCH_DIR / ".cache")
RESULTS = BENCH_DIR / "results" / "latest.json"
SECANTUS_NOTE = "GridFS is served by SecantusDB (a Python MongoDB-wire server, much slower than mongod)"

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


def _generated(name: str, ffmpeg_args: list[str]) -> Path:
    """bench/.cache/<name>, made once by `ffmpeg <ffmpeg_args> <partial file>` and renamed when complete."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / name
    if not target.exists():
        partial = target.with_name(f".part-{name}")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *ffmpeg_args, str(partial)], check=True)
        partial.replace(target)
    return target


def media(seconds: int, size: str = "1280x720", rate: int = 30) -> Path:
    """An H.264+AAC MP4 with its index at the end (no faststart), cached under bench/.cache/."""
    # fmt: off
    return _generated(f"video-{seconds}s-{size.split('x')[1]}p.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-f", "mp4",
    ])
    # fmt: on


def mp3_in_container(seconds: int) -> Path:
    """A Matroska file with small H.264 video and 128k MP3 audio (MP3 in a container), cached under bench/.cache/."""
    # fmt: off
    return _generated(f"video-{seconds}s-120p-mp3.mkv", [
        "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=5:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "libmp3lame", "-b:a", "128k", "-ac", "2", "-shortest", "-f", "matroska",
    ])
    # fmt: on


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
            settings.CONVERSION_TEMP_DIR = env["CONVERSION_TEMP_DIR"]  # the first script's was removed
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


def job_like(template):
    """Another queued Job converting the same stored video as `template` (KEEP_SOURCE_VIDEOS keeps it)."""
    from uploads.models import Job

    return Job.objects.create(
        owner=template.owner,
        status=Job.Status.QUEUED,
        original_filename=template.original_filename,
        size=template.size,
        video_file_id=template.video_file_id,
        duration=template.duration,
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
    """Merge these results into bench/results/latest.json (other scripts' entries are kept); not in smoke runs."""
    if smoke():
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(results)
    current["machine"] = machine()
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def wav(mebibytes: int) -> Path:
    """A 48 kHz stereo 16-bit WAV of about `mebibytes` MiB (a sine), cached under bench/.cache/."""
    seconds = mebibytes * 2**20 / (48000 * 2 * 2)
    # fmt: off
    return _generated(f"audio-{mebibytes}MiB.wav", [
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-ac", "2", "-t", f"{seconds:.3f}", "-c:a", "pcm_s16le", "-f", "wav",
    ])
    # fmt: on


def smoke() -> bool:
    """BENCH_SMOKE=1: tiny inputs and one run each, so CI proves the scripts still run (no figures)."""
    return os.environ.get("BENCH_SMOKE") == "1"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) of pid and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        stack += children(current)
    return total


class RssSampler:
    """Peak tree_rss(pid) while the `with` block runs, sampled every 50 ms from a thread."""

    def __init__(self, pid: int, every: float = 0.05):
        import threading

        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self):
        self.peak = tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def gunicorn(workdir: Path, **env_overrides: str):
    """The web role under docker/gunicorn.conf.py (the production settings) with one worker, on 127.0.0.1.

    Yields (base URL, pid of the worker process).
    """
    import time

    from tests.support.processes import role_env, stop_process
    from tests.support.services import free_port, wait_for_port

    port = free_port()
    log_path = workdir / f"gunicorn-{port}.log"
    env = role_env(WEB_CONCURRENCY="1", **env_overrides)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
            + ["--access-logfile", "/dev/null", "videomp3.wsgi"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port, 60):
            raise RuntimeError(f"gunicorn did not listen; see {log_path}:\n{log_path.read_text()[-3000:]}")
        deadline = time.monotonic() + 30
        while not children(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        (worker,) = children(process.pid)
        yield f"http://127.0.0.1:{port}", worker
    finally:
        stop_process(process)


def authorization(email: str = "bench@example.com") -> str:
    """A fresh JWT access token (Authorization header value) for a bench user, made in-process."""
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    user, _ = get_user_model().objects.get_or_create(email=email)
    return f"Bearer {AccessToken.for_user(user)}"


def upload(base_url: str, path: Path, authorization: str, fields: dict[str, str] | None = None) -> dict:
    """POST /api/jobs/ with the file as multipart, streamed from disk in 1 MiB pieces; returns the job JSON.

    `fields` go as form fields before the file (output options)."""
    import http.client
    import urllib.parse
    import uuid

    boundary = uuid.uuid4().hex
    head = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (fields or {}).items()
        ).encode()
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    try:
        connection.putrequest("POST", "/api/jobs/")
        connection.putheader("Authorization", authorization)
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
        connection.endheaders()
        connection.send(head)
        with open(path, "rb") as source:
            while piece := source.read(2**20):
                connection.send(piece)
        connection.send(tail)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 202:
        raise RuntimeError(f"upload answered {response.status}: {body[:500]!r}")
    return json.loads(body)
