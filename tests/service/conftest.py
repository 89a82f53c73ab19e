"""Fixtures of the service tests: two small models trained once per session in a private
MLflow store (a CIC-IDS2017 ``seed-a`` random forest, a UNSW-NB15 ``seed-b`` random forest), and
a real ``flowsentinel serve`` process for the integration tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from flowsentinel.core import schema as sc
from flowsentinel.core.settings import Settings

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what the project uses
    warnings.simplefilter("ignore")
    import fastapi.testclient  # noqa: F401

CIC_NAME = "flowsentinel-cicids2017-dos"
UNSW_NAME = "flowsentinel-unsw-nb15-attack"
API_KEY = "test-key-123"

# The second seed's two sample payloads, verbatim.
SEED_B_NORMAL = {
    "dur": 0.453854, "service": "-", "state": "FIN", "spkts": 10, "dpkts": 6, "sbytes": 714,
    "dbytes": 268, "rate": 33.050276, "sttl": 254, "dttl": 252, "sload": 11334.04102,
    "dload": 3948.40625, "sloss": 2, "dloss": 0, "sinpkt": 6578.2406, "dinpkt": 10961.736,
    "sjit": 653840.0681, "djit": 24336.61, "swin": 255, "stcpb": 2906150044,
    "dtcpb": 3830409389, "dwin": 255, "tcprtt": 0.177939, "synack": 0.089164,
    "ackdat": 0.088775, "smean": 71, "dmean": 45, "trans_depth": 0, "response_body_len": 0,
    "ct_srv_src": 6, "ct_state_ttl": 1, "ct_dst_ltm": 4, "ct_src_dport_ltm": 4,
    "ct_dst_sport_ltm": 4, "ct_dst_src_ltm": 6, "is_ftp_login": 0, "ct_ftp_cmd": 0,
    "ct_flw_http_mthd": 0, "ct_src_ltm": 4, "ct_srv_dst": 7, "is_sm_ips_ports": 0,
}  # fmt: skip
SEED_B_ATTACK = {
    "dur": 4e-06, "service": "dns", "state": "INT", "spkts": 2, "dpkts": 0, "sbytes": 114,
    "dbytes": 0, "rate": 250000.0006, "sttl": 254, "dttl": 0, "sload": 114000000.0,
    "dload": 0.0, "sloss": 0, "dloss": 0, "sinpkt": 0.004, "dinpkt": 0.0, "sjit": 0.0,
    "djit": 0.0, "swin": 0, "stcpb": 0, "dtcpb": 0, "dwin": 0, "tcprtt": 0.0, "synack": 0.0,
    "ackdat": 0.0, "smean": 57, "dmean": 0, "trans_depth": 0, "response_body_len": 0,
    "ct_srv_src": 7, "ct_state_ttl": 2, "ct_dst_ltm": 7, "ct_src_dport_ltm": 7,
    "ct_dst_sport_ltm": 3, "ct_dst_src_ltm": 7, "is_ftp_login": 0, "ct_ftp_cmd": 0,
    "ct_flw_http_mthd": 0, "ct_src_ltm": 8, "ct_srv_dst": 7, "is_sm_ips_ports": 0,
}  # fmt: skip

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "datasets"


def unsw_frame(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    """UNSW-NB15 partition rows (45 columns) drawn around the seed's two samples: normal
    traffic near the first, attacks near the second, with noise on every numeric field."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[object]] = {c: [] for c in ("id", *sc.UNSW_FEATURES, "attack_cat", "label")}
    for i in range(rows):
        attack = i % 2 == 1
        base = SEED_B_ATTACK if attack else SEED_B_NORMAL
        out["id"].append(i + 1)
        for c in sc.UNSW_FEATURES:
            if c == "proto":
                out[c].append(rng.choice(["udp", "tcp"]) if attack else "tcp")
            elif c == "service":
                out[c].append(rng.choice(["dns", "-"]) if attack else rng.choice(["-", "http"]))
            elif c == "state":
                out[c].append("INT" if attack else rng.choice(["FIN", "CON"]))
            else:
                v = float(base[c])
                out[c].append(round(v * rng.uniform(0.7, 1.3) + rng.uniform(0, 1), 6))
        out["attack_cat"].append(rng.choice(["Generic", "Exploits"]) if attack else "Normal")
        out["label"].append(1 if attack else 0)
    return pd.DataFrame(out)


@dataclass
class Store:
    home: Path
    settings: Settings
    cic_csv: Path
    unsw_csv: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWSENTINEL_")}
        env.pop("MLFLOW_TRACKING_URI", None)
        env["FLOWSENTINEL_HOME"] = str(self.home)
        return env


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Both models trained once into a private store (FLOWSENTINEL_HOME of its own)."""
    from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv
    from flowsentinel.models.training import TrainConfig, train

    home = tmp_path_factory.mktemp("service-home")
    data = tmp_path_factory.mktemp("service-data")
    settings = Settings(home=home, n_jobs=1)
    cic_csv = write_cic_csv(generate_flows(2500, seed=3), data / "cic-flows.csv")
    unsw_csv = data / "unsw-partition.csv"
    unsw_frame().to_csv(unsw_csv, index=False)
    common = {"models": ["rf"], "n_iter": 0, "near_constant": "none"}
    train(TrainConfig(sources=[str(cic_csv)], task="dos", features="seed-a", **common), settings)
    train(
        TrainConfig(sources=[str(unsw_csv)], task="attack", features="seed-b", **common), settings
    )
    return Store(home, settings, cic_csv, unsw_csv)


@pytest.fixture(scope="session")
def model_set(store: Store):
    from flowsentinel.service.engine import ModelSet

    return ModelSet.load([CIC_NAME, UNSW_NAME], store.settings)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90.0, path: str = "/readyz"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-2000:]}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    headers: dict[str, str]


@contextlib.contextmanager
def serving(store: Store, api_key: str | None) -> Iterator[Server]:
    """``flowsentinel serve`` with both models and small limits on a free port."""
    port = free_port()
    env = store.env() | {
        "FLOWSENTINEL_SERVE_MAX_BODY_BYTES": str(1 << 20),
        "FLOWSENTINEL_SERVE_MAX_UPLOAD_BYTES": str(8 << 20),
        "FLOWSENTINEL_SERVE_MAX_SCAN_BYTES": str(64 << 20),
        "FLOWSENTINEL_SERVE_MAX_BATCH": "1000",
    }
    if api_key:
        env["FLOWSENTINEL_SERVE_API_KEY"] = api_key
    cmd = [
        sys.executable, "-m", "flowsentinel", "serve", "--model", CIC_NAME, "--model", UNSW_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield Server(url, proc, {"X-API-Key": api_key} if api_key else {})
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def server(store: Store) -> Iterator[Server]:
    """The real server with an API key."""
    with serving(store, API_KEY) as running:
        yield running


@pytest.fixture(scope="session")
def open_server(store: Store) -> Iterator[Server]:
    """The real server without an API key."""
    with serving(store, None) as running:
        yield running


def cic_record(frame: pd.DataFrame | None = None, row: int = 0) -> dict[str, float]:
    """One flow in the first seed's snake_case names."""
    if frame is None:
        return {sc.snake_case(f): 1.0 for f in sc.SEED_A_FEATURES}
    return {sc.snake_case(f): float(frame[f].iloc[row]) for f in sc.SEED_A_FEATURES}
