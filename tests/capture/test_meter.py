"""The meter's flow table: growing, shrinking and removing flows leave every flow's row as it
would be in a table that never moved (the features themselves: test_golden, test_parity)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from capture_sets import busy_scenario, same_flows, write_pcap

from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import FlowMeter
from flowsentinel.capture.stream import CaptureStats, decoded_batches


def meter_with(
    path: Path, capacity: int, *, squeeze: bool = False
) -> tuple[pd.DataFrame, list[int], dict[str, int]]:
    """The flows of ``path`` metered in batches of 64 packets by a meter of ``capacity``
    slots, and the table's capacity after each batch; ``squeeze``: after each batch, the
    table is resized to the smallest that holds its live flows (a shrink with rows in it)."""
    meter = FlowMeter(capacity=capacity)
    capacities = []
    for pk in decoded_batches(path, CaptureStats(), batch_packets=64):
        meter.add(pk)
        if squeeze:
            smallest = 1 << max(4, (meter.active_flows * 4 // 3 + 1).bit_length())
            meter._resize(smallest)
        capacities.append(meter.capacity)
    meter.flush()
    flows = flows_to_arrow(meter.take()).to_pandas()
    return flows, capacities, meter.counter_dict()


def test_flows_do_not_depend_on_how_the_table_grew_or_shrank(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=11, flows=3000, span_s=600))
    steady, steady_caps, steady_counts = meter_with(path, 1 << 14)
    assert set(steady_caps) == {1 << 14}  # never resized: the reference
    grown, grown_caps, grown_counts = meter_with(path, 16)
    assert grown_caps[0] < grown_caps[-1] and len(set(grown_caps)) >= 4  # grew several times
    shrunk, shrunk_caps, shrunk_counts = meter_with(path, 1 << 12, squeeze=True)
    assert shrunk_caps[-1] < max(shrunk_caps)
    # flows left by FIN, by timeout and by the sweeps all moved rows about
    assert min(steady_counts["closed_by_fin"], steady_counts["closed_by_timeout"]) > 0
    assert steady_counts["expired"] > 0
    assert grown_counts == steady_counts == shrunk_counts
    assert len(steady) > 1000
    same_flows(grown, steady)
    same_flows(shrunk, steady)
