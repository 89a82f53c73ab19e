"""Shared helpers of the benchmarks: run a command in a dedicated child and measure it.

Every row of a benchmark table is measured by :func:`run_measured`, so that wall time and peak
memory mean the same thing on every row: the wall time seen by the parent (interpreter start and
imports included) and the child's maximum resident set size as reported by ``wait4(2)`` (on Linux
this is the largest RSS of the child or of any descendant it waited for; it is not a sum over
processes running at the same time).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
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
    extra: dict[str, Any] = field(default_factory=dict)

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


def run_measured(
    name: str,
    command: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path,
    cwd: Path | None = None,
) -> Measurement:
    """Run ``command`` as a dedicated child; return its wall time and peak RSS.

    The child's stdout and stderr go to files in ``log_dir`` (no pipes, so no deadlock and no
    terminal: tools see a non-interactive output). A command that cannot be started is reported
    as a failed measurement (return code 127) instead of raising.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [os.fspath(part) for part in command]
    out_path = log_dir / f"{name}.stdout"
    err_path = log_dir / f"{name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd
            )
        except OSError as exc:
            return Measurement(name, argv, 0.0, 0, 127, "", f"cannot start {argv[0]}: {exc}")
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode  # already reaped by wait4: keep Popen from waiting again
    return Measurement(
        name=name,
        command=argv,
        seconds=seconds,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # kilobytes on Linux
        returncode=returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
