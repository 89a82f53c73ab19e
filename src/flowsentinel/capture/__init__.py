"""Packet captures → CIC-IDS2017 flows: a CICFlowMeter-2017-exact flow meter.

Public streaming API (what ``scan``, ``watch`` and ``POST /v1/scan`` call):

- :func:`iter_flow_batches` (path, bytes or binary stream → DataFrames of finished flows),
- :func:`iter_live_flow_batches` (a network interface → DataFrames, live),
- :func:`extract_flows` (a whole capture → one DataFrame + :class:`CaptureStats`),
- :func:`write_flows` (a capture → CSV / parquet),
- :func:`check_damage` (after reading: too much of the file unreadable → one-line error).
"""

from flowsentinel.capture.frame import COLUMNS, flows_to_arrow, flows_to_pandas
from flowsentinel.capture.live import iter_live_flow_batches
from flowsentinel.capture.meter import FlowArrays, FlowMeter, MeterConfig
from flowsentinel.capture.output import write_flows
from flowsentinel.capture.pcap import ReadCounters, iter_records
from flowsentinel.capture.quirks import Quirks
from flowsentinel.capture.stream import (
    MAX_DAMAGED_SHARE,
    CaptureSource,
    CaptureStats,
    DamagedCaptureError,
    check_damage,
    extract_flows,
    iter_flow_arrays,
    iter_flow_batches,
)

__all__ = [
    "COLUMNS",
    "MAX_DAMAGED_SHARE",
    "CaptureSource",
    "CaptureStats",
    "DamagedCaptureError",
    "FlowArrays",
    "FlowMeter",
    "MeterConfig",
    "Quirks",
    "ReadCounters",
    "check_damage",
    "extract_flows",
    "flows_to_arrow",
    "flows_to_pandas",
    "iter_flow_arrays",
    "iter_flow_batches",
    "iter_live_flow_batches",
    "iter_records",
    "write_flows",
]
