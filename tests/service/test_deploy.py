"""Deployment: the container files (checked without a Docker engine) and the container-free
way of running both processes (``mlflow server`` + ``flowsentinel serve``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import REPO_ROOT, cic_record, free_port, stop, wait_ready
from flowsentinel.core.settings import Settings

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "compose.yaml"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_is_valid() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no `docker compose` nor `docker-compose` on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSENTINEL_", "API_"))}
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_compose_services() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    api, tracking = doc["services"]["api"], doc["services"]["mlflow"]
    assert set(doc["volumes"]) == {"mlflow-db", "mlflow-artifacts"}
    assert {v.split(":")[0] for v in tracking["volumes"]} == set(doc["volumes"])
    assert "healthcheck" in api and "healthcheck" in tracking
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_compose_dask_cluster() -> None:
    """The cluster profile: a scheduler, workers that reach it and share the command's paths."""
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    scheduler, worker, cli = services["dask-scheduler"], services["worker"], services["cli"]
    assert all(s["profiles"] == ["cluster"] for s in (scheduler, worker, cli))
    assert (
        scheduler["entrypoint"][:2] == ["dask", "scheduler"] and "8786" in scheduler["entrypoint"]
    )
    assert worker["entrypoint"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert worker["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    assert cli["environment"]["FLOWSENTINEL_DASK_SCHEDULER"] == "tcp://dask-scheduler:8786"
    mounts = {v.rsplit(":", 1)[1] for v in worker["volumes"]}
    assert mounts == {v.rsplit(":", 1)[1] for v in cli["volumes"]} == {"/data"}
    assert "replicas" not in worker.get("deploy", {})  # scaled with --scale worker=N


def test_dockerfile_basics() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert any(line.startswith("FROM python:") and "-slim" in line for line in lines) or (
        "python:${PYTHON_VERSION}-slim" in text
    )
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "FLOWSENTINEL_SERVE_MODELS" in text
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored


@pytest.mark.integration
def test_mlflow_server_and_flowsentinel_serve(tmp_path: Path) -> None:
    """The documented container-free set-up: a tracking server, a model trained into it, and
    the service loading the model from it."""
    from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv
    from flowsentinel.models.training import TrainConfig, train

    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWSENTINEL_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    port = free_port()
    tracking = subprocess.Popen(
        [
            str(Path(bin_dir) / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts",
            "--workers", "1",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    serve = None
    try:
        wait_ready(uri, tracking, path="/health")
        csv = write_cic_csv(generate_flows(1500, seed=5), tmp_path / "flows.csv")
        settings = Settings(home=tmp_path / "client-home", mlflow_tracking_uri=uri, n_jobs=1)
        train(
            TrainConfig(
                sources=[str(csv)],
                task="dos",
                models=["rf"],
                n_iter=0,
                features="seed-a",
                near_constant="none",
            ),
            settings,
        )
        api_port = free_port()
        serve_env = env | {
            "FLOWSENTINEL_HOME": str(tmp_path / "api-home"),
            "FLOWSENTINEL_MLFLOW_TRACKING_URI": uri,
        }
        serve = subprocess.Popen(
            [sys.executable, "-m", "flowsentinel", "serve", "--port", str(api_port),
             "--model", "flowsentinel-cicids2017-dos"],
            env=serve_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        api = f"http://127.0.0.1:{api_port}"
        wait_ready(api, serve)
        r = httpx.post(api + "/reports/", json=cic_record())
        assert r.status_code == 200 and r.json()["predictions"][0] in ("BENIGN", "DoS")
        assert httpx.get(api + "/v1/model").json()["version"] == "1"
    finally:
        if serve is not None:
            stop(serve)
        stop(tracking)
