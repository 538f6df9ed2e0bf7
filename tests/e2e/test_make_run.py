"""`make run` on the embedded defaults: SQLite, SecantusDB in-process, the in-process queue, file emails."""

import os
import re
import signal
import subprocess
import time

import pytest

from core.media import probe
from tests.support import http, media
from tests.support.processes import PROJECT_DIR
from tests.support.services import free_port, service_missing, wait_for_port

pytestmark = pytest.mark.e2e

# Settings that would point `make run` at the test run's services instead of its embedded defaults.
NOT_EMBEDDED = (
    "DATABASE_URL",
    "MONGODB_URI",
    "MONGODB_DB",
    "AMQP_URL",
    "QUEUE_PREFIX",
    "EMAIL_BACKEND",
    "EMAIL_FILE_PATH",
)


@pytest.fixture
def make_run(tmp_path):
    try:
        import secantus  # noqa: F401 - the embedded MongoDB
    except ImportError:
        service_missing("SecantusDB is not installed (pip install -r requirements-dev.txt)")
    port = free_port()
    env = {
        name: value for name, value in os.environ.items() if name not in NOT_EMBEDDED and not name.startswith("MAKE")
    }
    env["VAR_DIR"] = str(tmp_path / "var")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["make", "run", f"ADDR=127.0.0.1:{port}"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not wait_for_port(port, 1):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
        yield f"http://127.0.0.1:{port}", log_path, tmp_path / "var"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_make_run_converts_an_upload_end_to_end(make_run, tmp_path_factory):
    base, log_path, var_dir = make_run
    banner = log_path.read_text()
    assert f"videomp3 is running at {base}/" in banner
    email, password = re.search(r"sign in as (\S+) with password (\S+)", banner).groups()

    token = http.request("POST", f"{base}/login", headers={"Authorization": http.basic(email, password)})
    assert token.status == 200
    bearer = {"Authorization": f"Bearer {token.body.decode()}"}
    source = media.make_media(tmp_path_factory.getbasetemp() / "media-cache", "mp4_h264_aac_moov_end")
    uploaded = http.post_files(f"{base}/upload", [("file", source)], headers=bearer)
    assert uploaded.status == 200, uploaded.body
    job_url = uploaded.json()["links"]["self"]

    deadline = time.monotonic() + 60
    while (job := http.request("GET", job_url, headers=bearer).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["status"] == "done", job
    download = http.request("GET", f"{base}/download?fid={job['mp3_file_id']}", headers=bearer)
    assert download.status == 200
    mp3_path = var_dir / "downloaded.mp3"
    mp3_path.write_bytes(download.body)
    assert abs(probe.probe(mp3_path).duration - probe.media_duration(source)) < 0.2

    deadline = time.monotonic() + 20
    while not list((var_dir / "emails").glob("*.log")):
        assert time.monotonic() < deadline, "no email was written"
        time.sleep(0.3)
    # The link points where `make run` serves (ADDR), not at PUBLIC_URL's default port 8000.
    assert f"{base}/jobs/{job['id']}/" in "".join(path.read_text() for path in (var_dir / "emails").glob("*.log"))
    assert (var_dir / "videomp3.sqlite3").exists() and (var_dir / "mongodb").is_dir()
