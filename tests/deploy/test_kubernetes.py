"""The kustomize tree: it renders, every object is valid Kubernetes, and it runs the app the way the app expects."""

import re
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from django.conf import settings

from core.media import ffmpeg
from tests.deploy.conftest import (
    APP_ROLES,
    K8S,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    REPO,
    by_kind,
    generated,
    migrate_job,
    named,
    quantity,
    settings_env_reads,
)
from tests.support.services import service_missing

try:
    import kubernetes_validate
except ImportError:  # requirements-deploy.txt not installed
    kubernetes_validate = None


@pytest.fixture
def validator():
    if kubernetes_validate is None:
        service_missing("kubernetes-validate is not installed (pip install -r requirements-deploy.txt)")
    return kubernetes_validate


DEPLOYMENT_ROLES = {"videomp3-web": "web", "videomp3-converter": "converter", "videomp3-notifier": "notifier"}
WORKER_DEPLOYMENTS = ("videomp3-converter", "videomp3-notifier")
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
DEFAULT_MAX_UPLOAD_SIZE = 2 * 1024**3


def app_pod_specs(objects: list[dict]) -> dict[str, dict]:
    """The pod spec of each videomp3 Deployment and of the migrate Job, by object name."""
    specs = {name: named(objects, "Deployment", name)["spec"]["template"]["spec"] for name in DEPLOYMENT_ROLES}
    specs["videomp3-migrate"] = migrate_job(objects)["spec"]["template"]["spec"]
    return specs


def main_container(pod_spec: dict) -> dict:
    assert len(pod_spec["containers"]) == 1, "each videomp3 pod runs one container: its role"
    return pod_spec["containers"][0]


def config_data(objects: list[dict]) -> dict[str, str]:
    return generated(objects, "ConfigMap", "videomp3-config")["data"]


def max_upload_size(objects: list[dict]) -> int:
    return int(config_data(objects).get("MAX_UPLOAD_SIZE", DEFAULT_MAX_UPLOAD_SIZE))


# --- rendering and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_the_app_roles(rendered, overlay):
    objects = rendered[overlay]
    assert set(DEPLOYMENT_ROLES) <= {item["metadata"]["name"] for item in by_kind(objects, "Deployment")}
    migrate_job(objects)
    assert {item["metadata"].get("namespace") for item in objects if item["kind"] != "Namespace"} == {"videomp3"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", [*OVERLAYS, "base"])
def test_every_rendered_object_validates_strictly_against_the_kubernetes_schema(validator, rendered, target, version):
    failures = []
    for item in rendered[target]:
        if item["kind"] in KEDA_KINDS:
            continue  # no schema in kubernetes-validate: checked by the KEDA tests below
        try:
            validator.validate(item, version, strict=True)
        except validator.ValidationError as exc:
            failures.append(f"{item['kind']}/{item['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except validator.SchemaNotFoundError:
            failures.append(
                f"{item['kind']}/{item['metadata']['name']}: no Kubernetes {version} schema for {item['apiVersion']}"
            )
    assert not failures, "\n".join(failures)


def test_the_secret_example_is_valid_and_clearly_a_placeholder(validator):
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    validator.validate(example, KUBERNETES_VERSIONS[0], strict=True)
    assert example["metadata"]["name"] == "videomp3-secrets"
    assert all("REPLACE-ME" in value for value in example["stringData"].values())
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in base["resources"], "the placeholder must never be applied"


def test_kustomizations_use_labels_not_the_deprecated_common_labels():
    for path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        assert "commonLabels" not in kustomization, path
    assert yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["labels"]


# --- the app's pods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_app_pod_is_non_root_with_a_read_only_root_and_bounded_resources(rendered, overlay):
    for name, pod in app_pod_specs(rendered[overlay]).items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where} {bound}"
            assert quantity(container["resources"]["requests"]["memory"]) <= quantity(
                container["resources"]["limits"]["memory"]
            )
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_temp_space_fits_the_largest_upload_where_uploads_and_conversions_are_spooled(rendered, overlay):
    objects = rendered[overlay]
    config = config_data(objects)
    assert config["FILE_UPLOAD_TEMP_DIR"] == "/tmp" and config["CONVERSION_TEMP_DIR"] == "/tmp"
    for name in ("videomp3-web", "videomp3-converter"):
        pod = named(objects, "Deployment", name)["spec"]["template"]["spec"]
        tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
        size_limit = quantity(tmp["emptyDir"]["sizeLimit"])
        assert size_limit >= max_upload_size(objects) * 2, (
            f"{name}: /tmp must hold an upload of MAX_UPLOAD_SIZE and more"
        )
        storage_limit = quantity(main_container(pod)["resources"]["limits"]["ephemeral-storage"])
        assert storage_limit >= size_limit, f"{name}: the ephemeral-storage limit must cover the emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_runs_its_role_through_the_image_entrypoint(rendered, overlay):
    images = set()
    for name, pod in app_pod_specs(rendered[overlay]).items():
        role = DEPLOYMENT_ROLES.get(name, "migrate")
        container = main_container(pod)
        assert container["args"] == [role], name
        assert "command" not in container, f"{name}: the image's ENTRYPOINT picks the command from the role"
        images.add(container["image"])
        for init in pod.get("initContainers", []):
            assert init["args"][0] == "wait-for-migrations" and init["image"] == container["image"]
    assert len(images) == 1, f"one image for every role, found {images}"
    assert {*DEPLOYMENT_ROLES.values(), "migrate"} == set(APP_ROLES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_startup_liveness_and_readiness_probes(rendered, overlay):
    for name in DEPLOYMENT_ROLES:
        container = main_container(named(rendered[overlay], "Deployment", name)["spec"]["template"]["spec"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in container, f"{name} has no {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_probes_reach_the_health_endpoints_over_http_on_the_pod_port(rendered, overlay):
    container = main_container(named(rendered[overlay], "Deployment", "videomp3-web")["spec"]["template"]["spec"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    paths = {}
    for probe in ("startupProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in ("http", 8000) and get.get("scheme", "HTTP") == "HTTP"
        assert "host" not in get and "httpHeaders" not in get, "the probe must work with the pod IP as Host"
        paths[probe] = get["path"]
    assert paths == {"startupProbe": "/healthz", "readinessProbe": "/readyz"}
    from videomp3 import health

    assert set(health.DIRECT_VIEWS) >= {"/healthz", "/readyz"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_probes_check_the_heartbeat_with_the_image_healthcheck(rendered, overlay):
    # Without WORKER_HEARTBEAT_FILE a worker beats nowhere and its liveness probe would kill it.
    heartbeat = config_data(rendered[overlay])["WORKER_HEARTBEAT_FILE"]
    assert heartbeat.startswith("/tmp/"), "the heartbeat must be on the writable /tmp emptyDir"
    for name in WORKER_DEPLOYMENTS:
        container = main_container(named(rendered[overlay], "Deployment", name)["spec"]["template"]["spec"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command == ["python", "/app/docker/entrypoint.py", "healthcheck", DEPLOYMENT_ROLES[name]], (
                f"{name} {probe}"
            )
        liveness = container["livenessProbe"]
        # Beats come every 30 s at most: a probe period of 30 s and a few failures tolerate a late one.
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    assert (REPO / "docker" / "entrypoint.py").is_file()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_periods_cover_each_roles_shutdown(rendered, overlay):
    objects = rendered[overlay]
    converter = named(objects, "Deployment", "videomp3-converter")["spec"]["template"]["spec"]
    # The job under way gets SHUTDOWN_GRACE_SECONDS to finish, then ffmpeg its own grace to stop;
    # a GridFS transfer of a 2 GiB file under way takes up to a minute more.
    shutdown_grace = int(
        config_data(objects).get("SHUTDOWN_GRACE_SECONDS", getattr(settings, "SHUTDOWN_GRACE_SECONDS", 0))
    )
    assert converter["terminationGracePeriodSeconds"] >= shutdown_grace + ffmpeg.TERMINATE_GRACE + 60
    web = named(objects, "Deployment", "videomp3-web")["spec"]["template"]["spec"]
    gunicorn_config = {}
    exec((REPO / "docker" / "gunicorn.conf.py").read_text(), gunicorn_config)  # noqa: S102 - our own config file
    pre_stop = int(main_container(web)["lifecycle"]["preStop"]["exec"]["command"][1])
    assert web["terminationGracePeriodSeconds"] > gunicorn_config["graceful_timeout"] + pre_stop


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_that_selects_its_pods(rendered, overlay):
    objects = rendered[overlay]
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name in DEPLOYMENT_ROLES:
        labels = named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{name} needs one PodDisruptionBudget"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_references_resolve(rendered, overlay):
    objects = rendered[overlay]
    config_name = generated(objects, "ConfigMap", "videomp3-config")["metadata"]["name"]
    secret_names = {item["metadata"]["name"] for item in by_kind(objects, "Secret")}
    for name, pod in app_pod_specs(objects).items():
        if name != "videomp3-migrate":  # the Job reads no generated ConfigMap (k8s/base/migrate.yaml)
            for container in pod.get("initContainers", []) + pod["containers"]:
                assert container["envFrom"] == [{"configMapRef": {"name": config_name}}], name
        [secret] = [volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume]
        if overlay == "production":
            assert secret == "videomp3-secrets", "production's Secret is created out of band under this name"
        else:
            assert secret in secret_names, f"{name}: Secret {secret} is not in the overlay"


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_key_is_a_setting_the_app_reads(rendered, overlay):
    unknown = set(config_data(rendered[overlay])) - settings_env_reads()
    assert not unknown, f"videomp3/settings.py reads no environment variable named {sorted(unknown)}"


def test_every_secret_key_is_a_setting_the_app_reads(rendered):
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    minikube = generated(rendered["minikube"], "Secret", "videomp3-secrets")
    unknown = (set(example["stringData"]) | set(minikube["data"])) - settings_env_reads()
    assert not unknown, (
        f"videomp3/settings.py reads no environment variable named {sorted(unknown)} (see DEPLOY_NOTES.md)"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_production_settings_are_on(rendered, overlay):
    config = config_data(rendered[overlay])
    assert config["DEBUG"] == "0"
    assert config["ALLOWED_HOSTS"] and "*" not in config["ALLOWED_HOSTS"]


def test_production_redirects_to_https_behind_the_ingress_with_hsts(rendered):
    config = config_data(rendered["production"])
    assert config["SECURE_SSL_REDIRECT"] == "1" and config["TRUST_X_FORWARDED_PROTO"] == "1"
    assert int(config["SECURE_HSTS_SECONDS"]) >= 31536000


def test_minikube_urls_match_the_infra_passwords_and_services(rendered):
    import base64

    objects = rendered["minikube"]
    decode = lambda secret: {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}  # noqa: E731
    app = decode(generated(objects, "Secret", "videomp3-secrets"))
    infra = decode(generated(objects, "Secret", "videomp3-infra"))
    services = {
        item["metadata"]["name"]: {p["port"] for p in item["spec"]["ports"]} for item in by_kind(objects, "Service")
    }
    for key, password in (
        ("DATABASE_URL", "MARIADB_PASSWORD"),
        ("MONGODB_URI", "MONGODB_PASSWORD"),
        ("AMQP_URL", "RABBITMQ_PASSWORD"),
    ):
        url = urlsplit(app[key])
        assert url.password == infra[password], key
        assert url.port in services.get(url.hostname, set()), (
            f"{key} points at {url.hostname}:{url.port}, which no Service offers"
        )
    assert (
        len(app["SECRET_KEY"]) >= 32
        and len(app["JWT_SIGNING_KEY"]) >= 32
        and app["SECRET_KEY"] != app["JWT_SIGNING_KEY"]
    )


# --- web: Service, Ingress, autoscaling -------------------------------------------------------------


def _nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, f"not an nginx size: {value!r}"
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2).lower()]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_lets_the_largest_upload_through_to_the_web_service(rendered, overlay):
    objects = rendered[overlay]
    ingress = named(objects, "Ingress", "videomp3-web")
    annotations = ingress["metadata"]["annotations"]
    assert _nginx_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"]) > max_upload_size(objects)
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 300
    service = named(objects, "Service", "videomp3-web")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "videomp3-web" and backend["port"]["name"] in {
        p["name"] for p in service["spec"]["ports"]
    }
    web = named(objects, "Deployment", "videomp3-web")
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    assert ingress["spec"]["rules"][0]["host"] in config_data(objects)["ALLOWED_HOSTS"].split(",")


def test_production_autoscales_web_by_hpa_and_converters_by_keda_alone(rendered):
    objects = rendered["production"]
    targets = [hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind(objects, "HorizontalPodAutoscaler")]
    assert targets == ["videomp3-web"]
    assert "replicas" not in named(objects, "Deployment", "videomp3-web")["spec"], "the HPA owns the web replica count"
    assert "replicas" not in named(objects, "Deployment", "videomp3-converter")["spec"], "KEDA owns the converter count"
    assert (
        named(objects, "Namespace", "videomp3")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )


def test_minikube_runs_one_replica_of_each_role_with_the_locally_built_image(rendered):
    objects = rendered["minikube"]
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    for name in DEPLOYMENT_ROLES:
        deployment = named(objects, "Deployment", name)
        assert deployment["spec"]["replicas"] == 1, name
        container = main_container(deployment["spec"]["template"]["spec"])
        assert container["image"] == "videomp3:dev" and container["imagePullPolicy"] == "IfNotPresent"


# --- components/infra ------------------------------------------------------------------------------


def test_infra_runs_each_datastore_as_a_statefulset_with_a_persistent_volume(rendered):
    objects = rendered["minikube"]
    statefulsets = {item["metadata"]["name"]: item for item in by_kind(objects, "StatefulSet")}
    assert set(statefulsets) == {"videomp3-mariadb", "videomp3-mongodb", "videomp3-rabbitmq"}
    for name, statefulset in statefulsets.items():
        spec = statefulset["spec"]
        assert spec["volumeClaimTemplates"], name
        assert named(objects, "Service", spec["serviceName"]), name
        container = spec["template"]["spec"]["containers"][0]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container), name
        assert {"requests", "limits"} <= set(container["resources"]), name


def test_rabbitmq_lets_a_long_conversion_keep_its_message(rendered):
    objects = rendered["minikube"]
    config = generated(objects, "ConfigMap", "videomp3-rabbitmq-config")["data"]["rabbitmq.conf"]
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)$", config, re.MULTILINE).group(1))
    assert timeout_ms >= 60 * 60 * 1000, "RabbitMQ's 30-minute default would redeliver a long conversion's message"
    pod = named(objects, "StatefulSet", "videomp3-rabbitmq")["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"].startswith("/etc/rabbitmq/conf.d/") and mount["mountPath"].endswith(".conf")
    compose_config = yaml.safe_load((REPO / "compose.yaml").read_text())["configs"]["rabbitmq-conf"]["content"]
    assert f"consumer_timeout = {timeout_ms}" in compose_config, "compose.yaml and Kubernetes must agree"


# --- components/keda --------------------------------------------------------------------------------
# kubernetes-validate has no schema for KEDA's custom resources. This schema, written from KEDA's
# documentation of ScaledObject and TriggerAuthentication (keda.sh/v1alpha1), rejects unknown fields
# in the parts this project uses; the HPA behavior inside is checked against Kubernetes' own schema.

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
_COUNT = {"type": "integer", "minimum": 0}
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": _NAME}},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": _NAME,
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": _COUNT,
                "initialCooldownPeriod": _COUNT,
                "idleReplicaCount": _COUNT,
                "minReplicaCount": _COUNT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "additionalProperties": False,
                    "properties": {"failureThreshold": _COUNT, "replicas": _COUNT},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": _NAME, "behavior": {"type": "object"}},
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": _NAME,
                                    "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                                },
                            },
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}
TRIGGER_AUTHENTICATION_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": _NAME}},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {"parameter": {"type": "string"}, "name": _NAME, "key": {"type": "string"}},
                    },
                },
            },
        },
    },
}
# The mysql scaler's documented metadata fields.
MYSQL_TRIGGER_FIELDS = {
    "query",
    "queryValue",
    "activationQueryValue",
    "connectionStringFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "dbName",
    "username",
    "passwordFromEnv",
}


def _keda_objects(objects):
    return named(objects, "ScaledObject", "videomp3-converter"), named(
        objects, "TriggerAuthentication", "videomp3-mysql"
    )


def test_keda_objects_match_their_schema(validator, rendered):
    scaled_object, authentication = _keda_objects(rendered["production"])
    jsonschema.validate(scaled_object, SCALED_OBJECT_SCHEMA)
    jsonschema.validate(authentication, TRIGGER_AUTHENTICATION_SCHEMA)
    behavior = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    as_hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "behavior-check"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1, "behavior": behavior},
    }
    validator.validate(as_hpa, KUBERNETES_VERSIONS[0], strict=True)


def test_keda_scales_the_converter_through_its_own_mysql_connection(rendered):
    objects = rendered["production"]
    scaled_object, authentication = _keda_objects(objects)
    spec = scaled_object["spec"]
    assert spec["scaleTargetRef"]["name"] == "videomp3-converter"
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    named(objects, "Deployment", spec["scaleTargetRef"]["name"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "mysql"
    metadata = trigger["metadata"]
    assert set(metadata) <= MYSQL_TRIGGER_FIELDS, set(metadata) - MYSQL_TRIGGER_FIELDS
    assert float(metadata["queryValue"]) > 0
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    [reference] = authentication["spec"]["secretTargetRef"]
    # KEDA wants a Go DSN, not the app's DATABASE_URL: a Secret of its own, which the app never reads.
    assert reference == {"parameter": "connectionString", "name": "videomp3-keda", "key": "MYSQL_CONNECTION_STRING"}


def test_keda_is_only_in_production(rendered):
    assert not [item for item in rendered["minikube"] + rendered["base"] if item["kind"] in KEDA_KINDS]


def test_the_kubernetes_tree_is_where_the_readme_says():
    for path in (
        "base/kustomization.yaml",
        "components/infra/kustomization.yaml",
        "components/keda/kustomization.yaml",
        "overlays/minikube/kustomization.yaml",
        "overlays/production/kustomization.yaml",
    ):
        assert (K8S / path).is_file(), path
    for component in ("infra", "keda"):
        assert (
            yaml.safe_load((K8S / "components" / component / "kustomization.yaml").read_text())["kind"] == "Component"
        )
    assert (K8S / "base" / "config.env").is_file()
