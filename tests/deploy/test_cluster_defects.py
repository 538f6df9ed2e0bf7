"""What a real cluster would break in the rendered overlays (issue #18): converter scaling, memory,
the migrate Job, network policies, the public ingress path, secrets, topology spread, the README's steps."""

import pytest
from django.conf import settings
from django.db import connection

from tests.deploy.conftest import OVERLAYS, by_kind, generated, named, quantity
from tests.factories import job_create
from uploads.models import Job

# What the converter's Python process (Django, pika, pymongo) needs beside its ffmpeg child.
CONVERTER_WORKER_MEMORY = 256 * 2**20


def _pod(objects: list[dict], name: str) -> dict:
    return named(objects, "Deployment", name)["spec"]["template"]["spec"]


def _config(objects: list[dict]) -> dict[str, str]:
    return generated(objects, "ConfigMap", "videomp3-config")["data"]


# --- 1, 2: converters scale on the jobs the database holds ---------------------------------------


def _converter_trigger(objects: list[dict]) -> dict:
    [trigger] = named(objects, "ScaledObject", "videomp3-converter")["spec"]["triggers"]
    return trigger


def test_no_converter_scaling_counts_the_amqp_queue(rendered):
    """The sweeper's re-publishes and the ack at claim make the queue length meaningless for scaling."""
    for scaled_object in by_kind(rendered["production"], "ScaledObject"):
        for trigger in scaled_object["spec"]["triggers"]:
            assert trigger["type"] != "rabbitmq", f"{scaled_object['metadata']['name']} scales on a queue length"
    assert not [item for item in by_kind(rendered["production"], "TriggerAuthentication") if "rabbitmq" in str(item)]


@pytest.mark.django_db
def test_the_converter_trigger_counts_jobs_queued_or_converting_in_the_real_database(rendered):
    trigger = _converter_trigger(rendered["production"])
    assert trigger["type"] == "mysql"
    for status, count in {"queued": 3, "converting": 2, "done": 4, "failed": 1, "cancelled": 1, "expired": 1}.items():
        for _ in range(count):
            job_create(status=status)
    with connection.cursor() as cursor:
        cursor.execute(trigger["metadata"]["query"])
        [(value,)] = cursor.fetchall()
    assert int(value) == 5 == Job.objects.filter(status__in=["queued", "converting"]).count()
    # One converter per job waiting or under way: a busy converter is counted, so it is not scaled in.
    assert float(trigger["metadata"]["queryValue"]) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_converter_rollout_starts_the_new_pod_before_stopping_an_old_one(rendered, overlay):
    strategy = named(rendered[overlay], "Deployment", "videomp3-converter")["spec"].get("strategy")
    assert strategy and strategy["type"] == "RollingUpdate", "the converter Deployment needs an explicit strategy"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0 and strategy["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_converter_finishing_a_restarted_job_gets_far_more_than_the_hand_back_grace(rendered, overlay):
    """A job handed back once is finished by the stopping pod (leases.MAX_HANDBACKS): the grace is long."""
    from uploads.services import leases

    assert leases.MAX_HANDBACKS == 1
    grace = _pod(rendered[overlay], "videomp3-converter")["terminationGracePeriodSeconds"]
    hour_of_audio = settings.FFMPEG_TIME_LIMIT_BASE + 0.25 * 3600  # encoding runs far faster than its time limit
    assert grace >= hour_of_audio


# --- 6: the converter's memory limit is above ffmpeg's own ------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_converter_memory_limit_leaves_room_for_ffmpegs_own_limit_and_the_worker(rendered, overlay):
    objects = rendered[overlay]
    configured = int(_config(objects).get("FFMPEG_MEMORY_LIMIT_MB", settings.FFMPEG_MEMORY_LIMIT_MB))
    [container] = _pod(objects, "videomp3-converter")["containers"]
    limit = quantity(container["resources"]["limits"]["memory"])
    assert limit >= configured * 2**20 + CONVERTER_WORKER_MEMORY, (
        f"the OOM killer would end the pod ({limit / 2**20:.0f} MiB) before ffmpeg reaches its own "
        f"{configured} MiB limit and fails the job with a sentence"
    )
