"""Runs end with the status of how their block ended; a later command ends the runs whose
process is gone, and only those."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flowsentinel.models import processes, tracking


def _statuses(client, ids: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    return [client.get_run(i).info.status for i in ids]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "FINISHED"),
        (RuntimeError, "FAILED"),
        (KeyboardInterrupt, "KILLED"),
        (processes.Terminated, "KILLED"),
    ],
)
def test_a_run_ends_as_its_block_ends(
    empty_store: Path, error: type[BaseException] | None, status: str
) -> None:
    mlflow = tracking.configure()
    exp = tracking.experiment_id("flowsentinel-test-dos")
    ids: list[str] = []

    def nested_runs() -> None:
        with tracking.run(experiment_id=exp) as parent:
            ids.append(parent.info.run_id)
            with tracking.run(experiment_id=exp, nested=True) as child:
                ids.append(child.info.run_id)
                if error is not None:
                    raise error("stop")

    if error is None:
        nested_runs()
    else:
        with pytest.raises(error):
            nested_runs()
    client = mlflow.MlflowClient()
    assert _statuses(client, ids) == [status, status]
    assert client.get_run(ids[1]).data.tags[processes.PID_TAG] == str(os.getpid())
    assert mlflow.active_run() is None


def test_a_later_command_ends_only_the_runs_whose_process_is_gone(
    empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = tracking.configure()
    client = mlflow.MlflowClient()
    exp = tracking.experiment_id("flowsentinel-test-dos")
    foreign = client.create_experiment("someone-else")
    sleeper = subprocess.Popen(["sleep", "30"])
    gone = {
        processes.PID_TAG: str(sleeper.pid),
        processes.HOST_TAG: processes.owner_tags()[processes.HOST_TAG],
        processes.START_TAG: processes.start_mark(sleeper.pid) or "",
    }
    sleeper.kill()
    sleeper.wait()
    me = processes.owner_tags()
    tags = {
        "gone": gone,
        "pid reused": {**me, processes.START_TAG: "another-boot/1"},
        "alive": me,
        "another host": {**gone, processes.HOST_TAG: "another-host"},
        "untagged": {},
    }
    runs = {k: client.create_run(exp, tags=t).info.run_id for k, t in tags.items()}
    runs["not flowsentinel"] = client.create_run(foreign, tags=gone).info.run_id
    monkeypatch.setattr(tracking, "_swept", {})  # as in the next command's process
    tracking.configure()
    assert dict(zip(runs, _statuses(client, list(runs.values())), strict=True)) == {
        "gone": "KILLED",
        "pid reused": "KILLED",
        "alive": "RUNNING",
        "another host": "RUNNING",
        "untagged": "RUNNING",
        "not flowsentinel": "RUNNING",
    }
    assert sorted(tracking.swept_runs()) == sorted([runs["gone"], runs["pid reused"]])
    assert tracking.ENDED_TAG in client.get_run(runs["gone"]).data.tags


def test_no_store_file_no_sweep(flowsentinel_home: Path) -> None:
    tracking.configure()
    assert tracking.swept_runs() == [] and not (flowsentinel_home / "mlflow.db").exists()
