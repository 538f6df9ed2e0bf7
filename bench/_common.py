"""Shared by the bench scripts: generated media (cached), real services and roles, results file, tables."""

import contextlib
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
CACHE_DIR = Path(os.environ.get("BENCH_CACHE_DIR") or BENCH_DIR / ".cache")
RESULTS = BENCH_DIR / "results" / "latest.json"
SECANTUS_NOTE = "GridFS is served by SecantusDB (a Python MongoDB-wire server, much slower than mongod)"
# DEBUG is off, as in production, which needs real keys; one pair per `python -m bench` process, so the
# settings Django loaded for the first script stay valid for the next.
_KEYS = {"SECRET_KEY": secrets.token_urlsafe(48), "JWT_SIGNING_KEY": secrets.token_urlsafe(48)}

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


# --- inputs -----------------------------------------------------------------------------------


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
    """An H.264+AAC MP4 with its index at the end (no faststart, as cameras write it), cached under bench/.cache/."""
    # fmt: off
    return _generated(f"video-{seconds}s-{size.split('x')[1]}p.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-f", "mp4",
    ])
    # fmt: on


def media_of_size(mebibytes: int) -> Path:
    """A 720p H.264+AAC MP4 of about `mebibytes` MiB (cut by ffmpeg's -fs), index at the end, cached."""
    # testsrc2 at 720p with -preset ultrafast comes to about 0.9 MiB a second, so 1.5 s per MiB is enough
    # material; -fs stops muxing at the size, then the index (moov) is written after the data.
    seconds = max(4, int(mebibytes * 1.5))
    # fmt: off
    return _generated(f"video-{mebibytes}MiB-720p.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-fs", str(mebibytes * 2**20), "-f", "mp4",
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


def wav(mebibytes: int) -> Path:
    """A 48 kHz stereo 16-bit WAV of about `mebibytes` MiB (a sine), cached under bench/.cache/."""
    seconds = mebibytes * 2**20 / (48000 * 2 * 2)
    # fmt: off
    return _generated(f"audio-{mebibytes}MiB.wav", [
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-ac", "2", "-t", f"{seconds:.3f}", "-c:a", "pcm_s16le", "-f", "wav",
    ])
    # fmt: on


def raw_ffmpeg(source: Path, out: Path) -> float:
    """The baseline: `ffmpeg -i IN -vn -c:a libmp3lame -b:a 192k OUT` on local disk; returns its seconds."""
    started = time.perf_counter()
    # fmt: off
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-vn", "-c:a", "libmp3lame", "-b:a", "192k",
         str(out)],
        check=True,
    )
    # fmt: on
    return time.perf_counter() - started


def audio_md5(path: Path) -> str:
    """MD5 of the decoded first audio track (`ffmpeg -i X -map 0:a:0 -f md5 -`): equal when two MP3s hold the same audio."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "md5", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out.removeprefix("MD5=")


# --- services and roles -----------------------------------------------------------------------


@contextlib.contextmanager
def services():
    """A fresh MariaDB database, a SecantusDB process and a RabbitMQ queue prefix; env set, Django set up.

    The settings are production's defaults (DEBUG off, KEEP_SOURCE_VIDEOS=0). Yields (the environment role
    processes need, a temporary work directory). Everything is removed afterwards.
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
            "FILE_UPLOAD_TEMP_DIR": str(workdir),
            "DEBUG": "0",  # production's settings
            **_KEYS,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "KEEP_SOURCE_VIDEOS": "0",  # the default: only the extracted audio and the cover frame are stored
            "LOG_FORMAT": "plain",  # the roles' `… timings job=…` lines are read back from their logs
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(env)
        import django
        from django.conf import settings

        if settings.configured:  # a second script in the same `python -m bench` run: point at the new services
            from core import storage

            settings.MONGODB_URI = env["MONGODB_URI"]
            settings.CONVERSION_TEMP_DIR = env["CONVERSION_TEMP_DIR"]  # the first script's was removed
            settings.FILE_UPLOAD_TEMP_DIR = env["FILE_UPLOAD_TEMP_DIR"]
            storage.reset_client()
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        try:
            yield env, workdir
        finally:
            from core import broker

            with contextlib.suppress(Exception):
                broker.delete_queues()
            from django.db import connections

            connections.close_all()
    finally:
        secantus.stop()
        subprocess.run(["mysql", "-uroot", "-h127.0.0.1", "-e", f"DROP DATABASE IF EXISTS {db_name}"], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def role(args: list[str], log_path: Path) -> subprocess.Popen:
    """A `manage.py` role (run_converter, run_notifier) as its own process, logging to log_path."""
    from tests.support.processes import manage_command

    return manage_command(args, log_path)


def stop(process: subprocess.Popen) -> None:
    from tests.support.processes import stop_process

    stop_process(process)


@contextlib.contextmanager
def gunicorn(workdir: Path, app: str = "videomp3.wsgi", workers: int | None = 1, **env_overrides: str):
    """`app` under docker/gunicorn.conf.py (the production settings) on 127.0.0.1.

    workers None: the config's default (WEB_CONCURRENCY, 2 as in k8s/base/web.yaml). Logs (stderr, where the
    app logs go) are written to `<workdir>/gunicorn-<port>.log`. Yields (base URL, pid of the master, log path).
    """
    from tests.support.processes import role_env, stop_process
    from tests.support.services import free_port, wait_for_port

    port = free_port()
    log_path = workdir / f"gunicorn-{port}.log"
    overrides = dict(env_overrides)
    if workers is not None:
        overrides["WEB_CONCURRENCY"] = str(workers)
    env = role_env(**overrides)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
            + ["--access-logfile", "/dev/null", app],
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
        yield f"http://127.0.0.1:{port}", process.pid, log_path
    finally:
        stop_process(process)


def gunicorn_worker(master_pid: int) -> int:
    """The pid of the only worker of a one-worker gunicorn."""
    (worker,) = children(master_pid)
    return worker


def fresh_authorization() -> str:
    """A JWT for a user made for this one upload, so dedup (same owner, content and options) cannot skip it."""
    return authorization(f"bench-{uuid.uuid4().hex[:12]}@example.com")


def authorization(email: str = "bench@example.com") -> str:
    """A fresh JWT access token (Authorization header value) for a bench user, made in-process."""
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    user, _ = get_user_model().objects.get_or_create(email=email)
    return f"Bearer {AccessToken.for_user(user)}"


def upload(base_url: str, path: Path, authorization: str, *, target: str = "/api/jobs/", expect: int = 202) -> dict:
    """POST the file as multipart (only the `file` field), streamed from disk in 1 MiB pieces; returns the JSON."""
    import http.client
    import urllib.parse

    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=900)
    try:
        connection.putrequest("POST", target)
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
    if response.status != expect:
        raise RuntimeError(f"POST {target} answered {response.status}: {body[:500]!r}")
    return json.loads(body)


def wait_for_job(job_id, timeout: float, interval: float = 0.02) -> str | None:
    """Poll the job row (every 20 ms by default) until it reads done or failed; returns that status, or None."""
    from uploads.models import Job

    deadline = time.monotonic() + timeout
    while True:
        status = Job.objects.filter(id=job_id, status__in=["done", "failed"]).values_list("status", flat=True).first()
        if status or time.monotonic() > deadline:
            return status
        time.sleep(interval)


def stored_upload(path: Path, email: str | None = None):
    """A queued Job made in-process by the web role's own code (uploads.services.intake.job_create: probe, audio
    extraction, cover frame, GridFS) from a local file, not published to the queue; for scripts that
    measure the converter and need a job as an upload leaves it."""
    from unittest import mock

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import UploadedFile

    from uploads.services import intake

    class LocalUpload(UploadedFile):
        def temporary_file_path(self) -> str:
            return str(path)

    user, _ = get_user_model().objects.get_or_create(email=email or f"bench-{uuid.uuid4().hex[:12]}@example.com")
    with open(path, "rb") as fh, mock.patch.object(intake, "job_queue_on_commit"):
        upload_file = LocalUpload(fh, name=path.name, content_type="application/octet-stream", size=path.stat().st_size)
        return intake.job_create(owner=user, upload=upload_file)


# What a copied job shares with its template: the stored audio source and cover, and what probing found.
_COPIED_FIELDS = (
    "owner",
    "original_filename",
    "size",
    "content_sha256",
    "container",
    "audio_codec",
    "video_codec",
    "duration",
    "audio_streams",
    "source_tags",
    "options",
    "options_key",
    "source_file_id",
    "source_size",
    "cover_file_id",
    "cover_size",
)


def job_like(template):
    """Another queued Job converting the same stored audio source and cover as `template` (not published)."""
    from uploads.models import Job

    return Job.objects.create(status=Job.Status.QUEUED, **{name: getattr(template, name) for name in _COPIED_FIELDS})


# --- the roles' per-phase timings -------------------------------------------------------------------

_TIMINGS_RE = re.compile(r"(upload|conversion) timings job=([0-9a-f-]+) ((?:\w+=[0-9.]+ ?)+)")


def phase_timings(log_path: Path, kind: str, job_id, timeout: float = 10.0) -> dict[str, float]:
    """The `<kind> timings job=<id> phase=seconds …` line a role logged for this job, as a dict.

    kind: "upload" (web role) or "conversion" (converter, logged right after the job is done)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            for match in _TIMINGS_RE.finditer(log_path.read_text(errors="replace")):
                if match[1] == kind and match[2] == str(job_id):
                    return {name: float(value) for name, value in re.findall(r"(\w+)=([0-9.]+)", match[3])}
        if time.monotonic() > deadline:
            raise RuntimeError(f"no `{kind} timings job={job_id}` line in {log_path}")
        time.sleep(0.05)


# --- processes' memory and CPU ------------------------------------------------------------------


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
    """Peak tree_rss(pid) (the process and its children, e.g. ffmpeg) while the `with` block runs, every 50 ms."""

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


def busy_cpu_seconds(pids: list[int] | None = None, *, reaped_children: bool = False) -> float:
    """CPU seconds used so far: by the whole machine (pids None, from /proc/stat) or by these processes
    (with reaped_children, also by their children that have exited, e.g. each job's ffmpeg)."""
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
            if reaped_children:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
        except OSError:
            continue
    return total / ticks


def secantus_pids(workdir: Path) -> list[int]:
    """The SecantusDB server process(es) of this run (found by their storage path on the command line)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(workdir / "secantus").encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


# --- results ---------------------------------------------------------------------------------


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
        "load_average": load_average(),
    }


def load_average() -> str:
    """/proc/loadavg's 1, 5 and 15 minute figures: on 2 cores, above 2 means other work competed for them."""
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def entry(value, unit: str, target: str = "reported", met: bool = True) -> dict:
    return {"value": value, "unit": unit, "target": target, "met": met}


def record(results: dict) -> None:
    """Merge these results into bench/results/latest.json (other scripts' entries are kept); not in smoke runs."""
    if smoke():
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(results)
    current["machine"] = machine()
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def smoke() -> bool:
    """BENCH_SMOKE=1: tiny inputs and one run each, so CI proves the scripts still run (no figures)."""
    return os.environ.get("BENCH_SMOKE") == "1"
