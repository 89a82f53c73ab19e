"""The canonical column names and their aliases."""

from __future__ import annotations

import pytest

from flowdata import CICFLOWMETER_V4_HEADER
from flowsentinel.cli.data import Dataset
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError


def test_cic_features_are_76_distinct_stripped_names() -> None:
    assert len(sc.CIC_FEATURES) == 76
    assert len(set(sc.CIC_FEATURES)) == 76
    assert all(f == f.strip() for f in sc.CIC_FEATURES)
    # their matching keys are distinct too, or two columns would collapse into one
    assert len({sc.name_key(f) for f in sc.CIC_FEATURES}) == 76


def test_cic_features_leave_out_identifiers_and_the_duplicate_column() -> None:
    assert sc.CIC_DUPLICATE_COLUMN == "Fwd Header Length.1"
    assert sc.CIC_DUPLICATE_COLUMN not in sc.CIC_FEATURES
    assert "Fwd Header Length" in sc.CIC_FEATURES
    assert not set(sc.CIC_IDENTIFIERS) & set(sc.CIC_FEATURES)
    assert "Destination Port" in sc.CIC_IDENTIFIERS
    assert {"Flow ID", "Source IP", "Timestamp"} <= set(sc.CIC_IDENTIFIERS)


def test_meta_column_names() -> None:
    assert (sc.LABEL, sc.FAMILY, sc.TARGET, sc.SOURCE, sc.BENIGN) == (
        "Label",
        "Family",
        "Target",
        "source_file",
        "BENIGN",
    )


def test_seed_a_features_are_32_cic_features() -> None:
    assert len(sc.SEED_A_FEATURES) == 32
    assert len(set(sc.SEED_A_FEATURES)) == 32
    assert set(sc.SEED_A_FEATURES) <= set(sc.CIC_FEATURES)


def test_unsw_features_and_seed_b() -> None:
    assert len(sc.UNSW_FEATURES) == 42
    assert len(set(sc.UNSW_FEATURES)) == 42
    assert len(sc.SEED_B_FEATURES) == 41
    assert "proto" not in sc.SEED_B_FEATURES
    assert [f for f in sc.UNSW_FEATURES if f != "proto"] == list(sc.SEED_B_FEATURES)
    assert not {"id", "attack_cat", "label"} & set(sc.UNSW_FEATURES)


def test_unsw_raw_columns_map_onto_partition_names() -> None:
    assert len(sc.UNSW_RAW_COLUMNS) == 49
    mapped = [sc.UNSW_ALIASES.get(sc.name_key(c)) for c in sc.UNSW_RAW_COLUMNS]
    assert None not in mapped, dict(zip(sc.UNSW_RAW_COLUMNS, mapped, strict=True))
    assert len(set(mapped)) == 49  # no two raw columns collapse
    features = {m for m in mapped if m in sc.UNSW_FEATURES}
    # the raw files have every partition feature except the derived "rate"
    assert set(sc.UNSW_FEATURES) - features == {"rate"}
    assert sc.UNSW_ALIASES[sc.name_key("smeansz")] == "smean"
    assert sc.UNSW_ALIASES[sc.name_key("res_bdy_len")] == "response_body_len"
    assert sc.UNSW_ALIASES[sc.name_key("Sintpkt")] == "sinpkt"
    assert sc.UNSW_ALIASES[sc.name_key("Stime")] == "stime"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (" Flow Bytes/s", "flowbytess"),
        ("Flow Bytes/s", "flowbytess"),
        ("flow_bytes_s", "flowbytess"),
        ("Init_Win_bytes_forward", "initwinbytesforward"),
        ("Fwd Header Length.1", "fwdheaderlength1"),
        ("ct_src_ ltm", "ctsrcltm"),
    ],
)
def test_name_key(raw: str, key: str) -> None:
    assert sc.name_key(raw) == key


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("Flow Bytes/s", "flow_bytes_s"),
        (" Flow Duration", "flow_duration"),
        ("Down/Up Ratio", "down_up_ratio"),
        ("Init_Win_bytes_forward", "init_win_bytes_forward"),
        ("Fwd Packet Length Std", "fwd_packet_length_std"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert sc.snake_case(name) == snake


def test_every_cic_spelling_maps_to_its_canonical_name() -> None:
    for feature in sc.CIC_FEATURES:
        for spelling in (feature, f" {feature}", sc.snake_case(feature), feature.upper()):
            assert sc.CIC_ALIASES[sc.name_key(spelling)] == feature, spelling
    for ident in sc.CIC_IDENTIFIERS:
        assert sc.CIC_ALIASES[sc.name_key(ident)] == ident
    assert sc.CIC_ALIASES[sc.name_key("Label")] == "Label"


@pytest.mark.parametrize(
    ("short", "canonical"),
    [
        ("Tot Fwd Pkts", "Total Fwd Packets"),
        ("Tot Bwd Pkts", "Total Backward Packets"),
        ("TotLen Fwd Pkts", "Total Length of Fwd Packets"),
        ("Flow Byts/s", "Flow Bytes/s"),
        ("Flow Pkts/s", "Flow Packets/s"),
        ("Fwd Pkts/s", "Fwd Packets/s"),
        ("Init Fwd Win Byts", "Init_Win_bytes_forward"),
        ("Init Bwd Win Byts", "Init_Win_bytes_backward"),
        ("Fwd Act Data Pkts", "act_data_pkt_fwd"),
        ("Fwd Seg Size Min", "min_seg_size_forward"),
        ("Pkt Len Min", "Min Packet Length"),
        ("Pkt Size Avg", "Average Packet Size"),
        ("Fwd Header Len", "Fwd Header Length"),
        ("Dst Port", "Destination Port"),
        ("Src IP", "Source IP"),
    ],
)
def test_cicflowmeter_v4_short_names(short: str, canonical: str) -> None:
    assert sc.CIC_ALIASES[sc.name_key(short)] == canonical


def test_the_whole_cicflowmeter_v4_header_covers_every_feature() -> None:
    mapped = [sc.CIC_ALIASES.get(sc.name_key(n)) for n in CICFLOWMETER_V4_HEADER]
    assert None not in mapped, [
        n for n, m in zip(CICFLOWMETER_V4_HEADER, mapped, strict=True) if m is None
    ]
    assert len(set(mapped)) == len(mapped)
    assert set(sc.CIC_FEATURES) <= set(mapped)
    assert set(sc.CIC_IDENTIFIERS) <= set(mapped)


def test_seed_a_snake_case_names_map_back() -> None:
    for feature in sc.SEED_A_FEATURES:
        assert sc.CIC_ALIASES[sc.name_key(sc.snake_case(feature))] == feature


def test_dataset_helpers() -> None:
    assert sc.dataset("cicids2017").features == sc.CIC_FEATURES
    assert sc.dataset("unsw-nb15").features == sc.UNSW_FEATURES
    assert sc.dataset("cicids2017").identifiers == sc.CIC_IDENTIFIERS
    assert "id" in sc.dataset("unsw-nb15").identifiers
    assert set(sc.dataset("unsw-nb15").categorical) == {"proto", "service", "state"}
    assert sc.dataset("cicids2017").categorical == ()


def test_dataset_descriptors() -> None:
    assert [d.value for d in Dataset] == list(sc.DATASETS) == [d.name for d in sc.ALL]
    for d in sc.ALL:
        assert sc.dataset(d.name) is d
        assert set(d.features) >= set(d.categorical)
        assert not set(d.features) & set(d.identifiers)
        for column in (*d.features, *d.identifiers):
            assert d.canonical(column) == column
            assert d.canonical(f"  {column.upper()} ") == column
    assert sc.CIC.json_name("Flow Bytes/s") == "flow_bytes_s"
    assert sc.UNSW.json_name("sbytes") == "sbytes"
    assert sc.UNSW.numeric == tuple(f for f in sc.UNSW_FEATURES if f not in sc.UNSW_CATEGORICAL)
    with pytest.raises(InputError, match="unknown data set 'kdd99'"):
        sc.dataset("kdd99")
