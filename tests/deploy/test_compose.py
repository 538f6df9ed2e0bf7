"""compose.yaml: it parses, runs the same roles as Kubernetes, and sets only settings the app reads."""

import pytest
import yaml

from tests.deploy.conftest import APP_ROLES, REPO, settings_env_reads

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
# Variables read by the image's gunicorn configuration or healthcheck, not by settings.py.
RUNTIME_ONLY = {"PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "FORWARDED_ALLOW_IPS"}


def test_compose_runs_every_role_beside_the_services_it_needs():
    roles = {name: service["command"] for name, service in SERVICES.items() if "build" in service}
    assert roles == {role: [role] for role in APP_ROLES}
    assert {"mariadb", "mongodb", "rabbitmq", "mailpit"} <= set(SERVICES)
    assert "management" in SERVICES["rabbitmq"]["image"], "RabbitMQ with its management UI"
    assert SERVICES["converter"]["deploy"]["replicas"] == 2


@pytest.mark.parametrize("role", ["web", "converter", "notifier"])
def test_long_running_roles_start_after_migrate_and_healthy_stores(role):
    depends = SERVICES[role]["depends_on"]
    assert depends["migrate"] == {"condition": "service_completed_successfully"}
    for store in ("mariadb", "mongodb", "rabbitmq"):
        assert depends[store] == {"condition": "service_healthy"}
        assert "healthcheck" in SERVICES[store]


def test_every_app_variable_is_a_setting_the_app_reads():
    for role in APP_ROLES:
        environment = SERVICES[role]["environment"]
        unknown = set(environment) - settings_env_reads() - RUNTIME_ONLY
        assert not unknown, f"{role}: videomp3/settings.py reads no {sorted(unknown)}"
        assert environment["DEBUG"] == "0"
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?"), (
            "no default secret: compose refuses to start without one"
        )


def test_app_containers_are_read_only_with_their_own_tmp():
    for role in APP_ROLES:
        service = SERVICES[role]
        assert service["read_only"] is True and "/tmp" in service["volumes"], role
    assert SERVICES["web"]["ports"] == ["127.0.0.1:8000:8000"]
    assert SERVICES["converter"]["stop_grace_period"] == "2m"
