"""``watch`` on the loopback interface (root only) writes an incident line when a flood's
incident opens and when it closes: 100 loopback sources send 10 UDP datagrams each to a
socket that never answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="live capture needs root (CAP_NET_RAW); CI runs as root",
    ),
]


# a loopback address of its own: other local traffic (a test's Dask cluster, servers) is not
# part of the flood's incident
TARGET = "127.0.0.77"


def _early_in_a_window() -> None:
    """Wait until 0.5-3 s into an aggregate window (10 s, epoch-aligned), so that the whole flood
    falls inside one window however slowly this machine sends it."""
    while not 0.5 <= time.time() % 10 <= 3.0:
        time.sleep(0.05)


def _udp_flood(sources: int = 100, each: int = 10) -> int:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((TARGET, 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    target = sink.getsockname()
    for k in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.1.{k + 1}", 0))
        for _ in range(each):
            s.sendto(b"x" * 64, target)
        s.close()
    time.sleep(0.5)
    sink.close()
    return int(target[1])


def test_watch_writes_incident_lines_that_open_and_close(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowsentinel", *args],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip

    lab = tmp_path / "lab"
    assert cli("lab", "--out", str(lab), "--scale", "0.1").returncode == 0
    res = cli(
        "train", str(lab / "lab_flows.csv"), "--dataset", "cicids2017", "--task", "dos",
        "--models", "rf", "--n-iter", "0", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    model = json.loads(res.stdout)["champion"]["registered_model"]
    watch = subprocess.Popen(
        [sys.executable, "-m", "flowsentinel", "watch", "--interface", "lo", "--seconds", "18",
         "--all", "--model", f"models:/{model}@champion"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "watching" not in line and time.monotonic() < deadline:
            line = watch.stderr.readline()
            assert line or watch.poll() is None, "watch exited early"
        time.sleep(1.0)  # the packet socket opens once the line is out
        _early_in_a_window()
        port = _udp_flood()
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err[-2000:]
    events = [json.loads(x) for x in out.splitlines() if x.strip().startswith('{"incident"')]
    mine = [e for e in events if e["target_ip"] == TARGET and e["target_port"] == port]
    told = [(e["incident"], e["target_ip"], e["target_port"], e["label"]) for e in events]
    assert [e["incident"] for e in mine] == ["open", "closed"], (port, told)
    # what watch saw of the flood (a busy machine's packet socket drops some of a burst): every
    # flow is written with --all
    flows = [json.loads(x) for x in out.splitlines() if x.startswith('{"row"')]
    flood = [f for f in flows if f["dst_ip"] == TARGET and f["dst_port"] == port]
    seen = sum(f["fwd_packets"] for f in flood)
    assert seen >= 100  # the flood was seen at all
    incident = mine[-1]
    assert incident["protocol"] == "udp" and incident["to_target"]["packets"] >= 0.9 * seen
    # the flood is one incident whichever detector saw it first: the flow model flags its flows
    # too (the aggregate rules on their own are tested offline, tests/capture/test_windows.py)
    assert incident["sources"] >= min(20, 0.9 * len({f["src_ip"] for f in flood}))
    # every flow line says which incident it is part of: the flood's flagged flows, this one
    assert all("incident_id" in f for f in flows)
    assert all(f["incident_id"] == incident["id"] for f in flood if f["label"] != "BENIGN")
