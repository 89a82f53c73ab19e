"""The known quirks of CICFlowMeter-2017, each behind a switch that is on by default.

A model trained on CIC-IDS2017 learned the features *as that tool computed them*, bugs
included, so by default the meter reproduces them. ``Quirks.none()`` gives the corrected
definitions. Every switch is documented in ``docs/capture.md`` with the evidence for it (the
CICFlowMeter source and the published CIC-IDS2017 rows).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Quirks:
    """CICFlowMeter-2017 behaviours to reproduce (``True``) or correct (``False``)."""

    #: the first packet's payload length enters the all-packet length statistics twice
    #: (Min/Max/Mean/Std/Variance Packet Length, Average Packet Size)
    first_packet_counted_twice: bool = True
    #: the eight flag counts and Fwd PSH/URG Flags come from the first packet only (0 or 1);
    #: Bwd PSH/URG Flags are always 0
    flags_from_first_packet: bool = True
    #: the flag counts are written in Java HashMap order under the header's names: column
    #: "FIN Flag Count" holds RST, "SYN" holds PSH, "RST" holds ECE, "PSH" holds SYN, "ACK"
    #: holds ACK, "URG" holds FIN, "CWE" holds URG, "ECE" holds CWR
    flag_columns_hashmap_order: bool = True
    #: Down/Up Ratio is the integer quotient backward // forward packets
    integer_down_up_ratio: bool = True
    #: Init_Win_bytes_backward is the window of the *last* backward packet
    init_win_backward_last_packet: bool = True
    #: act_data_pkt_fwd does not count the first packet
    act_data_skips_first_packet: bool = True
    #: the six Bulk features are always 0
    bulk_features_zero: bool = True
    #: the Subflow features equal the totals (one subflow per flow)
    subflow_equals_totals: bool = True
    #: payload lengths run to the end of the frame: Ethernet padding of short frames counts
    payload_includes_padding: bool = True
    #: a packet is forward when its source *address* is the flow's (ports ignored): both
    #: directions of a connection between two ports of one host are "forward"
    direction_by_address_only: bool = True
    #: the flow that follows a flow timeout keeps the old flow's source/destination
    timeout_keeps_direction: bool = True
    #: flows of a single packet are never written
    drop_single_packet_flows: bool = True
    #: Flow Bytes/s and Flow Packets/s are Infinity (or NaN) when the duration is 0
    rates_infinite_at_zero_duration: bool = True
    #: the last active period of a flow is never recorded (Active stats miss it), and the
    #: closing FIN packet does not update the activity state
    no_final_active_period: bool = True

    @classmethod
    def none(cls) -> Quirks:
        """Every quirk switched off: the corrected feature definitions."""
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def as_array(self) -> np.ndarray:
        """The switches as an int64 array in field order (what the numba kernel reads)."""
        return np.array([int(getattr(self, n)) for n in self.names()], dtype=np.int64)

    def replace(self, **changes: bool) -> Quirks:
        unknown = set(changes) - set(self.names())
        if unknown:
            raise ValueError(f"unknown quirk(s): {', '.join(sorted(unknown))}")
        values = {n: getattr(self, n) for n in self.names()}
        values.update(changes)
        return Quirks(**values)


# indices into Quirks.as_array() (kept in sync with the field order by a test)
Q_FIRST_TWICE = 0
Q_FLAGS_FIRST = 1
Q_FLAG_ORDER = 2
Q_INT_RATIO = 3
Q_WIN_LAST = 4
Q_ACT_SKIP_FIRST = 5
Q_BULK_ZERO = 6
Q_SUBFLOW_TOTALS = 7
Q_PADDING = 8
Q_DIR_ADDR = 9
Q_TIMEOUT_DIR = 10
Q_DROP_SINGLE = 11
Q_RATES_INF = 12
Q_NO_FINAL_ACTIVE = 13
