"""An interrupted ``train`` leaves a consistent store.

Real ``flowsentinel train`` processes on a small generated CIC-IDS2017 file, each held at a
named step by ``FLOWSENTINEL_TEST_PAUSE_AT`` and then killed: SIGKILL after the model version
is created (the loky workers of the search alive), SIGTERM after the search, SIGINT inside a
model's run. The three run at the same time, each with its own store.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowsentinel.cli.main import app
from flowsentinel.core.settings import get_settings
from flowsentinel.models import processes, registry, tracking

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

# key: (step to pause at, signal, n_jobs). n_jobs 2 starts two loky workers in the search,
# which outlive the search: SIGKILL must take them along. (On SIGTERM and SIGINT they are shut
# down in a `finally`, which test_training's in-process train checks without a process.)
CASES = {
    "sigkill": ("registered", signal.SIGKILL, 2),
    "sigterm": ("tuned", signal.SIGTERM, 1),
    "sigint": ("logging", signal.SIGINT, 1),
}
WORKERS_GONE_WITHIN = 5.0  # seconds after the signal


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))):
            children.setdefault(int(st[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def living(pids: list[int]) -> list[int]:
    return [p for p in pids if (st := _stat(p)) is not None and st[0] != "Z"]


@dataclass
class Interrupted:
    home: Path
    returncode: int
    stderr: str
    descendants: list[int]  # at the moment of the signal
    gone_after: float  # seconds from the signal until none of them lived (inf: never)


class _Train:
    """A ``flowsentinel train`` process paused at ``step``; its stderr read by a thread."""

    def __init__(self, csv: Path, home: Path, step: str, n_jobs: int) -> None:
        env = {**os.environ, "FLOWSENTINEL_HOME": str(home), "FLOWSENTINEL_TEST_PAUSE_AT": step}
        args = ["train", str(csv), "--models", "dt", "--n-iter", "2", "--n-jobs", str(n_jobs)]
        # a child inherits an ignored SIGINT (a background CI job), never a Python handler
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowsentinel", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self.home, self.lines, self.paused = home, [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("paused at"):
                self.paused.put(True)
        self.paused.put(False)

    def interrupt(self, sig: int) -> Interrupted:
        try:
            reached = self.paused.get(timeout=300)
        except queue.Empty:
            reached = False
        if not reached:
            self.proc.kill()
            pytest.fail(f"train never paused: {''.join(self.lines)[-2000:]}")
        below = descendants(self.proc.pid)
        sent = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        while living(below) and time.monotonic() - sent < 3 * WORKERS_GONE_WITHIN:
            time.sleep(0.05)
        left = living(below)
        gone = time.monotonic() - sent if not left else float("inf")
        for pid in left:  # do not leave them to the machine
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)  # the reader thread takes the last lines
        return Interrupted(self.home, self.proc.returncode, "".join(self.lines), below, gone)


@pytest.fixture(scope="module")
def interrupted(
    tmp_path_factory: pytest.TempPathFactory, cic_csv: Path, empty_store_db: Path
) -> dict[str, Interrupted]:
    homes = {key: tmp_path_factory.mktemp(key) for key in CASES}
    for home in homes.values():
        shutil.copyfile(empty_store_db, home / "mlflow.db")
    started = {
        key: _Train(cic_csv, homes[key], step, n_jobs) for key, (step, _, n_jobs) in CASES.items()
    }
    return {key: started[key].interrupt(CASES[key][1]) for key in CASES}


def _client(home: Path) -> Any:
    """A client of the store that does not sweep it (not through ``tracking.configure``)."""
    import mlflow

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(home: Path) -> dict[str, Any]:
    client = _client(home)
    ids = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name: r for r in client.search_runs(ids)}


def _versions(home: Path) -> list[Any]:
    return list(_client(home).search_model_versions())


def _use(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSENTINEL_HOME", str(home))
    get_settings.cache_clear()


def test_sigkill_while_registering(
    interrupted: dict[str, Interrupted], monkeypatch: pytest.MonkeyPatch
) -> None:
    k = interrupted["sigkill"]
    assert k.returncode == -signal.SIGKILL
    assert len(k.descendants) >= 2  # the search's workers were alive, idle in loky's executor
    assert k.gone_after < WORKERS_GONE_WITHIN
    runs = _runs(k.home)
    parent = runs["train dt (holdout)"]
    assert parent.info.status == "RUNNING"  # nothing could end it
    assert runs["dt"].info.status == "FINISHED"
    assert parent.data.tags[processes.PID_TAG].isdigit()
    (mv,) = _versions(k.home)
    assert mv.tags[registry.COMPLETE_TAG] == "false" and "Test metrics" in mv.description

    _use(k.home, monkeypatch)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert "marked 1 runs" in listed.stderr
    assert [(r["version"], r["state"], r["aliases"]) for r in json.loads(listed.stdout)] == [
        (1, "incomplete", [])
    ]
    parent = _runs(k.home)["train dt (holdout)"]
    assert parent.info.status == "KILLED" and tracking.ENDED_TAG in parent.data.tags

    shown = runner.invoke(app, ["models", "list"])
    assert "incomplete" in shown.stderr and "--repair" in shown.stderr
    refused = runner.invoke(app, ["models", "promote", "flowsentinel-cicids2017-dos", "1"])
    assert refused.exit_code == 4 and "incomplete" in refused.stderr
    repaired = runner.invoke(app, ["models", "list", "--repair", "--json"])
    assert repaired.exit_code == 0, repaired.output
    assert "removed incomplete version 1" in repaired.stderr and json.loads(repaired.stdout) == []
    assert _versions(k.home) == []


def test_sigterm_while_tuning(interrupted: dict[str, Interrupted]) -> None:
    t = interrupted["sigterm"]
    assert t.returncode == 143 and "terminated" in t.stderr and "Traceback" not in t.stderr
    assert {n: r.info.status for n, r in _runs(t.home).items()} == {
        "train dt (holdout)": "KILLED"  # at once, no later command needed
    }
    assert _versions(t.home) == []


def test_sigint_while_logging(interrupted: dict[str, Interrupted]) -> None:
    i = interrupted["sigint"]
    assert i.returncode == 130 and "interrupted" in i.stderr and "Traceback" not in i.stderr
    assert {n: r.info.status for n, r in _runs(i.home).items()} == {
        "train dt (holdout)": "KILLED",
        "dt": "KILLED",
    }
    assert _versions(i.home) == []
