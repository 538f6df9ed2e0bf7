"""What a real cluster would break in the rendered overlays (issue #18): converter scaling, memory,
the migrate Job, network policies, the public ingress path, secrets, topology spread, the README's steps."""

import base64
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from django.conf import settings
from django.db import connection

from tests.deploy.conftest import (
    K8S,
    OVERLAYS,
    REPO,
    by_kind,
    generated,
    migrate_job,
    named,
    quantity,
    render,
    settings_secret_reads,
)
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


WEB_WORKER_MEMORY = 384 * 2**20  # a gunicorn worker (make bench: 156 MiB at its peak, with its ffmpeg)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_memory_limit_holds_its_workers_and_their_ffmpeg_children_at_upload(rendered, overlay):
    """The web role runs ffmpeg at upload (audio extraction, the cover frame), UPLOAD_FFMPEG_CONCURRENCY
    per process, each within FFMPEG_MEMORY_LIMIT_MB as the web container sets it."""
    objects = rendered[overlay]
    [container] = _pod(objects, "videomp3-web")["containers"]
    env = {**_config(objects), **{item["name"]: item["value"] for item in container["env"] if "value" in item}}
    ffmpeg_mb = int(env.get("FFMPEG_MEMORY_LIMIT_MB", settings.FFMPEG_MEMORY_LIMIT_MB))
    children = int(env.get("UPLOAD_FFMPEG_CONCURRENCY", settings.UPLOAD_FFMPEG_CONCURRENCY))
    workers = int(env["WEB_CONCURRENCY"])
    limit = quantity(container["resources"]["limits"]["memory"])
    needed = workers * (WEB_WORKER_MEMORY + children * ffmpeg_mb * 2**20)
    assert limit >= needed, (
        f"{workers} workers with {children} ffmpeg children of {ffmpeg_mb} MiB need {needed / 2**20:.0f} MiB; "
        f"the pod's limit is {limit / 2**20:.0f} MiB, so the OOM killer would end every upload in it"
    )


# --- 7: a migrate Job per release, with deadlines ---------------------------------------------------


def _image_tag(objects: list[dict]) -> str:
    [container] = _pod(objects, "videomp3-web")["containers"]
    return container["image"].rsplit(":", 1)[1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_release_has_a_migrate_job_of_its_own_that_gives_up(rendered, overlay):
    objects = rendered[overlay]
    job = migrate_job(objects)
    # `kubectl apply -k` of a new release creates a new Job instead of changing an immutable one.
    assert job["metadata"]["name"] == f"videomp3-migrate-{_image_tag(objects)}"
    pod = job["spec"]["template"]["spec"]
    references = yaml.safe_dump(pod)
    assert "videomp3-config" not in references, "a hashed ConfigMap name would change the template within a release"
    assert 0 < job["spec"]["activeDeadlineSeconds"] <= 3600
    for name in ("videomp3-web", "videomp3-converter", "videomp3-notifier"):
        [wait] = _pod(objects, name)["initContainers"]
        command, deadline = wait["args"]
        assert command == "wait-for-migrations"
        # The pods wait as long as the Job may run, then fail visibly instead of waiting for ever.
        assert job["spec"]["activeDeadlineSeconds"] < float(deadline) <= 3600, name


def test_a_new_image_tag_in_the_overlay_renames_the_migrate_job(kubectl, tmp_path):
    """What a release changes: the tag in the production overlay (by hand or `kustomize edit set image`)."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    path = tree / "overlays" / "production" / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    [image] = kustomization["images"]
    image["newTag"] = "1.0.1"
    path.write_text(yaml.safe_dump(kustomization))
    assert migrate_job(render(kubectl, path.parent))["metadata"]["name"] == "videomp3-migrate-1.0.1"


def test_wait_for_migrations_fails_with_a_sentence_past_its_deadline(tmp_path):
    """A real init container run: the schema never becomes current (no migrate), so it gives up."""
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "videomp3.settings",
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "entrypoint.py"), "wait-for-migrations", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "migrate Job did not finish" in result.stderr and "kubectl get jobs" in result.stderr


# --- 8: the README's production steps create the namespace before anything in it -------------------


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"### {title}\n")
    ends = [end for end in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if end != -1]
    return text[start : min(ends)]


def _shell_commands(section: str) -> list[str]:
    """The commands of the section's sh code blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_the_readme_production_steps_create_the_namespace_before_its_secrets(rendered):
    commands = _shell_commands(_readme_section("Kubernetes in production"))
    assert commands, "the production steps need a sh block of the commands to run"
    namespace = named(rendered["production"], "Namespace", "videomp3")  # the apply -k below keeps it
    creates_namespace = [
        index
        for index, command in enumerate(commands)
        if command == "kubectl apply -f k8s/overlays/production/namespace.yaml"
        or command == "kubectl create namespace videomp3"
    ]
    uses_namespace = [
        index for index, command in enumerate(commands) if re.search(r"(-n|--namespace)[ =]videomp3", command)
    ]
    assert creates_namespace and uses_namespace, commands
    assert creates_namespace[0] < uses_namespace[0], "the Secret cannot be created before its namespace"
    namespace_file = yaml.safe_load((K8S / "overlays" / "production" / "namespace.yaml").read_text())
    assert namespace_file["kind"] == "Namespace" and namespace_file["metadata"]["name"] == namespace["metadata"]["name"]
    for secret in ("videomp3-secrets", "videomp3-keda"):
        assert any(f"create secret generic {secret}" in command for command in commands), secret
    assert commands[-1] == "kubectl apply -k k8s/overlays/production"
    assert "delete job" not in _readme_section("Kubernetes in production"), "no manual step per release"


# --- 10: NetworkPolicies --------------------------------------------------------------------------


def _policies(objects: list[dict]) -> list[dict]:
    return by_kind(objects, "NetworkPolicy")


def _selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return wanted.items() <= labels.items()


def _pod_labels(objects: list[dict], component: str) -> dict:
    name = f"videomp3-{component}"
    if component == "migrate":
        return migrate_job(objects)["spec"]["template"]["metadata"]["labels"]
    return named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]


def _allowed_egress_ports(objects: list[dict], labels: dict) -> set[int]:
    ports = set()
    for policy in _policies(objects):
        if _selects(policy, labels):
            for rule in policy["spec"].get("egress", []):
                ports |= {port["port"] for port in rule.get("ports", [])}
    return ports


def test_production_denies_every_flow_but_those_the_roles_need(rendered):
    objects = rendered["production"]
    policies = _policies(objects)
    deny = [
        p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert deny and not deny[0]["spec"].get("ingress") and not deny[0]["spec"].get("egress"), "default-deny"
    stores = {3306, 27017, 5672}
    for component in ("web", "converter", "notifier", "migrate"):
        ports = _allowed_egress_ports(objects, _pod_labels(objects, component))
        assert stores | {53} <= ports, component
        assert 15672 not in ports, f"{component} must not reach RabbitMQ's management port"
        smtp = {25, 465, 587} & ports
        assert bool(smtp) == (component == "notifier"), f"{component}: SMTP egress is the notifier's alone"
    # Into web: only the ingress controller, only on the pod's port.
    web_labels = _pod_labels(objects, "web")
    ingress_rules = [rule for p in policies if _selects(p, web_labels) for rule in p["spec"].get("ingress", [])]
    assert ingress_rules, "nothing may reach web"
    for rule in ingress_rules:
        assert [port["port"] for port in rule["ports"]] == [8000]
        [source] = rule["from"]
        assert source["namespaceSelector"]["matchLabels"] and source["podSelector"]["matchLabels"], rule
    for component in ("converter", "notifier", "migrate"):
        labels = _pod_labels(objects, component)
        assert not [p for p in policies if _selects(p, labels) and p["spec"].get("ingress")], component


def test_network_policies_are_a_component_that_production_includes():
    component = yaml.safe_load((K8S / "components" / "network-policies" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    production = yaml.safe_load((K8S / "overlays" / "production" / "kustomization.yaml").read_text())
    assert "../../components/network-policies" in production["components"]


# --- 11: probes and metrics are not public ------------------------------------------------------------

INTERNAL_PATHS = ("/healthz", "/readyz", "/metrics")


def _route(ingresses: list[dict], host: str, path: str) -> tuple[dict, dict] | None:
    """The Ingress and path ingress-nginx picks for host + path: the longest matching prefix."""
    best = None
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            if rule.get("host") != host:
                continue
            for entry in rule["http"]["paths"]:
                prefix = entry["path"]
                exact = entry["pathType"] == "Exact"
                matches = path == prefix if exact else path == prefix or path.startswith(prefix.rstrip("/") + "/")
                if matches and (best is None or len(prefix) > len(best[1]["path"])):
                    best = (ingress, entry)
    return best


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_public_ingress_refuses_the_health_and_metrics_paths(rendered, overlay):
    ingresses = by_kind(rendered[overlay], "Ingress")
    host = named(rendered[overlay], "Ingress", "videomp3-web")["spec"]["rules"][0]["host"]
    for path in (*INTERNAL_PATHS, "/metrics/anything"):
        ingress, _ = _route(ingresses, host, path)
        denied = ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/denylist-source-range")
        assert denied and {"0.0.0.0/0", "::/0"} <= set(denied.split(",")), f"{path} is public through the ingress"
    for path in ("/", "/api/jobs/", "/healthzz", "/metricsfoo"):
        ingress, _ = _route(ingresses, host, path)
        assert "nginx.ingress.kubernetes.io/denylist-source-range" not in ingress["metadata"].get("annotations", {}), (
            path
        )


# --- smaller gaps: secrets as files, topology spread, backups -------------------------------------------


def _secret_values(objects: list[dict], overlay: str) -> set[str]:
    if overlay == "production":
        example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
        return {value for value in example["stringData"].values() if value}
    data = generated(objects, "Secret", "videomp3-secrets")["data"]
    return {base64.b64decode(value).decode() for value in data.values() if value}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_in_any_containers_environment(rendered, overlay):
    objects = rendered[overlay]
    values = _secret_values(objects, overlay)
    config = _config(objects)
    secret_settings = settings_secret_reads() | {"DATABASE_URL", "MONGODB_URI", "AMQP_URL"}
    assert not values & set(config.values()), "a secret value in the ConfigMap"
    pods = [item["spec"]["template"]["spec"] for item in by_kind(objects, "Deployment") + by_kind(objects, "Job")]
    pods = [pod for pod in pods if pod["containers"][0]["image"].rsplit(":", 1)[0].endswith("videomp3")]
    assert len(pods) == 4
    for pod in pods:
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = container["name"]
            assert not [s for s in container.get("envFrom", []) if "secretRef" in s], f"{where}: envFrom a Secret"
            for variable in container.get("env", []):
                assert "secretKeyRef" not in variable.get("valueFrom", {}), f"{where}: {variable['name']}"
                assert variable.get("value") not in values, f"{where}: {variable['name']} holds a secret"
            mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
            assert mounts["secrets"]["readOnly"] is True, where
            files = {
                key: value
                for key, value in (
                    config if container.get("envFrom") else {e["name"]: e.get("value", "") for e in container["env"]}
                ).items()
                if key.endswith("_FILE") and key.removesuffix("_FILE") in secret_settings
            }
            assert {"DATABASE_URL_FILE", "MONGODB_URI_FILE", "AMQP_URL_FILE", "SECRET_KEY_FILE"} <= set(files), where
            for key, path in files.items():
                assert path == f"{mounts['secrets']['mountPath']}/{key.removesuffix('_FILE')}", (where, key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_file_the_pods_read_exists_in_the_secret(rendered, overlay):
    objects = rendered[overlay]
    if overlay == "production":
        keys = set(yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"])
    else:
        keys = set(generated(objects, "Secret", "videomp3-secrets")["data"])
    wanted = {key.removesuffix("_FILE") for key in _config(objects) if key.endswith("_FILE")}
    wanted &= settings_secret_reads() | {"DATABASE_URL", "MONGODB_URI", "AMQP_URL"}
    # core.env.env_secret refuses to start when NAME_FILE names a file that does not exist.
    assert wanted <= keys, f"missing from the Secret: {sorted(wanted - keys)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_and_converters_spread_over_nodes_and_zones(rendered, overlay):
    for name in ("videomp3-web", "videomp3-converter"):
        deployment = named(rendered[overlay], "Deployment", name)
        constraints = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        keys = {constraint["topologyKey"] for constraint in constraints}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items(), name
            # A single-node or single-zone cluster must still schedule the pods.
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway" and constraint["maxSkew"] >= 1


def test_the_readme_says_how_to_back_up_and_restore_both_stores():
    text = (REPO / "README.md").read_text()
    start = text.index("### Backups")
    section = text[start : text.find("\n## ", start)]
    assert "mariadb-dump --single-transaction" in section and "mongodump" in section and "mongorestore" in section
    # Dumped rows first, then files, so every file a row names is in the dump; restored files first.
    assert section.index("mariadb-dump") < section.index("mongodump")
    assert section.index("mongorestore") < section.index("mariadb videomp3 <")
