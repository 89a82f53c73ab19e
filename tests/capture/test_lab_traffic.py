"""The lab capture read independently with dpkt: it parses, its checksums hold, and the
diversity the lab promises (stacks, paths, applications, attack kinds and rates) is there."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from flowsentinel.datasets.lab import LABELS, write_lab

pytestmark = pytest.mark.slow

BENIGN_KINDS = {
    "http",
    "https",
    "browser",
    "https-short",
    "bulk",
    "video",
    "ssh",
    "scp",
    "dns",
    "dns-tcp",
    "quic",
    "ntp",
    "smtp",
    "imap",
    "pop3",
    "postgresql",
    "mysql",
    "redis",
    "smb",
    "rdp",
    "mqtt",
    "coap",
    "dhcp",
    "ping",
    "traceroute",
    "mdns",
    "ssdp",
    "tcp-refused",
    "tcp-unanswered",
    "tcp-check",
    "tcp-midstream",
    "tcp-zerowindow",
    "tcp-stalled",
}
ATTACK_KINDS = {
    "hulk-fast",
    "hulk-slow",
    "udp-single-randport",
    "udp-single-fixedport",
    "udp-single-small",
    "udp-spoofed",
    "udp-fragmented",
    "udp-pulsing",
    "ack-spoofed",
    "ack-psh-single",
    "rst-spoofed",
    "rst-single",
    "icmp-single",
    "icmp-spoofed",
    "synack-refl",
}
# DNS, NTP, SNMP, SSDP, CLDAP, memcached, CharGen, QOTD, NetBIOS, WS-Discovery, IKE, BACnet,
# portmap, ARD, Ubiquiti, CoAP, mDNS, RIP, TFTP, RDP, SLP
REFLECTED_PORTS = {
    53,
    123,
    161,
    1900,
    389,
    11211,
    19,
    17,
    137,
    3702,
    500,
    47808,
    111,
    3283,
    10001,
    5683,
    5353,
    520,
    69,
    3389,
    427,
}


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _packet(ts: float, buf: bytes) -> dict[str, object]:
    """One packet's fields, checked: the IPv4 header and transport checksums must hold."""
    ip = dpkt.ethernet.Ethernet(buf).data
    row: dict[str, object] = {
        "ts": ts,
        "v6": isinstance(ip, dpkt.ip6.IP6),
        "frag": False,
        "frame": len(buf),
    }
    if isinstance(ip, dpkt.ip.IP):
        assert _sum16(bytes(buf[14 : 14 + ip.hl * 4])) == 0xFFFF, "IPv4 header checksum"
        row.update(ttl=ip.ttl, proto=ip.p, src=ip.src, dst=ip.dst)
        if ip.mf or ip.offset:  # a fragment: its datagram's checksum spans packets
            row.update(frag=True, later=ip.offset > 0)
            return row
        l4 = bytes(buf[14 + ip.hl * 4 : 14 + ip.len])
        pseudo = ip.src + ip.dst + struct.pack("!BBH", 0, ip.p, len(l4)) if ip.p != 1 else b""
    else:
        assert isinstance(ip, dpkt.ip6.IP6)
        row.update(ttl=ip.hlim, proto=ip.nxt, src=ip.src, dst=ip.dst)
        l4 = bytes(buf[54 : 54 + ip.plen])
        pseudo = ip.src + ip.dst + struct.pack("!I3xB", len(l4), ip.nxt)
    assert _sum16(pseudo + l4) == 0xFFFF, f"transport checksum (protocol {row['proto']})"
    seg = ip.data
    if isinstance(seg, dpkt.tcp.TCP):
        opts = dict(dpkt.tcp.parse_opts(seg.opts))
        row.update(
            sport=seg.sport,
            dport=seg.dport,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flags,
            win=seg.win,
            hlen=seg.off * 4,
            plen=len(seg.data),
            mss=struct.unpack("!H", opts[2])[0] if 2 in opts else 0,
            wscale=opts[3][0] if 3 in opts else -1,
        )
    elif isinstance(seg, dpkt.udp.UDP):
        row.update(sport=seg.sport, dport=seg.dport, plen=len(seg.data))
    return row


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("lab")
    write_lab(out, seed=11, scale=0.3)
    with (out / "lab.pcap").open("rb") as fh:
        rows = [_packet(ts, buf) for ts, buf in dpkt.pcap.Reader(fh)]
    return out, pd.DataFrame(rows)


def test_every_packet_parses_with_valid_checksums_and_fragments_are_counted(
    lab: tuple[Path, pd.DataFrame],
) -> None:
    from flowsentinel.capture import extract_flows

    out, pk = lab
    _flows, stats = extract_flows(out / "lab.pcap")
    assert stats.packets == len(pk)  # every record was parsed (the fixture asserted checksums)
    assert pk["frame"].max() <= 1514  # no frame beyond the Ethernet MTU
    # the meter skips exactly the non-first fragments, and says so
    later = int(pk["later"].fillna(False).astype(bool).sum())
    assert later > 0 and stats.problems == {"ip_fragment": later}


def test_stacks_differ_on_the_wire(lab: tuple[Path, pd.DataFrame]) -> None:
    _, pk = lab
    syn = pk[(pk["proto"] == 6) & (pk["flags"].fillna(0).astype(int) & 0x12 == 0x02)]
    initial = np.select([syn["ttl"] <= 64, syn["ttl"] <= 128], [64, 128], 255)
    assert set(initial) == {64, 128, 255}
    assert {1460, 1380, 536} <= set(syn["mss"]) and len(set(syn["mss"]) - {0}) >= 5
    assert syn["win"].nunique() >= 8
    assert len(set(syn["wscale"])) >= 5  # none, 5, 6, 7, 8, 9
    assert {20, 24, 32, 40, 44} <= set(pk.loc[pk["proto"] == 6, "hlen"].astype(int))
    # clients behind NAT: one public address, SYNs of several stacks
    public = syn[~syn["src"].map(lambda a: a[:2] in (b"\xc0\xa8", b"\xfd\x00"))]
    stacks = public.groupby("src")[["hlen", "wscale"]].apply(lambda g: len(g.drop_duplicates()))
    assert (stacks >= 2).sum() >= 1
    v6 = pk[pk["v6"]]
    assert len(v6) > 500 and {6, 17, 58} <= set(v6["proto"])
    # window updates: the windows a connection advertises change during its life
    tcp = pk[pk["proto"] == 6]
    per_conn = tcp.groupby(["src", "sport", "dst", "dport"])["win"].nunique()
    assert (per_conn >= 3).sum() > 50


def test_paths_rtts_losses_and_endings(lab: tuple[Path, pd.DataFrame]) -> None:
    _, pk = lab
    tcp = pk[pk["proto"] == 6].copy()
    flags = tcp["flags"].astype(int)
    syn = tcp[flags == 0x02].drop_duplicates(["src", "sport", "dst", "dport"])
    acks = tcp[flags == 0x10].drop_duplicates(["src", "sport", "dst", "dport"])
    hs = syn.merge(acks, on=["src", "sport", "dst", "dport"], suffixes=("_syn", "_ack"))
    rtt = (hs["ts_ack"] - hs["ts_syn"]).to_numpy()
    rtt = rtt[(rtt > 0) & (rtt < 1.0)]
    assert np.quantile(rtt, 0.1) < 0.002 and np.quantile(rtt, 0.99) > 0.3  # LAN to satellite
    # retransmissions: the same data segment twice; duplicate ACKs
    data = tcp[tcp["plen"] > 0]
    assert data.duplicated(["src", "sport", "seq", "plen"]).sum() > 10
    pure = tcp[(flags == 0x10) & (tcp["plen"] == 0)]
    assert pure.duplicated(["src", "sport", "dst", "dport", "ack", "win"]).sum() > 50
    assert (flags & 0x04).astype(bool).sum() > 100  # RST endings
    # half-closed: data still flows towards a side after that side's FIN
    conn = ["src", "sport", "dst", "dport"]
    fin = tcp[(flags & 0x01) == 1].groupby(conn)["ts"].min().rename("fin").reset_index()
    back = fin.rename(columns={"src": "dst", "dst": "src", "sport": "dport", "dport": "sport"})
    after = data.merge(back, on=conn)
    assert (after["ts"] > after["fin"]).sum() > 0
    # TCP keep-alive probes: a segment one byte below the data already sent
    nxt = data.assign(end=data["seq"] + data["plen"]).groupby(conn)["end"].max().reset_index()
    probes = tcp[(flags == 0x10) & (tcp["plen"] <= 1)].merge(nxt, on=conn)
    assert (probes["seq"] == probes["end"] - 1).sum() > 0
    assert ((flags & 0xC2) == 0xC2).sum() > 10  # SYN with ECE and CWR


def test_every_kind_is_present_and_labels_keep_the_dos_family(
    lab: tuple[Path, pd.DataFrame],
) -> None:
    from flowsentinel.datasets.labels import cic_family

    out, _ = lab
    labels = pd.read_csv(out / "labels.csv")
    kinds = set(labels["Kind"])
    assert kinds >= BENIGN_KINDS | ATTACK_KINDS
    assert {k for k in kinds if k.startswith("slowloris-")} >= {"slowloris-5s", "slowloris-60s"}
    refl_ports = set(labels.loc[labels["Kind"].str.startswith("refl-"), "Source Port"])
    assert refl_ports == REFLECTED_PORTS
    assert set(labels["Label"]) == set(LABELS)
    assert all(cic_family(x) == "DoS" for x in set(LABELS) - {"BENIGN"})
    # SYN floods: campaigns made in several ways, ECN+CWR and IPv6 among them
    syn_kinds = {k for k in kinds if k.startswith("syn-")}
    assert len(syn_kinds) >= 5
    assert any("ecn-cwr" in k for k in syn_kinds) and any("ipv6" in k for k in syn_kinds)
    # forged floods come from many sources
    spoofed = labels[
        labels["Kind"].str.startswith("syn-spoofed")
        | labels["Kind"].isin(["udp-spoofed", "icmp-spoofed"])
    ]
    assert spoofed.groupby(spoofed["Kind"].str[:3])["Source IP"].nunique().min() > 20


def test_flows_are_labelled_from_their_sessions(lab: tuple[Path, pd.DataFrame]) -> None:
    out, _ = lab
    flows = pd.read_csv(out / "lab_flows.csv")
    labels = pd.read_csv(out / "labels.csv")

    def keys(df: pd.DataFrame, s: str, sp: str, d: str, dp: str) -> pd.Series:
        a = df[s].astype(str) + ":" + df[sp].astype(str)
        b = df[d].astype(str) + ":" + df[dp].astype(str)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        return lo + "|" + hi + "|" + df["Protocol"].astype(str)

    truth = dict(
        zip(
            keys(labels, "Source IP", "Source Port", "Destination IP", "Destination Port"),
            labels["Label"],
            strict=True,
        )
    )
    fk = keys(flows, "Source IP", "Source Port", "Destination IP", "Destination Port")
    assert flows["Label"].notna().all()
    assert (fk.map(truth) == flows["Label"]).all()
    # one-way reflection: responses reach the victim, nothing goes back
    refl = flows[flows["Label"] == "DoS UDP reflection"]
    assert (refl["Total Backward Packets"] == 0).mean() > 0.8
    assert refl["Source Port"].nunique() >= 10
    synack = flows[flows["Label"] == "DoS SYN-ACK reflection"]
    assert (synack["Total Backward Packets"] == 0).any() and (
        synack["Total Backward Packets"] > 0
    ).any()
    syn = flows[flows["Label"] == "DoS SYN flood"]
    assert syn["Source IP"].str.contains(":").any()  # an IPv6 flood too
    # idle gaps longer than the meter's 5 s activity timeout in benign sessions
    benign = flows[flows["Label"] == "BENIGN"]
    assert (benign["Idle Max"] > 5e6).sum() > 30
    assert set(benign["Protocol"]) == {1, 6, 17, 58} and flows["Label"].value_counts().min() >= 10


def _packed(ip: str) -> bytes:
    import ipaddress

    return ipaddress.ip_address(ip).packed


def _of_kind(lab: tuple[Path, pd.DataFrame], prefix: str) -> pd.DataFrame:
    """The TCP/UDP packets of the sessions whose kind starts with ``prefix``, both ways, with
    ``fwd`` True for the session's first direction."""
    out, pk = lab
    labels = pd.read_csv(out / "labels.csv")
    s = labels[labels["Kind"].str.startswith(prefix)]
    a = pd.DataFrame(
        {
            "src": s["Source IP"].map(_packed),
            "sport": s["Source Port"],
            "dst": s["Destination IP"].map(_packed),
            "dport": s["Destination Port"],
            "session": np.arange(len(s)),
        }
    )
    b = a.rename(columns={"src": "dst", "dst": "src", "sport": "dport", "dport": "sport"})
    cols = ["src", "sport", "dst", "dport"]
    known = pk.dropna(subset=["sport"]).astype({"sport": int, "dport": int})
    fwd = known.merge(a, on=cols).assign(fwd=True)
    back = known.merge(b, on=cols).assign(fwd=False)
    return pd.concat([fwd, back]).sort_values(["session", "ts"])


def test_amplification_answers_look_like_the_published_ones(
    lab: tuple[Path, pd.DataFrame],
) -> None:
    refl = _of_kind(lab, "refl-")
    assert refl["fwd"].all()  # one-way: nothing goes back to the reflectors
    assert refl["src"].nunique() > 200  # many reflectors
    assert (refl.groupby("src")["ttl"].nunique() == 1).all()  # each keeps its own TTL
    # NTP monlist: 440-byte answers, many per request, back to back
    ntp = refl[(refl["sport"] == 123) & (refl["plen"] == 440)]
    burst = ntp.groupby(["src", "dport"])["ts"].agg(["count", lambda t: t.max() - t.min()])
    assert ((burst["count"] >= 10) & (burst.iloc[:, 1] < 1.0)).any()
    # answers above the MTU arrive as fragments, from reflectors of the oversized services
    _, pk = lab
    big = set(refl.loc[refl["sport"].isin([53, 161, 389, 3702]), "src"])
    frags = pk[pk["frag"].fillna(False).astype(bool) & (pk["proto"] == 17)]
    assert frags["src"].isin(big).sum() >= 10
    # IKE responders retransmit with a doubling back-off
    ike = (
        refl[refl["sport"] == 500]
        .groupby(["src", "dport"])["ts"]
        .apply(lambda t: np.diff(np.sort(t.to_numpy())))
    )
    ratios = np.concatenate([g[1:] / g[:-1] for g in ike if len(g) >= 2 and g[0] > 1.5])
    assert ((ratios > 1.8) & (ratios < 2.3)).sum() >= 3


def test_benign_connections_that_fail_follow_the_stacks(lab: tuple[Path, pd.DataFrame]) -> None:
    refused = _of_kind(lab, "tcp-refused")
    first = refused.groupby("session").head(2)
    syn, rst = first[first["fwd"]], first[~first["fwd"]]
    assert (syn["flags"].astype(int) == 0x02).all() and len(rst) == len(syn)
    assert (rst["flags"].astype(int) == 0x14).all()  # RST+ACK answering the SYN
    assert (rst["ack"].to_numpy() == (syn["seq"].to_numpy() + 1) % 2**32).all()
    # unanswered SYNs: retransmitted 1 s after the first, then with a back-off of the stack
    unans = _of_kind(lab, "tcp-unanswered")
    assert (unans["fwd"] & (unans["flags"].astype(int) == 0x02)).all()
    offsets = unans.groupby("session")["ts"].apply(lambda t: np.sort(t.to_numpy() - t.min()))
    allowed = ([0, 1, 3, 7, 15, 31], [0, 1, 2, 3, 4, 5, 7, 11, 19], [0, 3, 9, 21], [0, 2, 6, 14])

    def follows(o: np.ndarray) -> bool:
        return any(
            len(o) <= len(a) and np.allclose(o, a[: len(o)], rtol=0.06, atol=0.05) for a in allowed
        )

    assert all(follows(o) for o in offsets)
    assert (offsets.map(len) >= 3).any()
    # connections caught mid-stream: their first packet is no SYN
    mid = _of_kind(lab, "tcp-midstream").groupby("session").head(1)
    assert not (mid["flags"].astype(int) & 0x02).any()


def test_slowloris_teardowns(lab: tuple[Path, pd.DataFrame]) -> None:
    slow = _of_kind(lab, "slowloris-")
    flags = slow["flags"].astype(int)
    server_fin = slow[~slow["fwd"] & ((flags & 0x01) == 1)].groupby("session")["ts"].min()
    client_fin = slow[slow["fwd"] & ((flags & 0x01) == 1)].groupby("session")["ts"].min()
    rst = slow[~slow["fwd"] & ((flags & 0x04) == 4)].groupby("session")["ts"].min()
    data = slow[slow["fwd"] & (slow["plen"] > 0)].groupby("session")["ts"].max()
    # the server timed out (FIN), the tool sent one more header line, the server reset it
    timed_out = pd.concat([server_fin, data, rst], axis=1, keys=["fin", "data", "rst"]).dropna()
    assert (
        (timed_out["fin"] < timed_out["data"]) & (timed_out["data"] < timed_out["rst"])
    ).sum() > 5
    assert len(client_fin) > 5  # the tool stopped: its kernel closed the sockets
    # most sockets were opened within a few seconds of each other
    opened = slow.groupby("session")["ts"].min().sort_values().to_numpy()
    assert (np.diff(opened) < 0.1).mean() > 0.4
