"""Turn finished-flow arrays into a table with the canonical CIC-IDS2017 column names.

Columns: the identifiers of :data:`~flowsentinel.core.schema.CIC_IDENTIFIERS` (``Flow ID``
is ``src-dst-sport-dport-protocol`` in the flow's direction, ``Timestamp`` the start time in UTC
with microseconds) then the 76 features of :data:`~flowsentinel.core.schema.CIC_FEATURES`,
so that :func:`flowsentinel.datasets.reader.read_file` reads the CSV back as the
TrafficLabelling dialect. Strings are built with Arrow compute kernels, not per row in Python.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowsentinel.capture.meter import OI_DPORT, OI_PROTO, OI_SPORT, OI_START, OI_V6, FlowArrays
from flowsentinel.core.schema import CIC_FEATURES, CIC_IDENTIFIERS, LABEL

if TYPE_CHECKING:  # pandas costs 0.2-0.3 s of start-up; tables convert through pyarrow
    import pandas as pd

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


_ARROW_TYPES: Final = {
    np.dtype(np.uint8): pa.uint8(),
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.float64): pa.float64(),
}


def _numeric(values: np.ndarray, type_: pa.DataType | None = None) -> pa.Array:
    """A numpy column as an Arrow array over the same memory (``pa.array`` on an ndarray
    imports pandas to look for pandas types: 0.15-0.3 s of a small capture's run)."""
    arr = np.ascontiguousarray(values)
    kind = type_ if type_ is not None else _ARROW_TYPES[arr.dtype]
    return pa.Array.from_buffers(kind, len(arr), [None, pa.py_buffer(arr)])


def _text(value: str) -> pa.Scalar:
    """A string scalar built from buffers (``pa.scalar`` and ``pa.array`` of Python values
    import pandas too)."""
    data = value.encode()
    offsets = np.array([0, len(data)], np.int32)
    one = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return one[0]


def _ip_strings(hi: np.ndarray, lo: np.ndarray, v6: np.ndarray) -> pa.Array:
    v4 = lo & np.uint64(0xFFFFFFFF)
    octets = [
        _numeric(((v4 >> np.uint64(sh)) & np.uint64(255)).astype(np.uint8)) for sh in (24, 16, 8, 0)
    ]
    text = pc.binary_join_element_wise(*[pc.cast(o, pa.string()) for o in octets], _text("."))
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
    sport = _numeric(ids[:, OI_SPORT])
    dport = _numeric(ids[:, OI_DPORT])
    proto = _numeric(ids[:, OI_PROTO])
    flow_id = pc.binary_join_element_wise(
        src, dst, pc.cast(sport, pa.string()), pc.cast(dport, pa.string()),
        pc.cast(proto, pa.string()), _text("-"),
    )  # fmt: skip
    # a cast prints "YYYY-MM-DD HH:MM:SS.ffffff" as strftime does, 30 times faster
    stamp = pc.cast(_numeric(ids[:, OI_START], pa.timestamp("us")), pa.string())
    columns: list[pa.Array] = [flow_id, src, sport, dst, dport, proto, stamp]
    for k, name in enumerate(CIC_FEATURES):
        col = feats[:, k]
        if name in INTEGER_FEATURES:
            columns.append(_numeric(col.astype(np.int64)))
        else:
            columns.append(_numeric(col))
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
