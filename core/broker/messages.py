"""The message contract both transports share: queue names and arguments, the body's JSON, the errors.

Messages are JSON `{"v": 1, "job_id": "<uuid>"}` plus optional fields (DESIGN.md: message contract).
"""

import json
from collections.abc import Callable

from django.conf import settings

VIDEO = "video"
MP3 = "mp3"
QUEUES = (VIDEO, MP3)
MESSAGE_VERSION = 1

# RabbitMQ dead-letters a message once it has been delivered this many times. On 3.10 both a
# redelivery after a lost consumer and a basic_nack(requeue=True) count, so a message that makes
# its handler fail every time ends in `<name>.dead` instead of looping forever.
DELIVERY_LIMIT = 20

UNREACHABLE = "The message broker (RabbitMQ) is unreachable; try again in a minute."

# A handler gets the message and `acknowledge`: calling it acks the message before the handler returns
# (for work the database has taken over); otherwise the message is acked when the handler returns.
Handler = Callable[[dict, Callable[[], None]], object]


class BrokerError(Exception):
    """The broker is unreachable or refused a message; str() is a sentence."""


class RejectMessage(Exception):
    """Raised by a handler for a message that can never succeed (e.g. its job does not exist).

    The message goes to the dead-letter queue at once instead of being retried.
    """


def queue_name(name: str) -> str:
    return settings.QUEUE_PREFIX + name


def dead_letter_queue_name(name: str) -> str:
    return queue_name(f"{name}.dead")


def queue_arguments(name: str) -> dict:
    """The work queues' arguments, in this one place: RabbitMQ refuses to redeclare a queue with other ones."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",  # the default exchange routes by queue name...
        "x-dead-letter-routing-key": dead_letter_queue_name(name),  # ...to `<name>.dead`
        "x-delivery-limit": DELIVERY_LIMIT,
    }


# Dead-letter queues only hold messages for a person to inspect: no dead-lettering of their own.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


def encode(job_id: str, **extra) -> bytes:
    return json.dumps({"v": MESSAGE_VERSION, "job_id": str(job_id), **extra}).encode()


def decode(body: bytes) -> dict:
    """The message, or ValueError for a body no consumer can act on."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError(f"not a JSON object: {type(message).__name__}")
    version = message.get("v")
    if type(version) is not int or version != MESSAGE_VERSION:  # `true == 1` in Python, not here
        raise ValueError(f"unknown message version {version!r}")
    if not isinstance(message.get("job_id"), str) or not message["job_id"]:
        raise ValueError("no job_id")
    return message
