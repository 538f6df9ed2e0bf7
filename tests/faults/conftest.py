import pytest
from rest_framework.test import APIClient

from tests.factories import user_create
from tests.support.pipeline import shared_service_env


@pytest.fixture
def fault_env(mongodb, rabbitmq, tmp_path):
    """Short leases and a fast sweeper, so recovery after a crash takes seconds, not minutes."""
    return {
        **shared_service_env(tmp_path / "emails"),
        "JOB_LEASE_SECONDS": "3",
        "SWEEP_INTERVAL_SECONDS": "1",
        "MAX_CRASH_RECOVERIES": "50",
        "STALE_NOTIFICATION_SECONDS": "2",
        "NOTIFY_CLAIM_SECONDS": "3",
        "RETRY_BACKOFF_SECONDS": "1",
        "MAX_TRANSIENT_RETRIES": "8",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def uploader():
    client = APIClient()
    client.force_authenticate(user_create(email="crash@example.com"))
    return client
