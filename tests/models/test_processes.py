"""Which process owns a run, and SIGTERM as an interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flowsentinel.models import processes


def test_owner_of_a_living_a_gone_and_a_foreign_process() -> None:
    me = processes.owner_tags()
    assert me[processes.PID_TAG] == str(os.getpid()) and me[processes.START_TAG]
    assert processes.owner_alive(me) is True
    assert processes.owner_alive({**me, processes.START_TAG: "x/1"}) is False  # pid reused
    assert processes.owner_alive({**me, processes.HOST_TAG: "another-host"}) is None
    assert processes.owner_alive({}) is None
    child = subprocess.Popen(["sleep", "30"])
    mark = processes.start_mark(child.pid)
    assert mark and mark != me[processes.START_TAG]
    child.kill()
    child.wait()
    assert processes.start_mark(child.pid) is None


def test_sigterm_raises_terminated_inside_the_block_only() -> None:
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test process has its own SIGTERM handler")
    with pytest.raises(processes.Terminated), processes.sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises as soon as the signal arrives
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_application_sigterm_handler_is_left_alone() -> None:
    def own(signum: int, frame: object) -> None:
        return None

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with processes.sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_pause_for_tests_does_nothing_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSENTINEL_TEST_PAUSE_AT", "registered")
    processes.pause_for_tests("tuned")  # returns at once


def test_the_worker_initializer_module_imports_nothing_heavy() -> None:
    """A search worker is unprotected until it has imported ``die_with_parent``: its module
    must not pull in the package's heavy imports."""
    code = "import sys, flowsentinel.models.processes; print(sorted({'sklearn', 'polars', "
    code += "'pandas', 'mlflow', 'flowsentinel.models.training'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
