"""Helpers shared by the pipeline tests: the environment the roles share, and waiting on jobs."""

import email
import time
from pathlib import Path

from django.conf import settings

from uploads.models import Job


def shared_service_env(email_dir: Path) -> dict[str, str]:
    """The settings that the test process and the role processes must agree on."""
    return {
        "MONGODB_URI": settings.MONGODB_URI,
        "MONGODB_DB": settings.MONGODB_DB,
        "AMQP_URL": settings.AMQP_URL,
        "QUEUE_PREFIX": settings.QUEUE_PREFIX,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(email_dir),
        "PUBLIC_URL": "http://videomp3.test",
        "DEBUG": "1",
    }


def wait_for_job(job_id, predicate, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = Job.objects.get(id=job_id)
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} did not reach the expected state in {timeout}s; it is {job.status} ({job.error})"
            )
        time.sleep(0.2)


def read_emails(email_dir: Path) -> list[email.message.Message]:
    if not email_dir.exists():
        return []
    messages = []
    for path in sorted(email_dir.glob("*.log")):
        # The file backend appends messages separated by a line of dashes.
        for chunk in path.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.strip()))
    return messages


def email_text(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def stored_file_count(bucket: str) -> int:
    """Files and chunks in a GridFS bucket, read with pymongo directly rather than through the code under test."""
    import pymongo

    with pymongo.MongoClient(settings.MONGODB_URI) as client:
        database = client[settings.MONGODB_DB]
        return database[f"{bucket}.files"].count_documents({}) + database[f"{bucket}.chunks"].count_documents({})


def stored_files_and_orphan_chunks(bucket: str) -> tuple[int, int]:
    """(files in the bucket, chunks that belong to no file), read with pymongo directly."""
    import pymongo

    with pymongo.MongoClient(settings.MONGODB_URI) as client:
        database = client[settings.MONGODB_DB]
        file_ids = set(database[f"{bucket}.files"].distinct("_id"))
        orphans = database[f"{bucket}.chunks"].count_documents({"files_id": {"$nin": list(file_ids)}})
        return len(file_ids), orphans
