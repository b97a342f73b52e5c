"""deploy/: what can be checked without a container engine. Kubernetes manifests
against the API schemas (kubernetes-validate, offline), nginx's config with
``nginx -t``, and the settings every example carries through our own loader."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import AUTH, SECRET, TOKEN
from tests.servers import waitingroom_serve
from waitingroom.cli import GRACEFUL_SHUTDOWN_SECONDS
from waitingroom.config import load_settings
from waitingroom.middleware import SHUTDOWN_SECONDS

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


def test_the_kubernetes_settings_load_and_neither_probe_follows_redis() -> None:
    config = _documents(DEPLOY / "k8s/configmap.yaml")[0]["data"]
    secret = _documents(DEPLOY / "k8s/secret.example.yaml")[0]["stringData"]
    settings = load_settings(environ={**config, **secret})  # type: ignore[dict-item]
    assert settings.capacity == 300 and settings.gated_paths == ("/checkout*", "/basket*")
    container = _documents(DEPLOY / "k8s/deployment.yaml")[0]["spec"]["template"][  # type: ignore[index]
        "spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_wr/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_wr/live"
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    pod = _documents(DEPLOY / "k8s/deployment.yaml")[0]["spec"]["template"]["spec"]  # type: ignore[index]
    # The grace covers the pre-stop pause, serve's graceful end and the room's shutdown.
    assert pod["terminationGracePeriodSeconds"] > 5 + GRACEFUL_SHUTDOWN_SECONDS + SHUTDOWN_SECONDS
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


@pytest.mark.slow
def test_serve_on_sigterm_ends_its_event_streams_and_exits_within_the_grace(
    redis_url: str,
) -> None:
    """What the manifests' grace period is measured against: SIGTERM with a waiter's
    event stream open ends the stream (the page reconnects elsewhere) and the process
    exits cleanly, well inside the 45 s Kubernetes is told to wait."""
    started: list[subprocess.Popen[bytes]] = []
    env = {"WAITINGROOM_REDIS_URL": redis_url, "WAITINGROOM_SECRET": SECRET,
           "WAITINGROOM_ORIGIN": "http://127.0.0.1:9", "WAITINGROOM_CAPACITY": "1",
           "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0",
           "WAITINGROOM_ADMIN_TOKEN": TOKEN}
    with waitingroom_serve(env, started=started) as url, \
            httpx.Client(base_url=url, headers={"accept": "application/json"}) as holder, \
            httpx.Client(base_url=url, headers={"accept": "application/json"}) as waiter:
        assert holder.get("/_wr/status").json()["state"] == "arriving"
        assert holder.get("/_wr/status").json()["state"] == "admitted"  # the one slot
        assert waiter.get("/_wr/status").json()["state"] == "arriving"
        assert waiter.get("/_wr/status").json()["state"] == "queued"
        assert holder.post("/_wr/admin/room", json={"paused": True},  # nobody goes in
                           headers=AUTH).status_code == 200
        with waiter.stream("GET", "/_wr/events", timeout=60) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith(("id:", "data:", "event:"))
            started[0].send_signal(signal.SIGTERM)
            rest: list[str] = []
            with contextlib.suppress(httpx.RemoteProtocolError):  # cut at the deadline
                rest.extend(lines)  # ends: the server closed the stream
        # uvicorn re-raises the signal once it has shut down cleanly: -SIGTERM, in time.
        assert started[0].wait(timeout=45) == -signal.SIGTERM
    assert not [line for line in rest if '"admitted"' in line]  # ended, not let in


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (apt-get install prometheus)")
def test_the_alert_rules_are_valid_and_each_fires_when_it_should() -> None:
    rules = DEPLOY / "prometheus"
    checked = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=rules,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=rules,
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {rule["alert"] for group in yaml.safe_load((rules / "alerts.yml").read_text())[
        "groups"] for rule in group["rules"]}
    unit_tested = set(re.findall(r"alertname: (\w+)", (rules / "alerts_test.yml").read_text()))
    assert alerts == unit_tested  # every alert has its unit test
    runbook = (DEPLOY.parent / "docs/operations.md").read_text()
    for anchor in re.findall(r"operations\.md#([a-z-]+)", (rules / "alerts.yml").read_text()):
        heading = anchor.replace("-", " ")
        assert re.search(rf"^#+ {heading}$", runbook, re.M | re.I), anchor
