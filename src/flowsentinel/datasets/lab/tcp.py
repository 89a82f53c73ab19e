"""One TCP connection as seen at the capture point: the client's path lies on one side of it,
the server's path on the other (a LAN server's path is short, an internet server's long).

Negotiates options from both stacks (MSS, SACK, timestamps, window scale), segments data by the
effective MSS (1448 bytes with timestamps), grows the congestion window by RTT rounds, delays
ACKs (every second segment, or the stack's timer), advertises growing receive windows (window
updates), loses segments on lossy paths (a retransmission and duplicate ACKs with SACK blocks)
and ends with FIN, RST, a half-close or not at all. Bulk transfers are built as arrays.
"""

from __future__ import annotations

import numpy as np

from flowsentinel.datasets.lab.base import T0, Endpoint, Lab
from flowsentinel.datasets.lab.stacks import delays, syn_options
from flowsentinel.datasets.lab.wire import ACK, CWR, ECE, FIN, PSH, RST, SYN, TCP

_EST_TS = b"\x01\x01\x08\x0a" + b"\0" * 8  # NOP NOP TS
_SACK_BLOCK = b"\x01\x01\x05\x0a" + b"\0" * 8  # NOP NOP SACK (one block)


class Conn:
    """A TCP connection between ``c`` (client) and ``s`` (server); times are capture times."""

    def __init__(self, lab: Lab, c: Endpoint, cport: int, s: Endpoint, sport: int) -> None:
        self.lab, self.c, self.s, self.cp, self.sp = lab, c, s, cport, sport
        rng = lab.rng
        self.cseq = int(rng.integers(1, 2**32 - 1))
        self.sseq = int(rng.integers(1, 2**32 - 1))
        cs, ss = c.stack, s.stack
        self.ts = cs.timestamps and ss.timestamps
        self.sack = cs.sack and ss.sack
        ws = cs.wscale >= 0 and ss.wscale >= 0
        self.cws = cs.wscale if ws else 0
        self.sws = ss.wscale if ws else 0
        clamp = c.path.mss_clamp or 65535
        v6 = 20 if ":" in c.ip else 0  # the IPv6 header is 20 bytes longer: MSS 1440
        self.cmss = min(cs.mss, clamp) - v6
        self.smss = min(ss.mss, clamp) - v6
        self.seg = min(self.cmss, self.smss) - (12 if self.ts else 0)
        self.crwnd = int(rng.choice(cs.syn_wins))
        self.srwnd = int(rng.choice(ss.syn_wins))
        self.tsc = int(rng.integers(1, 2**31))
        self.tss = int(rng.integers(1, 2**31))
        pk = lab.pk
        self.est = pk.option(_EST_TS, 4) if self.ts else 0
        self.dup_opt = (
            (pk.option(_EST_TS + _SACK_BLOCK, 4) if self.ts else pk.option(_SACK_BLOCK))
            if self.sack
            else self.est
        )
        self.rtt = c.path.rtt_us + s.path.rtt_us

    # -- single packets -------------------------------------------------------------------

    def _win(self, from_client: bool) -> int:
        """The window field a side advertises (its receive window, scaled)."""
        return min(65535, (self.crwnd >> self.cws) if from_client else (self.srwnd >> self.sws))

    def pkt(
        self,
        t: int,
        from_client: bool,
        flags: int,
        plen: int = 0,
        head: int = 0,
        opt: int = -1,
        seq: int | None = None,
        win: int | None = None,
    ) -> None:
        """One segment; ``seq`` defaults to the sender's next sequence number."""
        a, b = (self.c, self.s) if from_client else (self.s, self.c)
        ap, bp = (self.cp, self.sp) if from_client else (self.sp, self.cp)
        mine, peer = (self.cseq, self.sseq) if from_client else (self.sseq, self.cseq)
        tsv, tse = (self.tsc, self.tss) if from_client else (self.tss, self.tsc)
        ms = (t - T0) // 1000
        self.lab.pk.row(
            t,
            a.hid,
            b.hid,
            TCP,
            ap,
            bp,
            a.ttl,
            0,
            -1,
            0,
            (mine if seq is None else seq) & 0xFFFFFFFF,
            (peer & 0xFFFFFFFF) if flags & ACK else 0,
            flags,
            self._win(from_client) if win is None else win,
            self.est if opt < 0 else opt,
            (tsv + ms) & 0xFFFFFFFF,
            ((tse + ms - self.rtt // 2000) & 0xFFFFFFFF) if flags & ACK else 0,
            plen,
            head,
        )

    def handshake(self, t: int, ecn: bool = False) -> int:
        """SYN, SYN-ACK (both with options; a lost SYN-ACK is sent again), ACK."""
        pk, rng = self.lab.pk, self.lab.rng
        cs, ss = self.c.stack, self.s.stack
        copt, cat = syn_options(cs, self.cmss)
        sopt, sat = syn_options(ss, self.smss, cs)
        syn_opt, synack_opt = pk.option(copt, cat), pk.option(sopt, sat)
        flags = SYN | ECE | CWR if ecn else SYN
        self.pkt(t, True, flags, opt=syn_opt, win=self.crwnd)
        d = self.s_delay()
        self.pkt(
            t + d,
            False,
            SYN | ACK | (ECE if ecn else 0),
            opt=synack_opt,
            win=self.srwnd,
            seq=self.sseq,
        )
        if rng.random() < self.c.path.loss * 5:  # the SYN-ACK is lost on its way: again
            t += 1_000_000 if cs.name != "windows" else 3_000_000
            self.pkt(t, True, flags, opt=syn_opt, win=self.crwnd)
            self.pkt(t + d, False, SYN | ACK, opt=synack_opt, win=self.srwnd, seq=self.sseq)
        self.cseq += 1
        self.sseq += 1
        t += d + self.c_delay()
        self.pkt(t, True, ACK)
        return t

    def s_delay(self) -> int:
        """Capture point → server → capture point (µs), with the server's turnaround."""
        return int(delays(self.lab.rng, self.s.path, 2).sum()) + int(self.lab.rng.integers(15, 120))

    def c_delay(self) -> int:
        """Capture point → client → capture point (µs): one RTT with jitter."""
        return int(delays(self.lab.rng, self.c.path, 2).sum())

    # -- data -----------------------------------------------------------------------------

    def send(self, t: int, from_client: bool, size: int, head: int = 0, push: bool = True) -> int:
        """Send ``size`` bytes (a request, a response, a file); returns when the last ACK
        was seen. Segments leave in RTT rounds of a slow-starting window."""
        if size <= 0:
            return t
        if size <= self.seg and self.lab.rng.random() >= max(self.c.path.loss, self.s.path.loss):
            return self._one(t, from_client, size, head, push)
        rng = self.lab.rng
        seg = self.seg
        n = -(-size // seg)
        sizes = np.full(n, seg, np.int64)
        sizes[-1] = size - seg * (n - 1)
        k = np.arange(n)
        rwnd = (self.srwnd if from_client else self.crwnd) // seg
        cap_round = np.minimum(10 * 2 ** np.arange(40), max(2, rwnd) + 10 * np.arange(40))
        rounds = np.searchsorted(np.cumsum(cap_round), k, side="right")
        path = self.c.path
        gap = np.maximum(1, (sizes / min(path.bw, self.s.path.bw)).astype(np.int64))
        first_in_round = np.r_[True, rounds[1:] != rounds[:-1]]
        before = np.cumsum(gap) - gap
        ser = before - np.maximum.accumulate(np.where(first_in_round, before, 0))
        jitter = delays(rng, path, n) - path.rtt_us // 2
        times = t + rounds * self.rtt + ser + np.abs(jitter) // 4
        times = np.maximum.accumulate(times)
        seq0 = self.cseq if from_client else self.sseq
        seqs = seq0 + np.cumsum(sizes) - sizes
        flags = np.full(n, ACK, np.int64)
        if push:
            flags[-1] |= PSH
        heads = np.zeros(n, np.int64)
        heads[0] = head
        self._block(times, from_client, seqs, flags, sizes, heads)
        acks, ack_t = self._acks(times, from_client, seqs + sizes)
        lost = np.flatnonzero(rng.random(n) < max(path.loss, self.s.path.loss))
        for i in lost[:3].tolist():
            self._loss(int(times[i]), from_client, int(seqs[i]), int(sizes[i]), times, i)
        if from_client:
            self.cseq += size
            self.crwnd = min(self.c.stack.rwnd_max, self.crwnd + size // 2)
        else:
            self.sseq += size
            self.srwnd = min(self.s.stack.rwnd_max, self.srwnd + size // 2)
        return int(ack_t[-1]) if acks.size else int(times[-1])

    def _one(self, t: int, from_client: bool, size: int, head: int, push: bool) -> int:
        """A single segment and its (delayed) ACK: rows, not arrays."""
        self.pkt(t, from_client, ACK | (PSH if push else 0), plen=size, head=head)
        if from_client:
            self.cseq += size
            back = (
                t + self.s_delay() + (self.s.stack.delack_us if self.lab.rng.random() < 0.3 else 0)
            )
        else:
            self.sseq += size
            back = (
                t + self.c_delay() + (self.c.stack.delack_us if self.lab.rng.random() < 0.3 else 0)
            )
        self.pkt(back, not from_client, ACK)
        return back

    def _block(
        self,
        times: np.ndarray,
        from_client: bool,
        seqs: np.ndarray,
        flags: np.ndarray,
        sizes: np.ndarray,
        heads: np.ndarray,
    ) -> None:
        """Data segments of one direction as one block of packets."""
        a, b = (self.c, self.s) if from_client else (self.s, self.c)
        ms = (times - T0) // 1000
        tsv, tse = (self.tsc, self.tss) if from_client else (self.tss, self.tsc)
        self.lab.pk.block(
            len(times),
            ts=times,
            src=a.hid,
            dst=b.hid,
            proto=TCP,
            sport=self.cp if from_client else self.sp,
            dport=self.sp if from_client else self.cp,
            ttl=a.ttl,
            seq=seqs & 0xFFFFFFFF,
            ack=(self.sseq if from_client else self.cseq) & 0xFFFFFFFF,
            flags=flags,
            win=self._win(from_client),
            opt=self.est,
            tsval=(tsv + ms) & 0xFFFFFFFF,
            tsecr=(tse + ms - self.rtt // 2000) & 0xFFFFFFFF,
            plen=sizes,
            head=heads,
        )

    def _acks(
        self, times: np.ndarray, from_client: bool, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The receiver's ACKs: every second segment and the last one (after the delayed-ACK
        timer when it is odd); the advertised window grows as data arrives."""
        n = len(times)
        idx = np.r_[np.arange(1, n, 2), [n - 1] if n % 2 else []].astype(np.int64)
        receiver = self.s if from_client else self.c
        at = times[idx].copy()
        if n % 2:
            at[-1] += receiver.stack.delack_us // int(self.lab.rng.integers(1, 4))
        if from_client:
            at += self.s_delay()
        else:
            at += delays(self.lab.rng, self.c.path, len(idx)) * 2
        at = np.maximum.accumulate(at)
        shift = self.sws if from_client else self.cws
        base = self.srwnd if from_client else self.crwnd
        rmax = receiver.stack.rwnd_max
        win = np.minimum(65535, np.minimum(rmax, base + (ends[idx] - ends[0]) * 2) >> shift)
        a, b = (self.s, self.c) if from_client else (self.c, self.s)
        ms = (at - T0) // 1000
        tsv = self.tss if from_client else self.tsc
        self.lab.pk.block(
            len(at),
            ts=at,
            src=a.hid,
            dst=b.hid,
            proto=TCP,
            sport=self.sp if from_client else self.cp,
            dport=self.cp if from_client else self.sp,
            ttl=a.ttl,
            seq=(self.sseq if from_client else self.cseq) & 0xFFFFFFFF,
            ack=ends[idx] & 0xFFFFFFFF,
            flags=ACK,
            win=win,
            opt=self.est,
            tsval=(tsv + ms) & 0xFFFFFFFF,
            tsecr=(tsv + ms - 1) & 0xFFFFFFFF,
        )
        return idx, at

    def _loss(
        self, t: int, from_client: bool, seq: int, size: int, times: np.ndarray, i: int
    ) -> None:
        """A lost segment: duplicate ACKs (with a SACK block when negotiated) from the receiver,
        then the same segment again (fast retransmit, or after the retransmission timeout)."""
        later = times[i + 1 : i + 4]
        rx_delay = self.s_delay() if from_client else self.c_delay()
        for tt in later.tolist():
            self.pkt(
                int(tt) + rx_delay,
                not from_client,
                ACK,
                opt=self.dup_opt,
                seq=(self.sseq if from_client else self.cseq),
            )
        if len(later) >= 3:
            again = int(later[-1]) + rx_delay + (self.c_delay() if from_client else 50)
        else:
            again = t + max(200_000, 2 * self.rtt)
        self.pkt(again, from_client, ACK | PSH, plen=size, seq=seq)

    def exchange(
        self, t: int, req: int, resp: int, think_us: int, req_head: int = 0, resp_head: int = 0
    ) -> int:
        """A request from the client and the server's answer after ``think_us``."""
        t = self.send(t, True, req, req_head)
        if resp <= 0:
            return t
        return self.send(t + think_us, False, resp, resp_head)

    def keepalive(self, t: int) -> int:
        """A TCP keep-alive probe (one byte before the next sequence number) and its ACK."""
        self.pkt(t, True, ACK, plen=1 if self.c.stack.name == "windows" else 0, seq=self.cseq - 1)
        self.pkt(t + self.s_delay(), False, ACK)
        return t + self.s_delay()

    # -- endings --------------------------------------------------------------------------

    def close(self, t: int, how: str = "fin_client") -> int:
        """fin_client, fin_server, rst_client, rst_server, fin_rst (FINs then a client RST),
        open (never closed within the capture)."""
        if how == "open":
            return t
        if how == "rst_client":
            self.pkt(t, True, RST | ACK, win=0)
            return t
        if how == "rst_server":
            self.pkt(t, False, RST | ACK, win=0)
            return t
        first = how != "fin_server"
        self.pkt(t, first, FIN | ACK)
        if first:
            self.cseq += 1
        else:
            self.sseq += 1
        t += self.s_delay() if first else self.c_delay()
        self.pkt(t, not first, FIN | ACK)
        if first:
            self.sseq += 1
        else:
            self.cseq += 1
        t += self.c_delay() if first else self.s_delay()
        self.pkt(t, first, ACK)
        if how == "fin_rst":
            self.pkt(t + 30, True, RST | ACK, win=0)
        return t

    def half_close(self, t: int, size: int) -> int:
        """The client shuts its side (FIN), the server keeps sending, then closes."""
        self.pkt(t, True, FIN | ACK)
        self.cseq += 1
        self.pkt(t + self.s_delay(), False, ACK)
        t = self.send(t + self.s_delay() + 200, False, size)
        self.pkt(t, False, FIN | ACK)
        self.sseq += 1
        t += self.c_delay()
        self.pkt(t, True, ACK)
        return t
