"""Publishing a job's messages: the video message that queues its conversion, the mp3 message that
queues its email (a job done or failed), and traces in the dead-letter queues. A broker outage never fails the caller: the job
keeps its state in the database, and recovery publishes it later."""

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from core import broker
from uploads.models import Job

logger = logging.getLogger(__name__)


def video_message_publish(job_id, *, claimed: bool = False) -> None:
    """Publish the job's `video` message and record the broker's confirm.

    A broker outage must not fail a committed upload: the job stays queued with no
    published_at, and the sweeper publishes it once the broker is back. (`claimed`: the sweeper set
    published_at to claim this publish; it is cleared again when the publish fails.)
    """
    try:
        broker.publish(broker.VIDEO, str(job_id))
    except broker.BrokerError as exc:
        logger.warning("job %s stays queued until the broker is back: %s", job_id, exc)
        if claimed:
            Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(published_at=None)
        return
    Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(published_at=timezone.now())


def mp3_message_publish(job_id) -> None:
    try:
        broker.publish(broker.MP3, str(job_id))
    except broker.BrokerError as exc:
        logger.warning("job %s is done; its notification waits for the broker: %s", job_id, exc)
        return
    Job.objects.filter(id=job_id).update(mp3_published_at=timezone.now())


def outcome_message_publish(job_id) -> None:
    """Tell the notifier that the job failed or expired (its "failed" email, its webhooks). Nothing is
    recorded on the job: the notifier keeps that state (notifications.models), and its sweeper publishes
    again a failed job's message lost to an outage."""
    try:
        broker.publish(broker.MP3, str(job_id))
    except broker.BrokerError as exc:
        logger.warning("job %s failed or expired; its notification waits for the broker: %s", job_id, exc)


def job_outcome_on_commit(job_id) -> None:
    transaction.on_commit(partial(outcome_message_publish, job_id))


def job_queue_on_commit(job_id) -> None:
    transaction.on_commit(partial(video_message_publish, job_id))


def dead_letter_publish(queue: str, job_id, reason: str) -> None:
    """Leave a trace in the dead-letter queue for operators, beside the job's own sentence."""
    try:
        broker.publish_dead_letter(queue, str(job_id), reason=reason)
    except broker.BrokerError:
        logger.warning("could not dead-letter job %s (%s): the broker is unreachable", job_id, reason)
