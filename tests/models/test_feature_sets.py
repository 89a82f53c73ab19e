from __future__ import annotations

from pathlib import Path

import pytest

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.models.feature_sets import resolve_features


def test_named_sets() -> None:
    cic = list(sc.CIC_FEATURES)
    assert resolve_features("all", "cicids2017", cic) == cic
    assert resolve_features("seed-a", "cicids2017", cic) == list(sc.SEED_A_FEATURES)
    assert len(resolve_features("seed-b", "unsw-nb15", list(sc.UNSW_FEATURES))) == 41


def test_a_set_needing_a_dropped_column_names_it() -> None:
    cic = [c for c in sc.CIC_FEATURES if c != sc.SEED_A_FEATURES[3]]
    with pytest.raises(InputError, match=sc.SEED_A_FEATURES[3].replace("/", ".")):
        resolve_features("seed-a", "cicids2017", cic)


def test_a_file_of_names_in_any_spelling(tmp_path: Path) -> None:
    f = tmp_path / "cols.txt"
    f.write_text("flow_duration\n Tot Fwd Pkts  # V4 short name\n\nFlow Bytes/s\n")
    got = resolve_features(str(f), "cicids2017", list(sc.CIC_FEATURES))
    assert got == ["Flow Duration", "Total Fwd Packets", "Flow Bytes/s"]
    f.write_text("flow_duration\nnot_a_feature\n")
    with pytest.raises(InputError, match="not_a_feature"):
        resolve_features(str(f), "cicids2017", list(sc.CIC_FEATURES))
