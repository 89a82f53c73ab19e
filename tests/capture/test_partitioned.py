"""Metering on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes):
the flows are those of the in-process meter, bit for bit, for slices and for one capture cut
into byte ranges; an unreachable scheduler and a worker lost mid-job are handled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from capture_sets import busy_scenario, same_flows, slice_records, write_pcap
from craft import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Pkt, pcap_bytes
from test_byte_ranges import payload_pcap

from dask_cluster import DaskCluster, start_cluster
from flowsentinel.capture import CaptureStats, MeterConfig, Quirks, extract_flows
from flowsentinel.capture.decode import Packets, decode, new_counters
from flowsentinel.capture.partitioned import (
    CutMismatch,
    PacketShare,
    check_cuts,
    key_partition,
    meter_on_cluster,
    plan_parts,
    read_task,
    split_packets,
)
from flowsentinel.capture.pcap import iter_records
from flowsentinel.core.cluster import Cluster

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pcaps"

pytestmark = pytest.mark.integration


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ},
    )  # fmt: skip


def _slices(tmp_path: Path, seed: int, flows: int, parts: int) -> tuple[Path, list[str]]:
    whole = write_pcap(tmp_path / "whole.pcap", busy_scenario(seed=seed, flows=flows))
    records = slice_records(whole.read_bytes(), [])
    n = len(busy_scenario(seed=seed, flows=flows))
    paths = []
    for k, data in enumerate(slice_records(records[0], [n * j // parts for j in range(1, parts)])):
        path = tmp_path / f"s{k}.pcap"
        path.write_bytes(data)
        paths.append(str(path))
    return whole, paths


def test_both_directions_share_a_partition() -> None:

    capture = SHARED / "attack" / "slowloris-lab.pcap"
    if not capture.exists():
        pytest.skip(f"{capture} is absent (../shared/datasets)")
    pk = decode(next(iter(iter_records(capture))), new_counters())
    part = key_partition(pk, 7)
    key = pd.DataFrame({
        "a": [min(x) for x in zip(pk.src_lo, pk.dst_lo, strict=True)],
        "b": [max(x) for x in zip(pk.src_lo, pk.dst_lo, strict=True)],
        "p": [tuple(sorted(x)) for x in zip(pk.sport, pk.dport, strict=True)],
        "part": part,
    })  # fmt: skip
    assert key.groupby(["a", "b", "p"])["part"].nunique().max() == 1
    assert set(part.tolist()) - {-1} == set(range(7))  # keys spread over every partition
    split = split_packets(pk, 7)
    assert sum(len(s) for s in split) == int((pk.reason == 0).sum())
    for s in split:  # capture order kept inside each partition
        assert (s.ts[1:] >= s.ts[:-1]).all()


def _decoded(tmp_path: Path, pkts: list[Pkt]) -> Packets:
    path = tmp_path / "share.pcap"
    path.write_bytes(pcap_bytes(pkts))
    return decode(next(iter(iter_records(path))), new_counters())


def test_a_share_travels_narrow_and_comes_back_the_same(tmp_path: Path) -> None:
    every_flag = FIN | SYN | RST | PSH | ACK | URG | ECE | CWR
    v4 = [
        Pkt(0, "10.0.0.1", "255.255.255.254", 65535, 0, flags=every_flag, payload=1400,
            win=65535, tcp_options=b"\x01" * 40),
        Pkt(10, "10.0.0.2", "10.0.0.3", 1, 65535, proto=17, payload=0),
        Pkt(20, "10.0.0.2", "10.0.0.3", 0, 0, proto=1, payload=56),
    ]  # fmt: skip
    v6 = [Pkt(30, "2001:db8::1", "ffff::fffe", 443, 50000, flags=ACK, payload=10, win=0)]
    for pkts, wire_bytes in ((v4, 44), (v4 + v6, 60)):
        pk = _decoded(tmp_path, pkts)
        assert (pk.reason == 0).all() and pk.hdr.max() == 60  # the longest TCP header
        share = PacketShare.of(pk)
        assert sum(c.nbytes for c in share.columns.values()) == wire_bytes * len(pk)
        back = share.packets()
        for name in (f.name for f in fields(Packets)):
            want, got = getattr(pk, name), getattr(back, name)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("quirks", [Quirks(), Quirks.none()], ids=["cic", "corrected"])
def test_slices_on_the_cluster_equal_one_meter(
    tmp_path: Path, dask_cluster: DaskCluster, quirks: Quirks
) -> None:
    whole, paths = _slices(tmp_path, seed=5, flows=500, parts=8)
    config = MeterConfig(quirks=quirks)
    expected, whole_stats = extract_flows(whole, config=config)
    stats = CaptureStats()
    with Cluster(address=dask_cluster.address).client() as client:
        assert client is not None
        results = list(meter_on_cluster(client, paths[::-1], config=config, stats=stats))
    got = pa.concat_tables([r.table for r in results]).to_pandas()
    same_flows(got, expected)
    assert stats.packets == whole_stats.packets and stats.flows == len(expected)
    assert stats.flow_packets == whole_stats.flow_packets
    assert [p.source for p in stats.captures] == paths


def test_one_capture_cut_into_ranges_on_the_cluster(dask_cluster: DaskCluster) -> None:
    capture = SHARED / "attack" / "slowloris-lab.pcap"
    if not capture.exists():
        pytest.skip(f"{capture} is absent (../shared/datasets)")
    expected, whole = extract_flows(capture)
    stats = CaptureStats()
    with Cluster(address=dask_cluster.address).client() as client:
        assert client is not None
        results = list(meter_on_cluster(client, [str(capture)], stats=stats, min_range_bytes=1))
    same_flows(pa.concat_tables([r.table for r in results]).to_pandas(), expected)
    assert stats.source == str(capture) and stats.packets == whole.packets
    assert stats.read.bytes_total == whole.read.bytes_total


def test_a_cut_inside_a_payload_is_metered_again_whole(
    tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    # payloads of plausible pcap records: the second range's reader starts at a fake one
    path = payload_pcap(tmp_path / "payloads.pcap", packets=401)  # cut in a payload
    parts = plan_parts([str(path)], 2, CaptureStats(), min_range_bytes=1)
    assert len(parts) == 2
    with pytest.raises(CutMismatch):
        check_cuts(read_task(parts, 1)[2])
    expected, whole = extract_flows(path)
    stats = CaptureStats()
    with Cluster(address=dask_cluster.address).client() as client:
        assert client is not None
        results = list(meter_on_cluster(client, [str(path)], stats=stats, min_range_bytes=1))
    assert len(results) == 4  # one set of key partitions: the first job yielded nothing
    same_flows(pa.concat_tables([r.table for r in results]).to_pandas(), expected)
    assert stats.packets == whole.packets == 401
    assert stats.read.bytes_total == whole.read.bytes_total == path.stat().st_size


def test_a_capture_at_a_url_is_cut_into_ranges(tmp_path: Path, dask_cluster: DaskCluster) -> None:
    path = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=11, flows=600))
    url = path.as_uri()  # file://: read by fsspec, as s3:// and hdfs:// are
    parts = plan_parts([url], 2, CaptureStats(), min_range_bytes=1)
    assert [p.byte_range is not None for p in parts] == [True, True]
    expected, whole = extract_flows(path)
    stats = CaptureStats()
    with Cluster(address=dask_cluster.address).client() as client:
        assert client is not None
        results = list(meter_on_cluster(client, [url], stats=stats, min_range_bytes=1))
    same_flows(pa.concat_tables([r.table for r in results]).to_pandas(), expected)
    assert stats.packets == whole.packets
    assert stats.read.bytes_total == whole.read.bytes_total == path.stat().st_size


def test_cli_on_the_cluster_writes_what_in_process_writes(
    tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    _, paths = _slices(tmp_path, seed=9, flows=300, parts=5)
    local, remote, dataset = tmp_path / "l.csv", tmp_path / "r.csv", tmp_path / "ds"
    assert _cli("flows", *paths, "-o", str(local)).returncode == 0
    res = _cli("flows", *paths, "-o", str(remote), "--cluster", dask_cluster.address)
    assert res.returncode == 0, res.stderr[-2000:]
    same_flows(pd.read_csv(remote), pd.read_csv(local))
    env_run = subprocess.run(
        [sys.executable, "-m", "flowsentinel", "flows", *paths, "-o", str(dataset)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "FLOWSENTINEL_DASK_SCHEDULER": dask_cluster.address},
    )  # fmt: skip
    assert env_run.returncode == 0, env_run.stderr[-2000:]
    assert "Dask scheduler" in env_run.stderr or len(list(dataset.glob("part-*.parquet"))) > 1
    same_flows(pd.read_parquet(dataset), pd.read_csv(local).pipe(_as_parquet_types, dataset))


def _as_parquet_types(df: pd.DataFrame, dataset: Path) -> pd.DataFrame:
    ref = pd.read_parquet(dataset)
    return df.astype(ref.dtypes.to_dict())


def test_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    _, paths = _slices(tmp_path, seed=1, flows=20, parts=2)
    res = _cli("flows", *paths, "-o", str(tmp_path / "f.csv"), "--cluster", "tcp://127.0.0.1:9")
    assert res.returncode == 5
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "f.csv").exists()


@pytest.mark.slow
def test_a_worker_killed_mid_job(tmp_path: Path) -> None:
    """The job finishes on the remaining worker (same flows), or fails with one line and no
    output: never a partial output presented as complete."""
    cluster = start_cluster(tmp_path / "logs")
    try:
        _, paths = _slices(tmp_path, seed=13, flows=6000, parts=16)
        out = tmp_path / "flows.parquet"
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowsentinel", "flows", *paths, "-o", str(out),
             "--cluster", cluster.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_for_tasks(cluster.address)
        cluster.kill_worker(0)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            expected, _ = extract_flows(paths)
            same_flows(pd.read_parquet(out), expected)
        else:
            assert proc.returncode == 5 and "Traceback" not in err, err[-2000:]
            assert not out.exists()
    finally:
        cluster.stop()


def _wait_for_tasks(address: str, timeout: float = 120) -> None:
    """Until the scheduler has tasks running on a worker."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(client.processing().values()):
                return
            time.sleep(0.01)
    raise AssertionError("the job never started on the cluster")
