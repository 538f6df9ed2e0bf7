import pytest
from rest_framework.test import APIClient

from tests.factories import user_create


@pytest.fixture
def alice(mongodb, rabbitmq):
    """An API client signed in as alice; `.user` is her User."""
    user = user_create(email="alice@example.com")
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client
