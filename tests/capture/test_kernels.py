"""The compiled kernels (``capture.kernels``) and numba's JIT on the same functions give the
same bits: flows, read counters and damaged byte ranges, and the cut points of a split pcap,
on real captures (pcap and pcapng) and on copies of them damaged in the middle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT.parent / "shared" / "datasets" / "pcaps"
CAPTURES = (
    PCAPS / "attack" / "slowloris-lab.pcap",
    PCAPS / "attack" / "stopddos-amp.UDP.snmp.src161.pcapng",
    PCAPS / "benign" / "ppa3-dhcp6_outlease_acquisition.pcapng",
)

_DIGEST = """
import hashlib, json, sys
from flowsentinel.capture import kernels
from flowsentinel.capture.pcap import split_ranges
from flowsentinel.capture.stream import CaptureStats, iter_flow_arrays
out = {}
for path in sys.argv[1:]:
    stats, digest = CaptureStats(), hashlib.sha256()
    for flows in iter_flow_arrays(path, stats=stats, batch_packets=97):
        for column in (flows.features, flows.ids, flows.addrs):
            digest.update(column.tobytes())
    read = stats.read
    out[path] = [digest.hexdigest(), stats.packets, stats.decoded, stats.meter,
                 read.damaged_ranges, read.corrupt_records, read.truncated_records,
                 split_ranges(path, 4, min_bytes=1)]
out["jit"] = "dispatchers" in kernels._state
print(json.dumps(out))
"""


def _digest(paths: list[str], mode: str) -> dict[str, object]:
    env = {**os.environ, "FLOWSENTINEL_KERNELS": mode}
    done = subprocess.run([sys.executable, "-c", _DIGEST, *paths], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def _damaged(src: Path, dst: Path) -> str:
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(7)
    middle = len(data) // 2
    data[middle : middle + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return str(dst)


def test_compiled_kernels_equal_the_jit_bit_for_bit(tmp_path: Path) -> None:
    present = [p for p in CAPTURES if p.exists()]
    if not present:
        pytest.skip(f"the shared captures are absent ({PCAPS})")
    paths = [str(p) for p in present]
    paths += [_damaged(p, tmp_path / f"damaged-{p.name}") for p in present]
    compiled, jitted = _digest(paths, "compiled"), _digest(paths, "jit")
    assert compiled.pop("jit") is False
    assert jitted.pop("jit") is True
    assert compiled == jitted
    flows = [entry[1] for entry in compiled.values()]
    assert min(flows) > 0  # every capture had packets
    damaged = [compiled[p] for p in paths[len(present) :]]
    assert all(entry[4] for entry in damaged)  # each damaged copy: a skipped range


def test_a_failed_build_is_reported_and_not_tried_again(tmp_path: Path) -> None:
    from flowsentinel.capture import kernels

    (tmp_path / "mod.failed").write_text("compiling the capture kernels failed: no compiler\n")
    with pytest.raises(RuntimeError, match=r"no compiler \(remove .*mod\.failed to try again\)"):
        kernels._build(tmp_path, "mod")
    assert not list(tmp_path.glob("mod.*.so"))  # nothing was compiled


def test_no_c_compiler_is_reported_before_any_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowsentinel.capture import kernels

    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on it (as in a slim image)
    with pytest.raises(RuntimeError, match=r"no C compiler \(.+\) to compile the capture kernels"):
        kernels._build(tmp_path, "mod")
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing remembered
