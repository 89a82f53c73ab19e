"""Flow state and CIC-IDS2017 features: a numba hash table of live flows.

Rules (CICFlowMeter as used for CIC-IDS2017; see ``docs/capture.md``):

- flows are bidirectional, keyed by the 5-tuple; the first packet sets the direction;
- a packet arriving more than ``flow_timeout`` after its flow's *start* closes the flow (written
  only if it holds more than one packet) and starts a new one;
- a TCP packet with FIN is added to its flow, which is then closed (later packets of the
  teardown start a new flow);
- before any other packet is added, a gap above ``activity_timeout`` since the last active time
  ends an active period and records an idle period;
- times are integer microseconds; lengths are transport payload bytes; header lengths are the
  transport header (TCP options included); standard deviations use n-1.

Flows are emitted as they end. Flows whose start is older than two flow timeouts are swept
out when packet time enters a new second (their next packet would have closed them anyway; the
second timeout is grace for CIC's successor flow, which keeps the old direction), so memory is
bounded by the flows started within two flow timeouts, whatever the capture length,
and a flow's row depends on its own packets only (not on batching nor on other flows).

The table is an open-addressing index (linear probing, backward-shift deletion) over dense
rows of flow state: the index holds a row number and a home slot (16 bytes a slot), the rows
(872 bytes each) fill ``[0, active flows)``, a removed flow's row takes the last row. Growing
rebuilds only the index and copies the live rows, and a sweep walks the live rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from flowsentinel.capture.decode import Packets
from flowsentinel.capture.kernels import kernel
from flowsentinel.capture.quirks import (
    Q_ACT_SKIP_FIRST,
    Q_BULK_ZERO,
    Q_DIR_ADDR,
    Q_DROP_SINGLE,
    Q_FIRST_TWICE,
    Q_FLAG_ORDER,
    Q_FLAGS_FIRST,
    Q_INT_RATIO,
    Q_NO_FINAL_ACTIVE,
    Q_PADDING,
    Q_RATES_INF,
    Q_SUBFLOW_TOTALS,
    Q_TIMEOUT_DIR,
    Q_WIN_LAST,
    Quirks,
)
from flowsentinel.core.schema import CIC_FEATURES

N_FEATURES: Final = len(CIC_FEATURES)
assert N_FEATURES == 76

# ---- integer state columns (SLOT: where the flow's entry sits in the index)
SLOT, SPORT, DPORT, V6, PROTO, PORTS = 0, 1, 2, 3, 4, 5
START, LAST, FLAST, BLAST, ASTART, AEND = 6, 7, 8, 9, 10, 11
FN, BN, FBYTES, BBYTES, FHDR, BHDR = 12, 13, 14, 15, 16, 17
FPSH, BPSH, FURG, BURG = 18, 19, 20, 21
FLAG0 = 22  # 8 columns: FIN SYN RST PSH ACK URG CWR ECE
ACT, MINSEG, WINF, WINB, SFCOUNT, SFLAST = 30, 31, 32, 33, 34, 35
BULKF, BULKB = (
    36,
    44,
)  # 8 columns each: dur pkts size states pkt_helper start_helper size_helper last
NI: Final = 52
# ---- index columns (int64): the row of the flow plus one (0: a free slot), its home slot
IX_ROW, IX_HOME = 0, 1
# ---- key / address columns (uint64): canonical key then the flow's src/dst
KAHI, KALO, KBHI, KBLO, SHI, SLO, DHI, DLO = 0, 1, 2, 3, 4, 5, 6, 7
NK: Final = 8
# ---- running statistics (float64): 6 columns each: n mean m2 min max sum
ST_LEN, ST_FWD, ST_BWD, ST_IAT, ST_FIAT, ST_BIAT, ST_ACT, ST_IDLE = 0, 6, 12, 18, 24, 30, 36, 42
NF: Final = 48
# ---- flows started more than two flow timeouts before a whole second of packet time are swept
# when the first packet of that second arrives: the sweeps depend on packet times only (not on
# batches nor on other flows), so a flow's rows depend on its own packets alone. That is what
# lets a set of captures be metered in parallel, partitioned by flow key, and stay exact.
SWEEP_EVERY_US: Final = 1_000_000
# ---- meter counters
MC_FIN, MC_TIMEOUT, MC_SWEPT, MC_END, MC_DROPPED = 0, 1, 2, 3, 4
MC_NAMES: Final = ("closed_by_fin", "closed_by_timeout", "expired", "open_at_end", "single_dropped")
# ---- identifier columns of an emitted flow (int64): sport dport proto start v6
OI_SPORT, OI_DPORT, OI_PROTO, OI_START, OI_V6 = 0, 1, 2, 3, 4
N_OI: Final = 5

# TCP flag bits in the column order FIN SYN RST PSH ACK URG CWR ECE
_FLAG_BITS = (1, 2, 4, 8, 16, 32, 128, 64)
# Java HashMap iteration order of the keys (RST PSH ECE SYN ACK FIN URG CWR) as column indexes
_HASHMAP_ORDER = (2, 3, 7, 1, 4, 0, 5, 6)
_FLAG_BITS_ARR = np.array(_FLAG_BITS, np.int64)
_HASHMAP_ARR = np.array(_HASHMAP_ORDER, np.int64)


def _fi(name: str) -> int:
    return CIC_FEATURES.index(name)


F_DUR = _fi("Flow Duration")
F_TOT_FWD = _fi("Total Fwd Packets")
F_FWD_LEN = _fi("Fwd Packet Length Max")  # then Min Mean Std
F_BWD_LEN = _fi("Bwd Packet Length Max")
F_BYTES_S = _fi("Flow Bytes/s")
F_IAT = _fi("Flow IAT Mean")  # Mean Std Max Min
F_FIAT = _fi("Fwd IAT Total")  # Total Mean Std Max Min
F_BIAT = _fi("Bwd IAT Total")
F_FPSH = _fi("Fwd PSH Flags")  # Fwd PSH, Bwd PSH, Fwd URG, Bwd URG, Fwd Hdr, Bwd Hdr, Fwd/s, Bwd/s
F_MINLEN = _fi("Min Packet Length")  # Min Max Mean Std Variance
F_FLAGS = _fi("FIN Flag Count")
F_RATIO = _fi("Down/Up Ratio")  # Ratio, Avg Packet Size, Avg Fwd Seg, Avg Bwd Seg
F_BULK = _fi("Fwd Avg Bytes/Bulk")
F_SUBFLOW = _fi("Subflow Fwd Packets")
F_WIN = _fi("Init_Win_bytes_forward")  # winf winb act minseg
F_ACTIVE = _fi("Active Mean")  # Mean Std Max Min
F_IDLE = _fi("Idle Mean")


# ---------------------------------------------------------------------------------------------
# running statistics


@kernel(inline=True)
def _st_add(TF, s, b, x):  # pragma: no cover - numba
    n = TF[s, b] + 1.0
    TF[s, b] = n
    d = x - TF[s, b + 1]
    TF[s, b + 1] += d / n
    TF[s, b + 2] += d * (x - TF[s, b + 1])
    if n == 1.0:
        TF[s, b + 3] = x
        TF[s, b + 4] = x
    else:
        if x < TF[s, b + 3]:
            TF[s, b + 3] = x
        if x > TF[s, b + 4]:
            TF[s, b + 4] = x
    TF[s, b + 5] += x


@kernel(inline=True)
def _st_std(TF, s, b):  # pragma: no cover - numba
    n = TF[s, b]
    if n > 1.0:
        v = TF[s, b + 2] / (n - 1.0)
        return np.sqrt(v) if v > 0.0 else 0.0
    return 0.0


@kernel(inline=True)
def _st_var(TF, s, b):  # pragma: no cover - numba
    n = TF[s, b]
    if n > 1.0:
        v = TF[s, b + 2] / (n - 1.0)
        return v if v > 0.0 else 0.0
    return 0.0


# ---------------------------------------------------------------------------------------------
# flow updates


@kernel()
def _bulk(TI, s, base, other_last, t, size):  # pragma: no cover - numba
    # CICFlowMeter's bulk state machine (with the direction of each packet fixed)
    if other_last > TI[s, base + 5]:
        TI[s, base + 5] = 0
    if size <= 0:
        return
    if TI[s, base + 5] == 0:
        TI[s, base + 5] = t
        TI[s, base + 4] = 1
        TI[s, base + 6] = size
        TI[s, base + 7] = t
    elif (t - TI[s, base + 7]) / 1e6 > 1.0:
        TI[s, base + 5] = t
        TI[s, base + 7] = t
        TI[s, base + 4] = 1
        TI[s, base + 6] = size
    else:
        TI[s, base + 4] += 1
        TI[s, base + 6] += size
        if TI[s, base + 4] == 4:
            TI[s, base + 3] += 1
            TI[s, base + 1] += TI[s, base + 4]
            TI[s, base + 2] += TI[s, base + 6]
            TI[s, base + 0] += t - TI[s, base + 5]
        elif TI[s, base + 4] > 4:
            TI[s, base + 1] += 1
            TI[s, base + 2] += size
            TI[s, base + 0] += t - TI[s, base + 7]
        TI[s, base + 7] = t


@kernel()
def _init(
    TI, TK, TF, s, t, shi, slo, dhi, dlo, sport, dport, v6, plen, hdr, fl, win, q
):  # pragma: no cover - numba
    for k in range(NF):
        TF[s, k] = 0.0
    for k in range(START, NI):
        TI[s, k] = 0
    TK[s, SHI] = shi
    TK[s, SLO] = slo
    TK[s, DHI] = dhi
    TK[s, DLO] = dlo
    TI[s, SPORT] = sport
    TI[s, DPORT] = dport
    TI[s, V6] = v6
    TI[s, START] = t
    TI[s, LAST] = t
    TI[s, FLAST] = t
    TI[s, ASTART] = t
    TI[s, AEND] = t
    x = float(plen)
    _st_add(TF, s, ST_LEN, x)
    if q[Q_FIRST_TWICE]:
        _st_add(TF, s, ST_LEN, x)
    _st_add(TF, s, ST_FWD, x)
    TI[s, FN] = 1
    TI[s, FBYTES] = plen
    TI[s, FHDR] = hdr
    TI[s, MINSEG] = hdr
    TI[s, WINF] = win
    TI[s, WINB] = -1
    for k in range(8):
        TI[s, FLAG0 + k] = 1 if (fl & _FLAG_BITS_ARR[k]) else 0
    TI[s, FPSH] = (fl >> 3) & 1
    TI[s, FURG] = (fl >> 5) & 1
    if q[Q_ACT_SKIP_FIRST] == 0 and plen >= 1:
        TI[s, ACT] = 1
    TI[s, SFCOUNT] = 1
    TI[s, SFLAST] = t
    if q[Q_BULK_ZERO] == 0:
        _bulk(TI, s, BULKF, 0, t, plen)


@kernel()
def _add(TI, TF, s, fwd, t, plen, hdr, fl, win, q):  # pragma: no cover - numba
    x = float(plen)
    _st_add(TF, s, ST_LEN, x)
    if fwd:
        if plen >= 1:
            TI[s, ACT] += 1
        _st_add(TF, s, ST_FWD, x)
        TI[s, FHDR] += hdr
        TI[s, FN] += 1
        TI[s, FBYTES] += plen
        if TI[s, FN] > 1:
            _st_add(TF, s, ST_FIAT, float(t - TI[s, FLAST]))
        TI[s, FLAST] = t
        if hdr < TI[s, MINSEG]:
            TI[s, MINSEG] = hdr
        if q[Q_FLAGS_FIRST] == 0:
            TI[s, FPSH] += (fl >> 3) & 1
            TI[s, FURG] += (fl >> 5) & 1
        if q[Q_BULK_ZERO] == 0:
            _bulk(TI, s, BULKF, TI[s, BULKB + 7], t, plen)
    else:
        _st_add(TF, s, ST_BWD, x)
        if q[Q_WIN_LAST] or TI[s, BN] == 0:
            TI[s, WINB] = win
        TI[s, BHDR] += hdr
        TI[s, BN] += 1
        TI[s, BBYTES] += plen
        if TI[s, BN] > 1:
            _st_add(TF, s, ST_BIAT, float(t - TI[s, BLAST]))
        TI[s, BLAST] = t
        if q[Q_FLAGS_FIRST] == 0:
            TI[s, BPSH] += (fl >> 3) & 1
            TI[s, BURG] += (fl >> 5) & 1
        if q[Q_BULK_ZERO] == 0:
            _bulk(TI, s, BULKB, TI[s, BULKF + 7], t, plen)
    if q[Q_FLAGS_FIRST] == 0:
        for k in range(8):
            if fl & _FLAG_BITS_ARR[k]:
                TI[s, FLAG0 + k] += 1
    _st_add(TF, s, ST_IAT, float(t - TI[s, LAST]))
    TI[s, LAST] = t
    if q[Q_SUBFLOW_TOTALS] == 0 and t - TI[s, SFLAST] > 1_000_000:
        TI[s, SFCOUNT] += 1
    TI[s, SFLAST] = t


@kernel(inline=True)
def _active_idle(TI, TF, s, t, act_to):  # pragma: no cover - numba
    if t - TI[s, AEND] > act_to:
        if TI[s, AEND] - TI[s, ASTART] > 0:
            _st_add(TF, s, ST_ACT, float(TI[s, AEND] - TI[s, ASTART]))
        _st_add(TF, s, ST_IDLE, float(t - TI[s, AEND]))
        TI[s, ASTART] = t
        TI[s, AEND] = t
    else:
        TI[s, AEND] = t


@kernel()
def _put_stats4(row, at, TF, s, b):  # mean std max min, 0 when empty  # pragma: no cover
    if TF[s, b] > 0:
        row[at] = TF[s, b + 1]
        row[at + 1] = _st_std(TF, s, b)
        row[at + 2] = TF[s, b + 4]
        row[at + 3] = TF[s, b + 3]
    else:
        row[at] = 0.0
        row[at + 1] = 0.0
        row[at + 2] = 0.0
        row[at + 3] = 0.0


@kernel()
def _rate(num, dur, q):  # pragma: no cover - numba
    if dur != 0:
        return num / (dur / 1e6)
    if q[Q_RATES_INF]:
        return np.inf if num > 0 else np.nan
    return 0.0


@kernel()
def _emit(TI, TK, TF, s, q, OF, OI, OK, o):  # noqa: PLR0915  # pragma: no cover - numba
    if q[Q_NO_FINAL_ACTIVE] == 0 and TI[s, AEND] - TI[s, ASTART] > 0:
        _st_add(TF, s, ST_ACT, float(TI[s, AEND] - TI[s, ASTART]))
    row = OF[o]
    fN = TI[s, FN]
    bN = TI[s, BN]
    cnt = fN + bN
    dur = TI[s, LAST] - TI[s, START]
    row[F_DUR] = dur
    row[F_TOT_FWD] = fN
    row[F_TOT_FWD + 1] = bN
    row[F_TOT_FWD + 2] = TF[s, ST_FWD + 5]
    row[F_TOT_FWD + 3] = TF[s, ST_BWD + 5]
    # Max Min Mean Std per direction
    for at, b in ((F_FWD_LEN, ST_FWD), (F_BWD_LEN, ST_BWD)):
        if TF[s, b] > 0:
            row[at] = TF[s, b + 4]
            row[at + 1] = TF[s, b + 3]
            row[at + 2] = TF[s, b + 1]
            row[at + 3] = _st_std(TF, s, b)
        else:
            row[at] = 0.0
            row[at + 1] = 0.0
            row[at + 2] = 0.0
            row[at + 3] = 0.0
    row[F_BYTES_S] = _rate(float(TI[s, FBYTES] + TI[s, BBYTES]), dur, q)
    row[F_BYTES_S + 1] = _rate(float(cnt), dur, q)
    _put_stats4(row, F_IAT, TF, s, ST_IAT)
    for at, b, nn in ((F_FIAT, ST_FIAT, fN), (F_BIAT, ST_BIAT, bN)):
        if nn > 1 and TF[s, b] > 0:
            row[at] = TF[s, b + 5]
            row[at + 1] = TF[s, b + 1]
            row[at + 2] = _st_std(TF, s, b)
            row[at + 3] = TF[s, b + 4]
            row[at + 4] = TF[s, b + 3]
        else:
            for k in range(5):
                row[at + k] = 0.0
    row[F_FPSH] = TI[s, FPSH]
    row[F_FPSH + 1] = TI[s, BPSH]
    row[F_FPSH + 2] = TI[s, FURG]
    row[F_FPSH + 3] = TI[s, BURG]
    row[F_FPSH + 4] = TI[s, FHDR]
    row[F_FPSH + 5] = TI[s, BHDR]
    row[F_FPSH + 6] = fN / (dur / 1e6) if dur > 0 else 0.0
    row[F_FPSH + 7] = bN / (dur / 1e6) if dur > 0 else 0.0
    if TF[s, ST_LEN] > 0:
        row[F_MINLEN] = TF[s, ST_LEN + 3]
        row[F_MINLEN + 1] = TF[s, ST_LEN + 4]
        row[F_MINLEN + 2] = TF[s, ST_LEN + 1]
        row[F_MINLEN + 3] = _st_std(TF, s, ST_LEN)
        row[F_MINLEN + 4] = _st_var(TF, s, ST_LEN)
    else:
        for k in range(5):
            row[F_MINLEN + k] = 0.0
    for k in range(8):
        src = _HASHMAP_ARR[k] if q[Q_FLAG_ORDER] else k
        row[F_FLAGS + k] = TI[s, FLAG0 + src]
    if fN > 0:
        row[F_RATIO] = (bN // fN) if q[Q_INT_RATIO] else bN / fN
    else:
        row[F_RATIO] = 0.0
    row[F_RATIO + 1] = TF[s, ST_LEN + 5] / cnt if cnt > 0 else 0.0
    row[F_RATIO + 2] = TI[s, FBYTES] / fN if fN > 0 else 0.0
    row[F_RATIO + 3] = TI[s, BBYTES] / bN if bN > 0 else 0.0
    for d in range(2):
        base = BULKF if d == 0 else BULKB
        at = F_BULK + 3 * d
        states = TI[s, base + 3]
        if q[Q_BULK_ZERO] == 0 and states > 0:
            row[at] = TI[s, base + 2] // states
            row[at + 1] = TI[s, base + 1] // states
        else:
            row[at] = 0.0
            row[at + 1] = 0.0
        bdur = TI[s, base + 0]
        if q[Q_BULK_ZERO] == 0 and bdur != 0:
            row[at + 2] = np.floor(TI[s, base + 2] / (bdur / 1e6))
        else:
            row[at + 2] = 0.0
    sf = 1 if q[Q_SUBFLOW_TOTALS] else max(TI[s, SFCOUNT], 1)
    row[F_SUBFLOW] = fN // sf
    row[F_SUBFLOW + 1] = TI[s, FBYTES] // sf
    row[F_SUBFLOW + 2] = bN // sf
    row[F_SUBFLOW + 3] = TI[s, BBYTES] // sf
    row[F_WIN] = TI[s, WINF]
    row[F_WIN + 1] = TI[s, WINB]
    row[F_WIN + 2] = TI[s, ACT]
    row[F_WIN + 3] = TI[s, MINSEG]
    _put_stats4(row, F_ACTIVE, TF, s, ST_ACT)
    _put_stats4(row, F_IDLE, TF, s, ST_IDLE)
    OI[o, OI_SPORT] = TI[s, SPORT]
    OI[o, OI_DPORT] = TI[s, DPORT]
    OI[o, OI_PROTO] = TI[s, PROTO]
    OI[o, OI_START] = TI[s, START]
    OI[o, OI_V6] = TI[s, V6]
    OK[o, 0] = TK[s, SHI]
    OK[o, 1] = TK[s, SLO]
    OK[o, 2] = TK[s, DHI]
    OK[o, 3] = TK[s, DLO]


# ---------------------------------------------------------------------------------------------
# hash table


@kernel(inline=True)
def _hash(ahi, alo, bhi, blo, ports, proto):  # pragma: no cover - numba
    h = alo * np.uint64(0x9E3779B97F4A7C15)
    h ^= blo * np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= ahi ^ (bhi >> np.uint64(1)) ^ (np.uint64(ports) << np.uint64(8)) ^ np.uint64(proto)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h


@kernel()
def _unlink(IX, TI, i, mask):  # backward-shift deletion (linear probing)  # pragma: no cover
    while True:
        IX[i, IX_ROW] = 0
        j = i
        while True:
            j = (j + 1) & mask
            if IX[j, IX_ROW] == 0:
                return
            k = IX[j, IX_HOME]
            if i <= j:
                if i < k <= j:
                    continue
            elif k > i or k <= j:
                continue
            break
        IX[i, IX_ROW] = IX[j, IX_ROW]
        IX[i, IX_HOME] = k
        TI[IX[i, IX_ROW] - 1, SLOT] = i
        i = j


@kernel()
def _remove(IX, TI, TK, TF, r, used):  # pragma: no cover - numba
    """Free row ``r``: unlink its index entry, then move the last row into it."""
    _unlink(IX, TI, TI[r, SLOT], IX.shape[0] - 1)
    last = used[0] - 1
    if r != last:
        TI[r, :] = TI[last, :]
        TK[r, :] = TK[last, :]
        TF[r, :] = TF[last, :]
        IX[TI[r, SLOT], IX_ROW] = r + 1
    used[0] = last


@kernel("void(int64[:, ::1], int64[:, ::1], uint64[:, ::1], int64)")
def _reindex(IX, TI, TK, n):  # pragma: no cover - numba
    """Enter rows [0, n) into the empty index ``IX``."""
    mask = IX.shape[0] - 1
    for r in range(n):
        h = _hash(TK[r, KAHI], TK[r, KALO], TK[r, KBHI], TK[r, KBLO], TI[r, PORTS], TI[r, PROTO])
        home = np.int64(h & np.uint64(mask))
        j = home
        while IX[j, IX_ROW]:
            j = (j + 1) & mask
        IX[j, IX_ROW] = r + 1
        IX[j, IX_HOME] = home
        TI[r, SLOT] = j


@kernel(
    "UniTuple(int64, 3)(int64[:], int8[:], int8[:], uint64[:], uint64[:], uint64[:], "
    "uint64[:], int32[:], int32[:], int32[:], int32[:], int32[:], int32[:], int32[:], "
    "int32[:], int64, int64[:, ::1], int64[:, ::1], uint64[:, ::1], float64[:, ::1], int64[:], "
    "int64[:], int64, int64, float64[:, ::1], int64[:, ::1], uint64[:, ::1], int64, int64[:], "
    "int64[:])"
)
def _process(ts, reason, v6, shi, slo, dhi, dlo, sp, dp, pr, pay, payf, hdr, flg, win, start,  # noqa: PLR0915
             IX, TI, TK, TF, used, q, flow_to, act_to, OF, OI, OK, o, mc, tick):  # fmt: skip
    """Meter packets [start:]; returns (next packet, rows emitted, status).

    status 0 = batch done, 1 = the table needs to grow, 2 = the output buffer is full,
    3 = the next packet is at or past ``tick[0]``: sweep, then call again.
    """
    cap = IX.shape[0]
    mask = cap - 1
    n = ts.shape[0]
    i = start
    pad = q[Q_PADDING]
    while i < n:
        if reason[i] != 0:
            i += 1
            continue
        full = o >= OF.shape[0]
        if full or ts[i] >= tick[0]:  # drain the output first, or sweep
            return i, o, 2 if full else 3
        a_hi, a_lo, b_hi, b_lo = shi[i], slo[i], dhi[i], dlo[i]
        pa, pb = np.int64(sp[i]), np.int64(dp[i])
        if (a_hi > b_hi) or (a_hi == b_hi and (a_lo > b_lo or (a_lo == b_lo and pa > pb))):
            a_hi, a_lo, b_hi, b_lo = b_hi, b_lo, a_hi, a_lo
            pa, pb = pb, pa
        ports = (pa << 16) | pb
        proto = np.int64(pr[i])
        home = np.int64(_hash(a_hi, a_lo, b_hi, b_lo, ports, proto) & np.uint64(mask))
        j = home
        s = np.int64(0)
        found = False
        while IX[j, IX_ROW]:
            s = IX[j, IX_ROW] - 1
            if (
                TI[s, PORTS] == ports
                and TI[s, PROTO] == proto
                and TK[s, KALO] == a_lo
                and TK[s, KBLO] == b_lo
                and TK[s, KAHI] == a_hi
                and TK[s, KBHI] == b_hi
            ):
                found = True
                break
            j = (j + 1) & mask
        t = ts[i]
        plen = np.int64(payf[i]) if pad else np.int64(pay[i])
        h_ = np.int64(hdr[i])
        fl = np.int64(flg[i])
        w = np.int64(win[i])
        if found:
            if t - TI[s, START] > flow_to:
                if TI[s, FN] + TI[s, BN] > 1 or q[Q_DROP_SINGLE] == 0:
                    _emit(TI, TK, TF, s, q, OF, OI, OK, o)
                    o += 1
                    mc[MC_TIMEOUT] += 1
                else:
                    mc[MC_DROPPED] += 1
                keep = q[Q_TIMEOUT_DIR] != 0
                o_shi, o_slo, o_dhi, o_dlo = TK[s, SHI], TK[s, SLO], TK[s, DHI], TK[s, DLO]
                o_sp, o_dp = TI[s, SPORT], TI[s, DPORT]
                _init(TI, TK, TF, s, t, shi[i], slo[i], dhi[i], dlo[i], sp[i], dp[i], v6[i],
                      plen, h_, fl, w, q)  # fmt: skip
                if keep:
                    TK[s, SHI], TK[s, SLO], TK[s, DHI], TK[s, DLO] = o_shi, o_slo, o_dhi, o_dlo
                    TI[s, SPORT], TI[s, DPORT] = o_sp, o_dp
            else:
                if q[Q_DIR_ADDR]:
                    fwd = shi[i] == TK[s, SHI] and slo[i] == TK[s, SLO]
                else:
                    fwd = shi[i] == TK[s, SHI] and slo[i] == TK[s, SLO] and sp[i] == TI[s, SPORT]
                is_fin = proto == 6 and (fl & 1) != 0
                if not is_fin or q[Q_NO_FINAL_ACTIVE] == 0:
                    _active_idle(TI, TF, s, t, act_to)
                _add(TI, TF, s, fwd, t, plen, h_, fl, w, q)
                if is_fin:
                    _emit(TI, TK, TF, s, q, OF, OI, OK, o)
                    o += 1
                    mc[MC_FIN] += 1
                    _remove(IX, TI, TK, TF, s, used)
        else:
            if (used[0] + 1) * 4 > cap * 3:  # load factor 3/4
                return i, o, 1
            s = used[0]
            IX[j, IX_ROW] = s + 1
            IX[j, IX_HOME] = home
            TI[s, SLOT] = j
            TI[s, PORTS] = ports
            TI[s, PROTO] = proto
            TK[s, KAHI], TK[s, KALO], TK[s, KBHI], TK[s, KBLO] = a_hi, a_lo, b_hi, b_lo
            _init(TI, TK, TF, s, t, shi[i], slo[i], dhi[i], dlo[i], sp[i], dp[i], v6[i],
                  plen, h_, fl, w, q)  # fmt: skip
            used[0] += 1
        i += 1
    return i, o, 0


@kernel(
    "UniTuple(int64, 2)(int64[:, ::1], int64[:, ::1], uint64[:, ::1], float64[:, ::1], int64[:], "
    "int64[:], int64, int64, boolean, float64[:, ::1], int64[:, ::1], uint64[:, ::1], int64, "
    "int64[:])"
)
def _sweep(
    IX, TI, TK, TF, used, q, now, flow_to, everything, OF, OI, OK, o, mc
):  # pragma: no cover
    """Emit (and remove) flows started more than flow_to before now, or all if everything."""
    s = 0
    while s < used[0]:
        if everything or now - TI[s, START] > flow_to:
            if TI[s, FN] + TI[s, BN] > 1 or q[Q_DROP_SINGLE] == 0:
                if o >= OF.shape[0]:
                    return o, 2
                _emit(TI, TK, TF, s, q, OF, OI, OK, o)
                o += 1
                mc[MC_END if everything else MC_SWEPT] += 1
            else:
                mc[MC_DROPPED] += 1
            _remove(IX, TI, TK, TF, s, used)
            continue  # the row now holds the flow of the last row: look at it again
        s += 1
    return o, 0


# ---------------------------------------------------------------------------------------------


@dataclass
class MeterConfig:
    """Timeouts (microseconds, as CICFlowMeter) and the quirks to reproduce."""

    flow_timeout_us: int = 120_000_000
    activity_timeout_us: int = 5_000_000
    quirks: Quirks = field(default_factory=Quirks)


@dataclass
class FlowArrays:
    """Finished flows: features (n × 76, CIC_FEATURES order), identifiers and addresses."""

    features: np.ndarray  # float64 (n, 76)
    ids: np.ndarray  # int64 (n, 5): sport dport proto start_us v6
    addrs: np.ndarray  # uint64 (n, 4): src_hi src_lo dst_hi dst_lo

    def __len__(self) -> int:
        return int(self.features.shape[0])


class FlowMeter:
    """Feed decoded packet batches, collect finished flows (see the module docstring)."""

    def __init__(self, config: MeterConfig | None = None, *, capacity: int = 1 << 14,
                 out_rows: int = 1 << 14) -> None:  # fmt: skip
        self.config = config or MeterConfig()
        self.q = self.config.quirks.as_array()
        self.used = np.zeros(1, np.int64)
        self.TI = np.empty((0, NI), np.int64)
        self.TK = np.empty((0, NK), np.uint64)
        self.TF = np.empty((0, NF), np.float64)
        self._resize(1 << max(4, (capacity - 1).bit_length()))
        self.out_rows = out_rows
        self._new_out()
        self.counters = np.zeros(len(MC_NAMES), np.int64)
        self.last_ts = 0
        self.tick = np.full(1, np.iinfo(np.int64).min, np.int64)  # next sweep time (µs)
        self._done: list[FlowArrays] = []

    def _resize(self, cap: int) -> None:
        """An index of ``cap`` slots, and room for the flows it may hold (a load factor of
        3/4): the live rows are copied, and the rows' memory is touched only as flows come."""
        n = int(self.used[0])
        rows = cap * 3 // 4 + 1
        self.IX = np.zeros((cap, 2), np.int64)
        for name, width, dtype in (("TI", NI, np.int64), ("TK", NK, np.uint64),
                                   ("TF", NF, np.float64)):  # fmt: skip
            table = np.empty((rows, width), dtype)
            table[:n] = getattr(self, name)[:n]
            setattr(self, name, table)
        _reindex(self.IX, self.TI, self.TK, n)

    def _new_out(self) -> None:
        self.OF = np.empty((self.out_rows, N_FEATURES), np.float64)
        self.OI = np.empty((self.out_rows, N_OI), np.int64)
        self.OK = np.empty((self.out_rows, 4), np.uint64)
        self.o = 0

    def _drain(self) -> None:
        if self.o:
            o = self.o
            self._done.append(
                FlowArrays(self.OF[:o].copy(), self.OI[:o].copy(), self.OK[:o].copy())
            )
            self.o = 0

    @property
    def active_flows(self) -> int:
        return int(self.used[0])

    @property
    def capacity(self) -> int:
        return int(self.IX.shape[0])

    def add(self, pk: Packets) -> None:
        """Meter one decoded batch (packets in capture order)."""
        if len(pk) == 0:
            return
        cfg = self.config
        i = 0
        while True:
            i, self.o, status = _process(
                pk.ts, pk.reason, pk.v6, pk.src_hi, pk.src_lo, pk.dst_hi, pk.dst_lo, pk.sport,
                pk.dport, pk.proto, pk.payload, pk.payload_frame, pk.hdr, pk.flags, pk.win, i,
                self.IX, self.TI, self.TK, self.TF, self.used, self.q, cfg.flow_timeout_us,
                cfg.activity_timeout_us, self.OF, self.OI, self.OK, self.o, self.counters,
                self.tick,
            )  # fmt: skip
            if status == 0:
                break
            if status == 1:
                self._resize(self.capacity * 2)
            elif status == 2:
                self._drain()
            else:
                now = int(pk.ts[i]) // SWEEP_EVERY_US * SWEEP_EVERY_US
                # one flow timeout of grace: a flow's next packet within two timeouts of its
                # start still finds it (CIC's successor flow keeps its direction, a quirk)
                self._sweep(now - cfg.flow_timeout_us, everything=False)
                self.tick[0] = now + SWEEP_EVERY_US
        ok = pk.reason == 0
        if ok.any():
            self.last_ts = max(self.last_ts, int(pk.ts[ok].max()))

    def expire(self, now_us: int | None = None) -> None:
        """Emit flows started more than one flow timeout before ``now_us`` (default: the
        latest packet time seen)."""
        now = self.last_ts if now_us is None else now_us
        self._sweep(now, everything=False)

    def flush(self) -> None:
        """Emit every flow still open (end of the capture)."""
        self._sweep(0, everything=True)

    def _sweep(self, now: int, everything: bool) -> None:
        while True:
            self.o, status = _sweep(
                self.IX, self.TI, self.TK, self.TF, self.used, self.q, now,
                self.config.flow_timeout_us, everything, self.OF, self.OI, self.OK, self.o,
                self.counters,
            )  # fmt: skip
            if status == 0:
                break
            self._drain()
        # shrink an oversized table once it is mostly empty (bursts of flows)
        cap = self.capacity
        if cap > (1 << 16) and self.used[0] * 8 < cap:
            new_cap = max(1 << 14, 1 << int(max(1, self.used[0] * 4)).bit_length())
            if new_cap < cap:
                self._resize(new_cap)

    def take_parts(self) -> list[FlowArrays]:
        """The flows finished since the last call, in chunks (bounded memory at flush)."""
        self._drain()
        parts, self._done = self._done, []
        return parts

    def take(self) -> FlowArrays:
        """The flows finished since the last call, in the order they ended."""
        parts = self.take_parts()
        if not parts:
            return FlowArrays(
                np.empty((0, N_FEATURES)),
                np.empty((0, N_OI), np.int64),
                np.empty((0, 4), np.uint64),
            )
        if len(parts) == 1:
            return parts[0]
        return FlowArrays(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.addrs for p in parts]),
        )

    def counter_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in zip(MC_NAMES, self.counters.tolist(), strict=True)}
