"""Turn finished-flow arrays into a table with the canonical CIC-IDS2017 column names.

Columns: the identifiers of :data:`~flowsentinel.core.schema.CIC_IDENTIFIERS` (``Flow ID``
is ``src-dst-sport-dport-protocol`` in the flow's direction, ``Timestamp`` the start time in UTC
with microseconds) then the 76 features of :data:`~flowsentinel.core.schema.CIC_FEATURES`,
so that :func:`flowsentinel.datasets.reader.read_file` reads the CSV back as the
TrafficLabelling dialect. Strings are built with Arrow compute kernels, not per row in Python.
"""

from __future__ import annotations

import ipaddress
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flowsentinel.capture.meter import OI_DPORT, OI_PROTO, OI_SPORT, OI_START, OI_V6, FlowArrays
from flowsentinel.core.schema import CIC_FEATURES, CIC_IDENTIFIERS, LABEL

#: features that are integers by definition (written without a decimal point)
INTEGER_FEATURES: Final[frozenset[str]] = frozenset(
    {
        "Flow Duration", "Total Fwd Packets", "Total Backward Packets",
        "Total Length of Fwd Packets", "Total Length of Bwd Packets", "Fwd PSH Flags",
        "Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags", "Fwd Header Length",
        "Bwd Header Length", "FIN Flag Count", "SYN Flag Count", "RST Flag Count",
        "PSH Flag Count", "ACK Flag Count", "URG Flag Count", "CWE Flag Count",
        "ECE Flag Count", "Fwd Avg Bytes/Bulk", "Fwd Avg Packets/Bulk", "Fwd Avg Bulk Rate",
        "Bwd Avg Bytes/Bulk", "Bwd Avg Packets/Bulk", "Bwd Avg Bulk Rate",
        "Subflow Fwd Packets", "Subflow Fwd Bytes", "Subflow Bwd Packets", "Subflow Bwd Bytes",
        "Init_Win_bytes_forward", "Init_Win_bytes_backward", "act_data_pkt_fwd",
        "min_seg_size_forward",
    }
)  # fmt: skip
COLUMNS: Final[tuple[str, ...]] = (*CIC_IDENTIFIERS, *CIC_FEATURES)


def _ip_strings(hi: np.ndarray, lo: np.ndarray, v6: np.ndarray) -> pa.Array:
    v4 = lo & np.uint64(0xFFFFFFFF)
    octets = [
        pa.array(((v4 >> np.uint64(sh)) & np.uint64(255)).astype(np.uint8)) for sh in (24, 16, 8, 0)
    ]
    text = pc.binary_join_element_wise(*[pc.cast(o, pa.string()) for o in octets], ".")
    six = np.flatnonzero(v6 != 0)
    if six.size:
        values = text.to_pylist()
        for k in six.tolist():
            packed = (int(hi[k]) << 64) | int(lo[k])
            values[k] = str(ipaddress.IPv6Address(packed))
        text = pa.array(values, pa.string())
    return text


def flows_to_arrow(flows: FlowArrays, labels: list[str] | np.ndarray | None = None) -> pa.Table:
    """The flows as an Arrow table (identifier columns, 76 features, optional ``Label``)."""
    ids, addrs, feats = flows.ids, flows.addrs, flows.features
    v6 = ids[:, OI_V6]
    src = _ip_strings(addrs[:, 0], addrs[:, 1], v6)
    dst = _ip_strings(addrs[:, 2], addrs[:, 3], v6)
    sport = pa.array(ids[:, OI_SPORT])
    dport = pa.array(ids[:, OI_DPORT])
    proto = pa.array(ids[:, OI_PROTO])
    flow_id = pc.binary_join_element_wise(
        src, dst, pc.cast(sport, pa.string()), pc.cast(dport, pa.string()),
        pc.cast(proto, pa.string()), "-",
    )  # fmt: skip
    start = pa.array(ids[:, OI_START], pa.timestamp("us", tz="UTC"))
    stamp = pc.strftime(start, format="%Y-%m-%d %H:%M:%S", locale="C")
    columns: list[pa.Array] = [flow_id, src, sport, dst, dport, proto, stamp]
    for k, name in enumerate(CIC_FEATURES):
        col = feats[:, k]
        if name in INTEGER_FEATURES:
            columns.append(pa.array(col.astype(np.int64)))
        else:
            columns.append(pa.array(np.ascontiguousarray(col)))
    names = list(COLUMNS)
    if labels is not None:
        columns.append(pa.array(labels, pa.string()))
        names.append(LABEL)
    return pa.Table.from_arrays(columns, names=names)


def flows_to_pandas(flows: FlowArrays) -> pd.DataFrame:
    """The flows as a pandas DataFrame with the canonical column names."""
    return flows_to_arrow(flows).to_pandas()


def empty_table() -> pa.Table:
    from flowsentinel.capture.meter import N_FEATURES, N_OI

    return flows_to_arrow(
        FlowArrays(
            np.empty((0, N_FEATURES)), np.empty((0, N_OI), np.int64), np.empty((0, 4), np.uint64)
        )
    )
