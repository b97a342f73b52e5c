"""deploy/: what can be checked without a container engine. Kubernetes manifests
against the API schemas (kubernetes-validate, offline), nginx's config with
``nginx -t``, and the settings every example carries through our own loader."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from waitingroom.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _documents(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("manifest", sorted((DEPLOY / "k8s").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schemas(manifest: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for document in _documents(manifest):
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(),
                                     strict=True)


def test_the_kubernetes_settings_load_and_the_probes_split_liveness_from_redis() -> None:
    config = _documents(DEPLOY / "k8s/configmap.yaml")[0]["data"]
    secret = _documents(DEPLOY / "k8s/secret.example.yaml")[0]["stringData"]
    settings = load_settings(environ={**config, **secret})  # type: ignore[dict-item]
    assert settings.capacity == 300 and settings.gated_paths == ("/checkout*", "/basket*")
    container = _documents(DEPLOY / "k8s/deployment.yaml")[0]["spec"]["template"][  # type: ignore[index]
        "spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_wr/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_wr/live"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_compose_runs_redis_with_aof_and_every_replica_with_valid_settings() -> None:
    compose = _documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert isinstance(services, dict)
    assert "--appendonly" in services["redis"]["command"]
    rooms = [name for name in services if name.startswith("room-")]
    assert len(rooms) == 3
    for name in rooms:
        environment = {k: re.sub(r"\$\{\w+:\?[^}]*\}", "x" * 32, v)
                       for k, v in services[name]["environment"].items()}
        assert load_settings(environ=environment).origin == "http://shop:8001"


def test_the_image_runs_as_a_user_with_a_health_check() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/_wr/live" in dockerfile
    assert re.search(r'^CMD \["waitingroom", "serve"\]$', dockerfile, re.M)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_nginx_accepts_the_example_config(tmp_path: Path) -> None:
    site = (DEPLOY / "nginx/waitingroom.conf").read_text()
    site = re.sub(r"server room-\d:8000", "server 127.0.0.1:8000", site)  # no DNS here
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n"
        f"  include {tmp_path}/site.conf;\n}}\n")
    result = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c",
                             str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
