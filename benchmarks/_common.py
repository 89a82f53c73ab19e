"""Shared helpers of the benchmarks: run a command in a dedicated child and measure it.

Every row of a benchmark table is measured by :func:`run_measured`, so that wall time and peak
memory mean the same thing on every row: the wall time from spawning the command to its exit
(interpreter start and imports included) and its maximum resident set size as reported by
``wait4(2)`` (on Linux the largest RSS of the command or of any descendant it waited for; not a
sum over processes running at the same time).

The command is spawned by a tiny launcher process, not by the benchmark itself: on Linux a
process's peak RSS survives ``exec``, and Python spawns children with ``vfork``, so a command
spawned directly by a benchmark that has held 1 GB would report at least 1 GB. The launcher is a
bare ``python -S`` (about 10 MB), which bounds that error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """What one measured child did."""

    name: str
    command: list[str]
    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str = ""
    stderr: str = ""
    user_seconds: float = 0.0  # CPU time of the command (wait4), not of the launcher
    sys_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 2**20

    def last_json_line(self) -> dict[str, Any] | None:
        """The last line of stdout parsed as a JSON object, if it is one."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
        return None

    def as_dict(self, output_chars: int = 4000) -> dict[str, Any]:
        data = asdict(self)
        data["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        data["stdout"] = self.stdout[-output_chars:]
        data["stderr"] = self.stderr[-output_chars:]
        return data


# Spawns argv[2:], waits for it with wait4 and writes what it measured to argv[1] as JSON.
_LAUNCHER = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
try:
    pid = os.posix_spawnp(argv[0], argv, os.environ)
except OSError as exc:
    result = {"error": f"cannot start {argv[0]}: {exc}", "returncode": 127}
else:
    _, status, usage = os.wait4(pid, 0)
    result = {
        "seconds": time.perf_counter() - start,
        "maxrss_kb": usage.ru_maxrss,
        "user_seconds": usage.ru_utime,
        "sys_seconds": usage.ru_stime,
        "returncode": os.waitstatus_to_exitcode(status),
    }
with open(report, "w") as fh:
    json.dump(result, fh)
"""


def run_measured(
    name: str,
    command: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path,
    cwd: Path | None = None,
) -> Measurement:
    """Run ``command`` in a dedicated child; return its wall time and peak RSS.

    The child's stdout and stderr go to files in ``log_dir`` (no pipes, so no deadlock and no
    terminal: tools see a non-interactive output). A command that cannot be started is reported
    as a failed measurement (return code 127) instead of raising.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [os.fspath(part) for part in command]
    out_path = log_dir / f"{name}.stdout"
    err_path = log_dir / f"{name}.stderr"
    report_path = log_dir / f"{name}.measure.json"
    report_path.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, os.fspath(report_path), *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        subprocess.run(launcher, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    try:
        result = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        result = {"error": f"the launcher reported nothing ({exc})", "returncode": 127}
    if "error" in result:
        stderr = f"{stderr}\n{result['error']}".strip()
    return Measurement(
        name=name,
        command=argv,
        seconds=float(result.get("seconds", 0.0)),
        peak_rss_bytes=int(result.get("maxrss_kb", 0)) * 1024,  # kilobytes on Linux
        returncode=int(result["returncode"]),
        stdout=stdout,
        stderr=stderr,
        user_seconds=float(result.get("user_seconds", 0.0)),
        sys_seconds=float(result.get("sys_seconds", 0.0)),
    )


def human_bytes(n: float) -> str:
    """Binary units (MB = 2**20 bytes), as in the benchmark tables."""
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
