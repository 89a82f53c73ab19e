"""The processes of a ``train``: which process owns a run, worker processes that die with it,
and SIGTERM ending it the way Ctrl-C does.

- A run records its owner (pid, host, and a start mark that a later process reusing the pid
  does not share) as tags, so that a later command can tell a run whose process was killed
  (SIGKILL, power loss) from one still being written (``tracking.end_orphan_runs``).
- The parameter search runs its folds in joblib's loky worker processes (``n_jobs``). loky keeps
  them for reuse and, when the parent dies without shutting them down, they wait out their
  idle timeout (300 s) plus 30 s before exiting. ``worker_scope`` gives those workers an
  initializer that asks the kernel to kill them when their parent dies (Linux
  ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread polling the parent pid) and shuts them down
  when the training fails or is interrupted in a way Python sees (exception, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

PID_TAG = "flowsentinel.pid"
HOST_TAG = "flowsentinel.host"
START_TAG = "flowsentinel.process_start"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a train ends as it does on Ctrl-C."""


def start_mark(pid: int) -> str | None:
    """What identifies process ``pid`` beyond its number: the boot id and its start time in
    clock ticks (Linux); ``""`` where /proc does not tell but the process exists; ``None``
    when no process has that pid."""
    proc = Path("/proc")
    if proc.is_dir():
        try:
            stat = (proc / str(pid) / "stat").read_text()
            boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            return None
        # field 22 (starttime); the command name (field 2) may hold spaces, so split after ")"
        return f"{boot}/{stat.rsplit(')', 1)[1].split()[19]}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # exists, owned by another user
        return ""
    return ""


def owner_tags() -> dict[str, str]:
    """Run tags naming this process."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), START_TAG: start_mark(pid) or ""}


def owner_alive(tags: Mapping[str, str]) -> bool | None:
    """Whether the process that ``owner_tags`` named still runs: ``None`` when this host cannot
    tell (no such tags, or another host)."""
    pid, host = tags.get(PID_TAG, ""), tags.get(HOST_TAG)
    if not pid.isdigit() or host != socket.gethostname():
        return None
    mark = start_mark(int(pid))
    return mark is not None and mark == tags.get(START_TAG, "")


def die_with_parent(parent: int) -> None:
    """loky worker initializer: end this worker when process ``parent`` ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _stop_workers() -> None:
    """Shut down joblib's reusable loky executor (a process-wide singleton) and its workers."""
    from joblib.externals.loky import reusable_executor  # lazy: joblib, see search_workers

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        with contextlib.suppress(Exception):  # never hide the error that brought us here
            executor.shutdown(wait=True, kill_workers=True)


@contextlib.contextmanager
def worker_scope() -> Iterator[None]:
    """Shut the search workers down when the block fails or is interrupted. After a normal end
    they stay for the next search of this process (loky's reuse, idle timeout 300 s): a
    process that trains again does not pay their start-up twice. Either way they die with
    this process (``die_with_parent``)."""
    try:
        yield
    except BaseException:
        _stop_workers()
        raise


@contextlib.contextmanager
def search_workers() -> Iterator[None]:
    """joblib's loky backend with workers that die with this process, for one search.

    Only around the search: an explicit backend makes joblib ignore the ``prefer="threads"``
    hint of scikit-learn's other parallel loops, which must stay threads.
    """
    import joblib  # lazy: 0.3 s at service start-up (detector -> tracking -> processes)

    with joblib.parallel_config(
        backend="loky", initializer=die_with_parent, initargs=(os.getpid(),)
    ):
        yield


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread for the block (so ``finally``
    blocks and run statuses see it), when this is the main thread and SIGTERM still has its
    default action (an application's own handler is left alone)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _raise_terminated(signum: int, frame: FrameType | None) -> Any:
    raise Terminated(f"signal {signum}")


def pause_for_tests(step: str) -> None:
    """Test hook: when ``FLOWSENTINEL_TEST_PAUSE_AT`` names ``step`` (``tuned``: after the
    first search, its workers alive; ``logging``: inside a model's run; ``registered``: the
    version created, not yet complete), print ``paused at STEP`` on stderr and wait there
    until a signal ends the process, so that tests interrupt a train at a known step."""
    if os.environ.get("FLOWSENTINEL_TEST_PAUSE_AT") != step:
        return
    print(f"paused at {step}", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)
