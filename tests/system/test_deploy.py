"""The deploy files (deploy/, Dockerfile): every config they carry loads through the real config
loader, the image sets no configuration but HARVESTER_CONFIG, the systemd unit verifies. CI also
runs yamllint on deploy/ and kubernetes-validate on the manifests (.ci/run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harvester.config import settings_from_yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def with_secret_files(text: str, secrets_dir: str, tmp_path: Path) -> str:
    """The config with its secret files pointed at real (placeholder) files under tmp_path."""
    for line in text.splitlines():
        if "_file:" in line:
            path = line.split(":", 1)[1].strip()
            local = tmp_path / Path(path).name
            local.write_text("a-real-secret\n")
    return text.replace(secrets_dir, f"{tmp_path}/")


def test_the_kubernetes_configmap_holds_a_valid_config(tmp_path: Path) -> None:
    configmap = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    text = with_secret_files(configmap["data"]["config.yaml"], "/run/secrets/harvester/", tmp_path)
    settings = settings_from_yaml(text)
    assert settings.server.listen == "0.0.0.0:9465"
    assert settings.sei.auth_scheme == "ApiKey"


def test_the_deployment_mounts_what_the_configmap_names() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment.yaml").read_text()))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secrets"] == "/run/secrets/harvester"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # A Jenkins or webhook outage fails /readyz, never /livez: no restart for it.
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert [name for name in env if name.startswith("HARVESTER_")] == ["HARVESTER_CONFIG"]
    assert env["MALLOC_ARENA_MAX"] == "2"


def test_the_compose_config_is_valid(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"postgres", "harvester"}
    assert "environment" not in compose["services"]["harvester"]  # config from files only
    text = with_secret_files(
        (DEPLOY / "compose" / "config.yaml").read_text(), "/run/secrets/", tmp_path
    )
    settings = settings_from_yaml(text)
    assert settings.ledger.url.startswith("postgresql+psycopg://")
    # Two replicas of one controller, splitting one API key's 1000 requests a minute.
    assert compose["services"]["harvester"]["deploy"]["replicas"] == 2
    assert settings.jenkins.controller == "jenkins-main"
    assert settings.sei.max_requests_per_minute <= 1000  # only the active replica sends
    for secret in compose["secrets"].values():
        assert (DEPLOY / (secret["file"] + ".example")).exists()


def test_the_image_sets_no_configuration_but_the_config_path() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    code = " ".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    variables = [word.split("=")[0] for word in code.split() if word.startswith("HARVESTER_")]
    assert set(variables) == {"HARVESTER_CONFIG"}
    assert "MALLOC_ARENA_MAX=2" in code
    assert "/livez" in code and "/healthz" not in code  # the HEALTHCHECK: liveness only
    assert "FROM python:3.11.11-slim-bookworm" in dockerfile  # pinned to a patch version


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "harvester.service").read_text()
    executable = Path(sys.executable).parent / "harvester"
    local = tmp_path / "harvester.service"
    local.write_text(unit.replace("/opt/harvester/bin/harvester", str(executable)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_image_installs_from_the_lock_file_which_pins_every_dependency() -> None:
    # An image build is reproducible: exact versions with hashes, for every runtime dependency
    # (and the postgres extra), installed before harvester itself, which adds none.
    import tomllib  # noqa: PLC0415

    from packaging.requirements import Requirement  # noqa: PLC0415

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for r in project["optional-dependencies"]["postgres"]]
    lock = (REPO / "requirements.lock").read_text()
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-"): line.split("==")[1].split()[0]
        for line in lock.splitlines()
        if "==" in line and not line.startswith(("#", " "))
    }
    for requirement in wanted:
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run uv pip compile again"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]}"
    assert lock.count("--hash=sha256:") >= len(pinned)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "!requirements.lock" in (REPO / ".dockerignore").read_text()


def test_the_systemd_unit_never_installs_the_pypi_name() -> None:
    # "harvester" on PyPI is an unrelated package: the unit's instructions install this checkout.
    unit = (DEPLOY / "systemd" / "harvester.service").read_text()
    assert "pip install harvester" not in unit
    assert "requirements.lock" in unit


def test_the_kubernetes_replicas_variant_runs_two_on_postgresql(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "replicas.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    text = with_secret_files(
        kinds["ConfigMap"]["data"]["config.yaml"], "/run/secrets/harvester/", tmp_path
    )
    settings = settings_from_yaml(text)
    assert settings.ledger.url.startswith("postgresql+psycopg://")
    assert settings.jenkins.name  # shared by the replicas
    assert kinds["Deployment"]["spec"]["replicas"] == 2
    assert kinds["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def _pods() -> list[dict[str, object]]:
    found = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Deployment":
                found.append(document["spec"]["template"]["spec"])
    return found


def test_the_pods_meet_the_restricted_pod_security_standard() -> None:
    pods = _pods()
    assert len(pods) == 2
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "harvester"
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]


def test_no_secret_value_is_applied_from_the_repository() -> None:
    # kubectl apply -f deploy/kubernetes/ reads *.yaml: the Secret is an example beside them.
    for path in (DEPLOY / "kubernetes").glob("*.yaml"):
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert "Secret" not in kinds, path
    account = yaml.safe_load((DEPLOY / "kubernetes" / "serviceaccount.yaml").read_text())
    assert account["automountServiceAccountToken"] is False


def test_the_alerts_name_metrics_the_harvester_serves() -> None:
    import re  # noqa: PLC0415

    from harvester.daemon.metrics import Metrics  # noqa: PLC0415

    served = Metrics().exposition().decode()
    rule = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "HarvesterDeadBuilds",
        "HarvesterNoSuccessfulCycle",
        "HarvesterPendingTooLong",
    }
    for expr in alerts.values():
        for metric in re.findall(r"harvester_[a-z_]+", expr):
            assert f"# TYPE {metric} " in served, metric


def test_compose_publishes_the_probes_on_loopback_only() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["harvester"]["ports"] == ["127.0.0.1::9465"]


def test_the_wheel_lists_every_package_and_its_templates() -> None:
    # The packages are listed by hand (migrations/ is mapped into harvester): a package missing
    # from the list installs nowhere, and only a non-editable install notices.
    import tomllib  # noqa: PLC0415

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "harvester").rglob("__init__.py")
    }
    assert found <= listed, f"not in [tool.setuptools] packages: {sorted(found - listed)}"
    templates = setuptools["package-data"]["harvester.web"]
    assert any((REPO / "harvester/web").glob(pattern) for pattern in templates)
