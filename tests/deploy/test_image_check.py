"""docker/image-check, the script that builds the image and runs its roles in podman, and what it needs
from the Dockerfile.

The check itself needs root, podman and minutes of CPU, so `make image-check` runs it, not the test
suite (see the README's containers section). These tests keep its contract with the rest of the
repository: the way it runs the roles matches the Kubernetes base, and what it adds stays out of
the image.
"""

import re
import subprocess

import yaml

from tests.deploy.conftest import REPO
from tests.deploy.test_image import instructions

IMAGE_CHECK = REPO / "docker" / "image-check"
SCRIPT = IMAGE_CHECK.read_text() if IMAGE_CHECK.exists() else ""


def test_make_image_check_runs_the_script():
    assert IMAGE_CHECK.stat().st_mode & 0o111, "docker/image-check must be executable"
    syntax = subprocess.run(["bash", "-n", str(IMAGE_CHECK)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^image-check:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe and recipe.group(1).strip() == "docker/image-check"


def test_the_roles_run_as_the_kubernetes_base_runs_them():
    """Same user, read-only root with a writable /tmp, and the base's own config.env."""
    dockerfile_user = instructions("USER")[-1]
    assert f"--user {dockerfile_user}" in SCRIPT
    for role in ("web", "converter", "notifier", "migrate"):
        manifest = next(yaml.safe_load_all((REPO / "k8s" / "base" / f"{role}.yaml").read_text()))
        pod = manifest["spec"]["template"]["spec"]
        assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == dockerfile_user
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert "--read-only" in SCRIPT and '--tmpfs "/tmp:' in SCRIPT
    assert '--env-file "$REPO/k8s/base/config.env"' in SCRIPT


def test_the_check_shows_every_behaviour_the_issue_asks_for():
    default_steps = re.search(r"steps=\(tools base build (.+)\)", SCRIPT).group(1).split()
    for step in ("roles", "health", "convert", "stop", "drain", "migrate", "secrets", "contents", "logs", "size"):
        assert step in default_steps and f"step_{step}() {{" in SCRIPT


def test_the_build_stage_defaults_to_the_runtime_python_image():
    """Real builds use python:3.11-slim for both stages; only the check passes a separate builder base."""
    assert "ARG PYTHON_BUILD_IMAGE=${PYTHON_IMAGE}" in (REPO / "Dockerfile").read_text()
    stages = instructions("FROM")
    assert stages == ["${PYTHON_BUILD_IMAGE} AS builder", "${PYTHON_IMAGE}"]


def test_dpkg_leaves_documentation_out_of_the_ffmpeg_layer_but_keeps_the_licences():
    runtime_apt = [run for run in instructions("RUN") if "apt-get install" in run][-1]
    excludes = runtime_apt.index("path-exclude=/usr/share/doc/*")
    assert excludes < runtime_apt.index("apt-get install"), "dpkg must know the excludes before it unpacks"
    assert "path-include=/usr/share/doc/*/copyright" in runtime_apt
    assert "/etc/dpkg/dpkg.cfg.d/" in runtime_apt


def test_the_image_check_stays_out_of_the_image():
    assert "docker/image-check" in (REPO / ".dockerignore").read_text().split()
