"""Live capture on the loopback interface (root only): real sockets, real AF_PACKET frames.

The traffic is made here with known payloads, so the metered flows can be checked against
what was sent: the UDP exchange packet by packet, the TCP session by its payload bytes (the
kernel decides how many bare ACKs there are) and by its first-FIN end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from craft import pcap_bytes, tcp_session

from flowsentinel.capture import CaptureStats, extract_flows, iter_live_flow_batches
from flowsentinel.capture.decode import decode, new_counters
from flowsentinel.capture.live import iter_live_records

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="live capture needs root (CAP_NET_RAW); CI runs as root",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _compiled(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Meter a crafted capture first, so the JIT compilation (up to ~30 s on a fresh machine)
    is done before the live tests time anything."""
    cap = tmp_path_factory.mktemp("warm") / "s.pcap"
    cap.write_bytes(pcap_bytes(tcp_session()))
    assert len(extract_flows(cap)[0]) == 2


# the client uses another loopback address: CICFlowMeter tells directions by address alone
# (quirk ``direction_by_address_only``), so 127.0.0.1 ↔ 127.0.0.1 would be all "forward"
CLIENT = "127.0.0.2"


def _udp_exchange() -> tuple[int, int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((CLIENT, 0))
    target = server.getsockname()
    for _ in range(5):
        client.sendto(b"q" * 100, target)
        time.sleep(0.01)
    for _ in range(5):
        server.recvfrom(2048)
    for _ in range(2):
        server.sendto(b"r" * 40, client.getsockname())
        time.sleep(0.01)
    ports = client.getsockname()[1], target[1]
    client.close()
    server.close()
    return ports


def _tcp_session() -> tuple[int, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        data = b""
        while len(data) < 600:
            data += conn.recv(4096)
        got.append(data)
        conn.sendall(b"s" * 50)
        conn.recv(16)  # the client's FIN
        conn.close()

    worker = threading.Thread(target=serve)
    worker.start()
    client = socket.create_connection(listener.getsockname(), source_address=(CLIENT, 0))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(3):
        client.sendall(b"c" * 200)
        time.sleep(0.02)
    reply = b""
    while len(reply) < 50:
        reply += client.recv(4096)
    ports = client.getsockname()[1], listener.getsockname()[1]
    client.close()
    worker.join(5)
    listener.close()
    assert got == [b"c" * 600] and reply == b"s" * 50
    return ports


def _capture_while(traffic) -> tuple[pd.DataFrame, CaptureStats, object]:
    stop = threading.Event()
    stats = CaptureStats()
    frames: list[pd.DataFrame] = []

    def run() -> None:
        for frame in iter_live_flow_batches("lo", stats=stats, stop=stop, flush_interval_s=0.2):
            frames.append(frame)

    capture = threading.Thread(target=run)
    capture.start()
    time.sleep(0.5)  # the socket is bound before the traffic starts
    try:
        result = traffic()
        time.sleep(0.5)
    finally:
        stop.set()
        capture.join(60)
    assert not capture.is_alive(), "the live capture did not stop when asked"
    flows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return flows, stats, result


def _flow(flows: pd.DataFrame, proto: int, sport: int, dport: int) -> pd.DataFrame:
    return flows[
        (flows["Protocol"] == proto)
        & (flows["Source Port"] == sport)
        & (flows["Destination Port"] == dport)
        & (flows["Source IP"] == CLIENT)
    ]


def test_live_udp_exchange_is_metered_packet_by_packet() -> None:
    flows, stats, (cport, sport) = _capture_while(_udp_exchange)
    assert stats.source == "interface lo" and stats.packets >= 7
    flow = _flow(flows, 17, cport, sport)
    assert len(flow) == 1, flows[["Source Port", "Destination Port", "Protocol"]]
    row = flow.iloc[0]
    # loopback frames are seen twice by AF_PACKET (out and in): each is counted once
    assert row["Destination IP"] == "127.0.0.1"
    assert row["Total Fwd Packets"] == 5 and row["Total Backward Packets"] == 2
    assert row["Total Length of Fwd Packets"] == 500
    assert row["Total Length of Bwd Packets"] == 80
    assert row["Fwd Packet Length Max"] == 100 and row["Bwd Packet Length Max"] == 40
    # times are integer microseconds; five sends 10 ms apart, then the replies
    assert 40_000 <= row["Flow Duration"] < 2_000_000


def test_frames_keep_their_receive_time_when_the_reader_falls_behind() -> None:
    # the reader stalls (as while a batch is scored) during the whole exchange: the frames
    # wait in the socket, and still carry the times the kernel received them
    stop = threading.Event()
    records = iter_live_records("lo", flush_interval_s=0.05, stop=stop)
    next(records)  # the socket is open
    cport, sport = _udp_exchange()  # five queries 10 ms apart, then two replies
    time.sleep(0.2)
    stop.set()
    stamps = []
    for batch in records:
        pk = decode(batch, new_counters())
        ours = (pk.proto == 17) & (
            ((pk.sport == cport) & (pk.dport == sport))
            | ((pk.sport == sport) & (pk.dport == cport))
        )
        stamps += pk.ts[ours].tolist()
    assert len(stamps) == 7
    assert stamps == sorted(stamps)
    assert 40_000 <= stamps[-1] - stamps[0] < 2_000_000  # read at once, stamped as they came


def test_live_tcp_session_ends_at_the_first_fin() -> None:
    flows, _, (cport, sport) = _capture_while(_tcp_session)
    flow = _flow(flows, 6, cport, sport)
    assert len(flow) >= 1
    first = flow.iloc[0]
    assert first["Total Length of Fwd Packets"] == 600
    assert first["Total Length of Bwd Packets"] == 50
    assert first["Fwd Packet Length Max"] == 200
    assert first["Init_Win_bytes_forward"] > 0 and first["Init_Win_bytes_backward"] > 0
    # the client's FIN ended that flow: the server's own FIN/ACK is metered as a new flow
    later = flows[
        (flows["Protocol"] == 6)
        & flows["Source Port"].isin([cport, sport])
        & flows["Destination Port"].isin([cport, sport])
    ]
    assert len(later) >= 2


def test_live_interface_errors_are_clear() -> None:
    stop = threading.Event()
    with pytest.raises(Exception, match="no-such-if0"):
        next(iter(iter_live_flow_batches("no-such-if0", stop=stop)))


def test_watch_command_prints_a_json_line_per_flow(tmp_path: Path) -> None:
    """The console script end to end: a lab model registered in a private store, then
    ``watch --interface lo --all --seconds`` while the UDP exchange runs."""
    env = {**os.environ, "FLOWSENTINEL_HOME": str(tmp_path / "home")}

    def cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowsentinel", *args],
            capture_output=True, text=True, env=env, timeout=600, **kw,
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
        [sys.executable, "-m", "flowsentinel", "watch", "--interface", "lo", "--all",
         "--seconds", "12", "--model", f"models:/{model}@champion"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # wait until the model is loaded and the socket bound ("watching lo ..." on stderr)
        line = ""
        while "watching" not in line and time.monotonic() < deadline:
            line = watch.stderr.readline()
            assert line or watch.poll() is None, "watch exited early"
        time.sleep(0.5)
        cport, sport = _udp_exchange()
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err[-2000:]
    records = [json.loads(x) for x in out.splitlines() if x.strip()]
    # flow lines (other traffic on lo, a busy machine's, may open incidents: their own lines)
    flows = [r for r in records if "row" in r]
    mine = [r for r in flows if r["src_port"] == cport and r["dst_port"] == sport]
    assert len(mine) == 1
    counts = [mine[0][k] for k in ("fwd_packets", "fwd_bytes", "bwd_packets", "bwd_bytes")]
    assert (mine[0]["src_ip"], mine[0]["protocol"], counts) == (CLIENT, "udp", [5, 500, 2, 80])
    assert mine[0]["start"].endswith("+00:00")
    assert mine[0]["label"] in {"BENIGN", "DoS"} and 0.0 <= mine[0]["probability"] <= 1.0
    assert "packets" in err and "flows" in err
