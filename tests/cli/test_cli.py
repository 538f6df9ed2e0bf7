"""`videomp3` as a user runs it: the real console script in a subprocess against gunicorn and a converter."""

import json
import os
import shutil
import signal
import stat
import time

import jwt
import pytest

from tests.cli.conftest import video_folder
from tests.support import media
from tests.support.http import request as http_request
from tests.support.processes import gunicorn_worker_pid, wait_until
from tests.support.services import free_port
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FOLDER = {"talk.mp4": "mp4_h264_aac_moov_end", "song.mkv": "mkv_vp9_opus", "memo.wav": "wav_pcm"}


def leftovers(directory) -> list[str]:
    """Temp files a download left (an interrupted one must leave none under the MP3's name, nor any part)."""
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".part"))


def test_a_folder_converts_and_a_rerun_skips_what_is_done(signed_in, media_files, tmp_path):
    folder = video_folder(tmp_path / "videos", media_files, {**FOLDER, "silent.mp4": "mp4_no_audio"})
    (folder / "notes.txt").write_text("not a video")

    first = signed_in.run("convert", str(folder), "--jobs", "2")

    assert first.returncode == 1, first.stdout + first.stderr  # one file failed
    for name in FOLDER:
        mp3 = folder / f"{name.rsplit('.', 1)[0]}.mp3"
        assert mp3.read_bytes()[:3] == b"ID3", name  # a whole MP3, with its tags
    assert not (folder / "silent.mp3").exists() and not (folder / "notes.mp3").exists()
    assert leftovers(folder) == []
    # The summary: plain lines (stdout is a pipe), the failure in the server's own words.
    assert "3 converted, 0 reused, 0 skipped, 1 failed" in first.stdout
    assert f"failed: {folder / 'silent.mp4'}: This video has no audio track" in first.stdout
    assert Job.objects.count() == 3

    second = signed_in.run("convert", str(folder))

    assert second.returncode == 1  # the silent video is refused again
    assert "0 converted, 0 reused, 3 skipped, 1 failed" in second.stdout
    assert Job.objects.count() == 3  # nothing uploaded again

    # An MP3 deleted here is found on the server by its content (dedup): downloaded, not uploaded.
    (folder / "talk.mp3").unlink()
    third = signed_in.run("convert", str(folder / "talk.mp4"), "--json")
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert report["counts"] == {"converted": 0, "reused": 1, "skipped": 0, "failed": 0}
    (entry,) = report["files"]
    assert entry["result"] == "reused" and entry["target"] == str(folder / "talk.mp3")
    assert (folder / "talk.mp3").read_bytes()[:3] == b"ID3"
    assert Job.objects.count() == 4  # the reused job, done at once


def test_options_go_to_the_server_and_the_json_outputs_parse(signed_in, media_files, tmp_path):
    folder = video_folder(tmp_path / "in", media_files, {"a.mp4": "mp4_h264_aac_moov_end"})
    out = tmp_path / "out"

    result = signed_in.run(
        "--json", "convert", str(folder), "--out", str(out), "--preset", "podcast", "--bitrate", "96"
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["converted"] == 1 and (out / "a.mp3").exists() and not (folder / "a.mp3").exists()
    job = Job.objects.get(id=report["files"][0]["job_id"])
    assert job.options["bitrate"] == 96 and job.options["channels"] == "mono"  # the flag over the preset
    jobs = json.loads(signed_in.run("jobs", "--json").stdout)
    assert [j["id"] for j in jobs] == [str(job.id)]
    got = signed_in.run("get", str(job.id), "--out", str(tmp_path), "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["saved_to"] == str(tmp_path / "a.mp3")
    assert (tmp_path / "a.mp3").read_bytes() == (out / "a.mp3").read_bytes()
    refused = signed_in.run("convert", str(folder / "a.mp4"), "--bitrate", "100", "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "100 kb/s is not an MP3 bitrate" in refused.stderr
    removed = signed_in.run("rm", str(job.id), "--json")
    assert json.loads(removed.stdout) == [{"id": str(job.id), "deleted": True}]
    assert not Job.objects.filter(id=job.id).exists()


def test_an_expired_access_token_is_refreshed_by_itself(signed_in, stack):
    credentials_path = signed_in.credentials_path
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600
    credentials = json.loads(credentials_path.read_text())
    # The access token the server issued, expired a minute ago: same claims and key, only `exp` moved.
    from django.conf import settings

    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    claims = jwt.decode(credentials["access"], key, algorithms=["HS256"])
    claims["exp"] = int(time.time()) - 60
    expired = jwt.encode(claims, key, algorithm="HS256")
    credentials_path.write_text(json.dumps({**credentials, "access": expired}))

    result = signed_in.run("jobs", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    renewed = json.loads(credentials_path.read_text())
    assert renewed["access"] != expired and renewed["refresh"] != credentials["refresh"]  # rotated
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600


def test_ctrl_c_while_converting_stops_cleanly_and_a_rerun_follows_the_same_job(
    signed_in, stack, media_files, tmp_path
):
    folder = video_folder(tmp_path / "v", media_files, {"talk.mp4": "mp4_h264_aac_moov_end"})
    os.kill(stack.converter.pid, signal.SIGSTOP)  # the job waits in the queue while the CLI polls it
    try:
        process = signed_in.start("convert", str(folder))
        assert wait_until(lambda: Job.objects.exists(), 30)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        os.kill(stack.converter.pid, signal.SIGCONT)
    assert process.returncode == 130, stdout + stderr
    assert "Interrupted" in stderr and "again to resume" in stderr
    assert not (folder / "talk.mp3").exists() and leftovers(folder) == []

    rerun = signed_in.run("convert", str(folder))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 converted" in rerun.stdout and (folder / "talk.mp3").exists()
    assert Job.objects.count() == 1  # followed, not uploaded again


def _upload_offset(cli) -> int:
    """The server's offset of the upload the CLI keeps in its state (0 while it has none)."""
    config_dir = cli.config_home / "videomp3"
    try:
        uploads = json.loads((config_dir / "state.json").read_text()).get("uploads", {})
        access = json.loads(cli.credentials_path.read_text())["access"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    if not uploads:
        return 0
    (entry,) = uploads.values()
    head = http_request("HEAD", entry["url"], headers={"Authorization": f"Bearer {access}", "Tus-Resumable": "1.0.0"})
    return int(head.headers.get("Upload-Offset", 0))


def test_ctrl_c_mid_upload_then_a_rerun_resumes_at_the_servers_offset(signed_in, stack, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    source = media.make_raw_video(tmp_path.parent / "raw-media", seconds=20.0)  # 55 MiB: seven 8 MiB chunks
    shutil.copyfile(source, folder / "lecture.mkv")
    worker = gunicorn_worker_pid(stack.base_url)

    process = signed_in.start("convert", str(folder))
    try:
        sent = wait_until(lambda: _upload_offset(signed_in) >= 8 * 1024 * 1024, 60, interval=0.05)
        assert sent, "no chunk arrived"
        os.kill(worker, signal.SIGSTOP)  # the next PATCH hangs, as on a dead network
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        os.kill(worker, signal.SIGCONT)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stdout + stderr
    assert "again to resume" in stderr and leftovers(folder) == [] and not (folder / "lecture.mp3").exists()
    assert Job.objects.count() == 0
    resume_at = wait_until(lambda: _upload_offset(signed_in), 10)
    assert 0 < resume_at < source.stat().st_size

    rerun = signed_in.run("convert", str(folder))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resumed at" in rerun.stdout, rerun.stdout
    job = Job.objects.get()
    assert job.status == "done" and job.size == source.stat().st_size
    assert (folder / "lecture.mp3").read_bytes()[:3] == b"ID3"


def test_exit_codes_say_what_went_wrong(stack, cli, tmp_path):
    assert cli.run("jobs").returncode == 3  # not signed in
    wrong = cli.run("login", "--server", stack.base_url, stdin="nobody@example.com\nwrong\n")
    assert wrong.returncode == 3 and "email address or password is wrong" in wrong.stderr
    nowhere = cli.run("login", "--server", f"http://127.0.0.1:{free_port()}", stdin="a@example.com\npw\n")
    assert nowhere.returncode == 4 and "Cannot reach the server" in nowhere.stderr
    usage = cli.run("convert", str(tmp_path / "missing.mp4"))
    assert usage.returncode == 2 and "no such file or folder" in usage.stderr
    assert cli.run("convert").returncode == 2  # argparse: a FILE_OR_DIR is required


def test_the_clients_dependencies_stay_out_of_the_server_and_its_image():
    from tests.support.processes import PROJECT_DIR

    server_requirements = (PROJECT_DIR / "requirements.txt").read_text().lower()
    for package in ("httpx", "tuspy", "rich", "platformdirs"):
        assert package not in server_requirements
    assert "cli" in (PROJECT_DIR / ".dockerignore").read_text().split()
    assert "pip install --quiet -e cli" in (PROJECT_DIR / "Makefile").read_text()
