"""The figures of ``benchmarks/bench_generalization.py`` against hand computations.

The benchmark is not a test (it trains models and reads the shared captures); its metric
functions are pure, and these tests pin them so that its figures cannot silently be wrong.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generalization.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generalization", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


bench = _load()

# six flows: three attack, two benign, one of unknown truth
TRUTH = np.array([1, 1, 1, 0, 0, -1])
FLAGGED = np.array([True, False, True, True, False, True])
IN_DIST = np.array([True, False, False, True, False, True])


def test_counts_and_rates_match_a_hand_computation() -> None:
    c = bench.count_flows(TRUTH, FLAGGED, IN_DIST)
    # by hand: flows 0 and 2 detected, 1 missed; 3 is a false alarm, 4 right; 5 flagged, truth
    # unknown; novel: 1, 2, 4; wrong: 1 (novel) and 3 (in-distribution) → one confident-wrong
    assert (c.flows, c.attack, c.benign, c.unlabelled) == (6, 3, 2, 1)
    assert (c.detected, c.flagged_benign, c.flagged_unlabelled) == (2, 1, 1)
    assert (c.marked, c.novel, c.confident_wrong) == (6, 3, 1)
    r = bench.rates(c)
    assert r["detection_rate"] == pytest.approx(2 / 3)
    assert r["flagged_benign_share"] == pytest.approx(1 / 2)
    assert r["flagged_unlabelled_share"] == pytest.approx(1.0)
    assert r["novel_share"] == pytest.approx(3 / 6)
    assert r["confident_wrong_rate"] == pytest.approx(1 / 5)  # over the five labelled flows


def test_without_novelty_every_flow_is_in_distribution_and_none_is_marked() -> None:
    c = bench.count_flows(TRUTH, FLAGGED)
    assert (c.marked, c.novel, c.confident_wrong) == (0, 0, 2)  # both wrong flows count
    r = bench.rates(c)
    assert r["novel_share"] is None
    assert r["confident_wrong_rate"] == pytest.approx(2 / 5)


def test_counts_add_up_and_empty_denominators_give_none() -> None:
    one = bench.count_flows(TRUTH, FLAGGED, IN_DIST)
    assert bench.rates(one + one) == bench.rates(one)
    assert (one + one).confident_wrong == 2
    only_attack = bench.count_flows(np.array([1, 1]), np.array([True, False]))
    r = bench.rates(only_attack)
    assert r["detection_rate"] == 0.5
    assert r["flagged_benign_share"] is None and r["flagged_unlabelled_share"] is None
    empty = bench.rates(bench.Counts())
    assert set(empty.values()) == {None}


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        bench.count_flows(TRUTH, FLAGGED[:5])


def test_holdout_counts_from_a_confusion_matrix() -> None:
    result = {
        "champion": {"name": "xgb"},
        "models": [
            {"name": "rf", "confusion_matrix": [[1, 0], [0, 1]]},
            {"name": "xgb", "confusion_matrix": [[90, 10], [5, 15]]},
        ],
    }
    r = bench.rates(bench.holdout_counts(result))
    assert r["detection_rate"] == pytest.approx(15 / 20)
    assert r["flagged_benign_share"] == pytest.approx(10 / 100)
    assert r["confident_wrong_rate"] == pytest.approx(15 / 120)
    assert r["novel_share"] is None


def test_capture_truth_by_group_and_the_slowloris_server() -> None:
    host, port = bench.SLOWLORIS_SERVER
    ids = pd.DataFrame(
        {
            "Source IP": ["10.0.2.15", host, "10.0.2.15"],
            "Source Port": [47602, port, 5353],
            "Destination IP": [host, "10.0.2.15", "224.0.0.251"],
            "Destination Port": [port, 47603, 5353],
        }
    )
    pcaps = Path("pcaps")
    slowloris = bench.capture_truth(pcaps / "attack" / bench.SLOWLORIS, ids)
    assert slowloris.tolist() == [1, 1, 0]
    flood = pcaps / "attack" / "stopddos-amp.UDP.isakmp.pcap"
    assert bench.capture_truth(flood, ids).tolist() == [1, 1, 1]
    assert bench.capture_truth(pcaps / "benign" / "ppa3-dns.pcap", ids).tolist() == [0, 0, 0]
    scan = pcaps / "attack" / "ppa3-synscan.pcapng"
    assert bench.capture_truth(scan, ids).tolist() == [-1, -1, -1]
    assert bench.capture_group(scan) == "other-attack"


def test_flagged_share_per_label() -> None:
    labels = np.array(["DoS Hulk", "BENIGN", "DoS Hulk", "DoS Hulk", "BENIGN"], dtype=object)
    flagged = np.array([True, True, False, True, False])
    assert bench.flagged_by_label(labels, flagged) == {
        "BENIGN": {"flows": 2, "flagged_share": 0.5},
        "DoS Hulk": {"flows": 3, "flagged_share": pytest.approx(2 / 3)},
    }


def test_wilson_interval_matches_the_textbook_values() -> None:
    # Wilson 95 %: 5 of 10 → 0.2366–0.7634; 0 of 10 → 0–0.2775 (z² / n / (1 + z² / n))
    low, high = bench.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = bench.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(3.8416 / 10 / (1 + 3.8416 / 10), abs=1e-4)
    assert bench.wilson_interval(0, 0) is None
    c = bench.count_flows(TRUTH, FLAGGED, IN_DIST)
    assert bench.intervals(c)["detection_rate"] == bench.wilson_interval(2, 3)
