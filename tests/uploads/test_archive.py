"""GET /api/jobs/archive: a stored ZIP of the caller's done MP3s, streamed from GridFS with constant memory.

The MP3s are stored directly in GridFS (their bytes do not matter to the archive), so the tests need no
conversion; the memory test runs the real web role under gunicorn and reads its RSS from /proc."""

import io
import json
import os
import uuid
import zipfile
from pathlib import Path

import pytest

from core import storage
from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from tests.support.http import request as http_request
from tests.support.pipeline import shared_service_env
from tests.support.processes import gunicorn_worker_pid, web_server
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]


def done_job(owner, name: str, content: bytes | None = None, *, mp3_file_id: str | None = None, size: int = 0) -> Job:
    """A done job whose MP3 is `content`, stored under its own id (or sharing mp3_file_id, as dedup does)."""
    job = job_create(owner=owner, original_filename=name, status=Job.Status.DONE)
    if mp3_file_id is None:
        mp3_file_id = f"mp3-{job.id}-1"
        storage.save_stream(
            storage.MP3S, io.BytesIO(content), filename=job.mp3_filename, content_type="audio/mpeg", file_id=mp3_file_id
        )
        size = len(content)
    Job.objects.filter(id=job.id).update(mp3_file_id=mp3_file_id, mp3_size=size)
    job.refresh_from_db()
    return job


def archive_of(client, ids) -> tuple[int, bytes, object]:
    response = client.get("/api/jobs/archive", {"ids": ",".join(str(job_id) for job_id in ids)})
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body, response


def test_fifty_mp3s_arrive_byte_for_byte_under_unique_names(alice):
    names = ["talk.mp4", "Talk.mkv", "talk.mov", "talk (2).webm", "interview.mp4"] + [
        f"clip {number}.mp4" for number in range(45)
    ]
    jobs = [done_job(alice.user, name, os.urandom(1000 + 997 * number)) for number, name in enumerate(names)]

    status, body, response = archive_of(alice, [job.id for job in jobs])

    assert status == 200, body[:500]
    assert response["Content-Type"] == "application/zip"
    assert int(response["Content-Length"]) == len(body)  # known before the first byte
    assert "videomp3-mp3s.zip" in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [info.compress_type for info in infos] == [zipfile.ZIP_STORED] * 50
        assert [info.filename for info in infos[:5]] == [
            "talk.mp3",
            "Talk (2).mp3",  # the same name but for case: unpacks whole on macOS and Windows too
            "talk (3).mp3",
            "talk (2) (2).mp3",  # its own name was taken by then
            "interview.mp3",
        ]
        assert len({info.filename.casefold() for info in infos}) == 50
        for job, info in zip(jobs, infos, strict=True):
            stored = b"".join(storage.iter_range(storage.MP3S, job.mp3_file_id))
            assert archive.read(info) == stored, info.filename


def test_post_takes_the_ids_in_a_json_body(alice):
    jobs = [done_job(alice.user, f"a{number}.mp4", os.urandom(5000)) for number in range(3)]
    response = alice.post("/api/jobs/archive", {"ids": [str(job.id) for job in jobs]}, format="json")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert archive.namelist() == ["a0.mp3", "a1.mp3", "a2.mp3"]


def test_another_users_ids_are_unknown_and_nothing_is_streamed(alice):
    bob = user_create(email="bob@example.com")
    bobs = done_job(bob, "secret.mp4", b"bob's audio")
    mine = done_job(alice.user, "mine.mp4", b"alice's audio")
    waiting = job_create(owner=alice.user, original_filename="later.mp4")
    nobody = uuid.uuid4()

    status, body, response = archive_of(alice, [mine.id, bobs.id, waiting.id, nobody])

    assert status == 400 and response["Content-Type"] == "application/json"
    refusal = json.loads(body)
    assert refusal["code"] == "not_archivable"
    assert refusal["unknown"] == [str(bobs.id), str(nobody)]  # bob's named exactly as an id no job has
    assert refusal["not_done"] == [str(waiting.id)]
    assert str(bobs.id) in refusal["detail"] and str(waiting.id) in refusal["detail"]
    assert "bob" not in body.decode() and "another user" not in refusal["detail"].lower()
    assert b"PK" not in body


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "missing_ids"),
        ("ids=,,", "missing_ids"),
        ("ids=not-a-uuid,42", "malformed_id"),
        ("ids=" + ",".join(str(uuid.uuid4()) for _ in range(501)), "too_many_ids"),
    ],
    ids=["none", "empty", "malformed", "501"],
)
def test_malformed_requests_get_a_sentence(alice, query, code):
    response = alice.get(f"/api/jobs/archive?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["detail"].endswith(".")


def test_the_same_id_twice_is_one_entry(alice):
    job = done_job(alice.user, "once.mp4", b"x" * 100)
    status, body, _ = archive_of(alice, [job.id, job.id])
    assert status == 200
    assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["once.mp3"]


def _rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


MIB = 1024 * 1024


def test_the_web_roles_memory_stays_flat_while_a_large_archive_streams(mongodb, rabbitmq, tmp_path):
    user = user_create(email="big@example.com")
    # One 48 MiB MP3 shared by 10 done jobs (as dedup shares them): a 480 MiB archive from 48 MiB stored.
    mp3_file_id = f"mp3-{uuid.uuid4()}-1"
    block = os.urandom(MIB)
    writer = storage.open_writer(storage.MP3S, filename="big.mp3", content_type="audio/mpeg", file_id=mp3_file_id)
    for _ in range(48):
        writer.write(block)
    size = writer.close().size
    jobs = [done_job(user, f"long {n}.mp4", mp3_file_id=mp3_file_id, size=size) for n in range(10)]
    small = done_job(user, "small.mp4", os.urandom(300_000))

    with web_server(tmp_path / "web.log", **shared_service_env(tmp_path / "emails")) as base_url:
        login = http_request(
            "POST",
            f"{base_url}/api/auth/token/",
            body=json.dumps({"email": "big@example.com", "password": DEFAULT_PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        auth = {"Authorization": f"Bearer {login.json()['access']}"}
        worker = gunicorn_worker_pid(base_url)
        # A first, small archive loads what the code path imports and opens, so the baseline is a warm process.
        warm = http_request("GET", f"{base_url}/api/jobs/archive?ids={small.id},{jobs[0].id}", headers=auth)
        assert warm.status == 200
        baseline = _rss_bytes(worker)

        import urllib.request

        ids = ",".join(str(job.id) for job in jobs)
        req = urllib.request.Request(f"{base_url}/api/jobs/archive?ids={ids}", headers=auth)
        received, peak, entries = 0, baseline, None
        with urllib.request.urlopen(req, timeout=120) as response:
            total = int(response.headers["Content-Length"])
            spool = tmp_path / "archive.zip"
            with open(spool, "wb") as out:
                while chunk := response.read(MIB):
                    out.write(chunk)
                    received += len(chunk)
                    if received % (16 * MIB) < MIB:
                        peak = max(peak, _rss_bytes(worker))
        assert received == total > 10 * size
        with zipfile.ZipFile(spool) as archive:
            entries = archive.infolist()
            assert [info.file_size for info in entries] == [size] * 10
            assert archive.read(entries[-1])[:MIB] == block
    growth = peak - baseline
    # Flat: the process holds a read batch or two, never the archive (480 MiB) nor one MP3 (48 MiB).
    assert growth < 24 * MIB, f"RSS grew by {growth / MIB:.1f} MiB while {received / MIB:.0f} MiB streamed"
