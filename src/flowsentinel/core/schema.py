"""Canonical column names of the two data sets and every known alias of them.

CIC-IDS2017 (CICFlowMeter-2017, "MachineLearningCVE" names with the leading spaces stripped):
the MachineLearningCVE CSVs carry 78 feature columns: ``Destination Port`` (an identifier here),
the 76 distinct flow features of :data:`CIC_FEATURES`, and ``Fwd Header Length.1``, an exact
copy of ``Fwd Header Length`` written twice by CICFlowMeter (recognised, checked and dropped).

UNSW-NB15: the 45-column partition files (``UNSW_NB15_training-set.csv`` / ``testing-set``) and
the 49-column raw files (``UNSW-NB15_1.csv`` ... ``_4.csv``, no header; names from
``NUSW-NB15_features.csv``). Both map onto the partition names of :data:`UNSW_FEATURES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from flowsentinel.core.errors import InputError

DatasetName = Literal["cicids2017", "unsw-nb15"]

# Meta columns added by the readers and cleaning (never features).
LABEL: Final = "Label"  # the original label text, trimmed (UNSW: attack_cat, "Normal" if blank)
FAMILY: Final = "Family"  # the grouped class; "BENIGN" for benign traffic in both data sets
TARGET: Final = "Target"  # the class for the task: 0/1 for dos/attack, the family for multiclass
SOURCE: Final = "source_file"  # the file a row came from (for the `files` protocol)
META_COLUMNS: Final[tuple[str, ...]] = (LABEL, FAMILY, TARGET, SOURCE)
BENIGN: Final = "BENIGN"

# ---------------------------------------------------------------------------------------------
# CIC-IDS2017
# (canonical name, CICFlowMeter-V4 / CSE-CIC-IDS2018 short name)
_CIC_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("Flow Duration", "Flow Duration"),
    ("Total Fwd Packets", "Tot Fwd Pkts"),
    ("Total Backward Packets", "Tot Bwd Pkts"),
    ("Total Length of Fwd Packets", "TotLen Fwd Pkts"),
    ("Total Length of Bwd Packets", "TotLen Bwd Pkts"),
    ("Fwd Packet Length Max", "Fwd Pkt Len Max"),
    ("Fwd Packet Length Min", "Fwd Pkt Len Min"),
    ("Fwd Packet Length Mean", "Fwd Pkt Len Mean"),
    ("Fwd Packet Length Std", "Fwd Pkt Len Std"),
    ("Bwd Packet Length Max", "Bwd Pkt Len Max"),
    ("Bwd Packet Length Min", "Bwd Pkt Len Min"),
    ("Bwd Packet Length Mean", "Bwd Pkt Len Mean"),
    ("Bwd Packet Length Std", "Bwd Pkt Len Std"),
    ("Flow Bytes/s", "Flow Byts/s"),
    ("Flow Packets/s", "Flow Pkts/s"),
    ("Flow IAT Mean", "Flow IAT Mean"),
    ("Flow IAT Std", "Flow IAT Std"),
    ("Flow IAT Max", "Flow IAT Max"),
    ("Flow IAT Min", "Flow IAT Min"),
    ("Fwd IAT Total", "Fwd IAT Tot"),
    ("Fwd IAT Mean", "Fwd IAT Mean"),
    ("Fwd IAT Std", "Fwd IAT Std"),
    ("Fwd IAT Max", "Fwd IAT Max"),
    ("Fwd IAT Min", "Fwd IAT Min"),
    ("Bwd IAT Total", "Bwd IAT Tot"),
    ("Bwd IAT Mean", "Bwd IAT Mean"),
    ("Bwd IAT Std", "Bwd IAT Std"),
    ("Bwd IAT Max", "Bwd IAT Max"),
    ("Bwd IAT Min", "Bwd IAT Min"),
    ("Fwd PSH Flags", "Fwd PSH Flags"),
    ("Bwd PSH Flags", "Bwd PSH Flags"),
    ("Fwd URG Flags", "Fwd URG Flags"),
    ("Bwd URG Flags", "Bwd URG Flags"),
    ("Fwd Header Length", "Fwd Header Len"),
    ("Bwd Header Length", "Bwd Header Len"),
    ("Fwd Packets/s", "Fwd Pkts/s"),
    ("Bwd Packets/s", "Bwd Pkts/s"),
    ("Min Packet Length", "Pkt Len Min"),
    ("Max Packet Length", "Pkt Len Max"),
    ("Packet Length Mean", "Pkt Len Mean"),
    ("Packet Length Std", "Pkt Len Std"),
    ("Packet Length Variance", "Pkt Len Var"),
    ("FIN Flag Count", "FIN Flag Cnt"),
    ("SYN Flag Count", "SYN Flag Cnt"),
    ("RST Flag Count", "RST Flag Cnt"),
    ("PSH Flag Count", "PSH Flag Cnt"),
    ("ACK Flag Count", "ACK Flag Cnt"),
    ("URG Flag Count", "URG Flag Cnt"),
    ("CWE Flag Count", "CWR Flag Count"),
    ("ECE Flag Count", "ECE Flag Cnt"),
    ("Down/Up Ratio", "Down/Up Ratio"),
    ("Average Packet Size", "Pkt Size Avg"),
    ("Avg Fwd Segment Size", "Fwd Seg Size Avg"),
    ("Avg Bwd Segment Size", "Bwd Seg Size Avg"),
    ("Fwd Avg Bytes/Bulk", "Fwd Byts/b Avg"),
    ("Fwd Avg Packets/Bulk", "Fwd Pkts/b Avg"),
    ("Fwd Avg Bulk Rate", "Fwd Blk Rate Avg"),
    ("Bwd Avg Bytes/Bulk", "Bwd Byts/b Avg"),
    ("Bwd Avg Packets/Bulk", "Bwd Pkts/b Avg"),
    ("Bwd Avg Bulk Rate", "Bwd Blk Rate Avg"),
    ("Subflow Fwd Packets", "Subflow Fwd Pkts"),
    ("Subflow Fwd Bytes", "Subflow Fwd Byts"),
    ("Subflow Bwd Packets", "Subflow Bwd Pkts"),
    ("Subflow Bwd Bytes", "Subflow Bwd Byts"),
    ("Init_Win_bytes_forward", "Init Fwd Win Byts"),
    ("Init_Win_bytes_backward", "Init Bwd Win Byts"),
    ("act_data_pkt_fwd", "Fwd Act Data Pkts"),
    ("min_seg_size_forward", "Fwd Seg Size Min"),
    ("Active Mean", "Active Mean"),
    ("Active Std", "Active Std"),
    ("Active Max", "Active Max"),
    ("Active Min", "Active Min"),
    ("Idle Mean", "Idle Mean"),
    ("Idle Std", "Idle Std"),
    ("Idle Max", "Idle Max"),
    ("Idle Min", "Idle Min"),
)
CIC_FEATURES: Final[tuple[str, ...]] = tuple(c for c, _ in _CIC_PAIRS)
CIC_DUPLICATE_COLUMN: Final = "Fwd Header Length.1"
CIC_DUPLICATE_OF: Final = "Fwd Header Length"
CIC_IDENTIFIERS: Final[tuple[str, ...]] = (
    "Flow ID",
    "Source IP",
    "Source Port",
    "Destination IP",
    "Destination Port",
    "Protocol",
    "Timestamp",
)
_CIC_IDENTIFIER_ALIASES: Final[dict[str, str]] = {
    "Src IP": "Source IP",
    "Src Port": "Source Port",
    "Dst IP": "Destination IP",
    "Dst Port": "Destination Port",
}
CIC_STRING_IDENTIFIERS: Final[frozenset[str]] = frozenset(
    {"Flow ID", "Source IP", "Destination IP", "Timestamp"}
)

# The 32 features of the first seed's API request (its snake_case names map onto these).
SEED_A_FEATURES: Final[tuple[str, ...]] = (
    "Flow Duration", "Fwd Packet Length Std", "Bwd Packet Length Mean", "Bwd Packet Length Std",
    "Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std", "Flow IAT Max",
    "Fwd IAT Total", "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max", "Bwd IAT Total",
    "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max", "Fwd Packets/s", "Bwd Packets/s",
    "Packet Length Mean", "Packet Length Std", "Packet Length Variance", "Average Packet Size",
    "Avg Bwd Segment Size", "Active Mean", "Active Std", "Active Max", "Active Min", "Idle Mean",
    "Idle Std", "Idle Max", "Idle Min",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# UNSW-NB15 (partition names, in partition order, without id / attack_cat / label)
UNSW_FEATURES: Final[tuple[str, ...]] = (
    "dur", "proto", "service", "state", "spkts", "dpkts", "sbytes", "dbytes", "rate", "sttl",
    "dttl", "sload", "dload", "sloss", "dloss", "sinpkt", "dinpkt", "sjit", "djit", "swin",
    "stcpb", "dtcpb", "dwin", "tcprtt", "synack", "ackdat", "smean", "dmean", "trans_depth",
    "response_body_len", "ct_srv_src", "ct_state_ttl", "ct_dst_ltm", "ct_src_dport_ltm",
    "ct_dst_sport_ltm", "ct_dst_src_ltm", "is_ftp_login", "ct_ftp_cmd", "ct_flw_http_mthd",
    "ct_src_ltm", "ct_srv_dst", "is_sm_ips_ports",
)  # fmt: skip
UNSW_CATEGORICAL: Final[tuple[str, ...]] = ("proto", "service", "state")
UNSW_IDENTIFIERS: Final[tuple[str, ...]] = (
    "id",
    "srcip",
    "sport",
    "dstip",
    "dsport",
    "stime",
    "ltime",
)
UNSW_STRING_IDENTIFIERS: Final[frozenset[str]] = frozenset({"srcip", "sport", "dstip", "dsport"})
UNSW_LABEL_COLUMNS: Final[tuple[str, str]] = ("attack_cat", "label")
# The second seed's request: the 41 partition fields without proto.
SEED_B_FEATURES: Final[tuple[str, ...]] = tuple(c for c in UNSW_FEATURES if c != "proto")
# The 49 columns of the raw files, in file order (names as in NUSW-NB15_features.csv).
UNSW_RAW_COLUMNS: Final[tuple[str, ...]] = (
    "srcip", "sport", "dstip", "dsport", "proto", "state", "dur", "sbytes", "dbytes", "sttl",
    "dttl", "sloss", "dloss", "service", "Sload", "Dload", "Spkts", "Dpkts", "swin", "dwin",
    "stcpb", "dtcpb", "smeansz", "dmeansz", "trans_depth", "res_bdy_len", "Sjit", "Djit",
    "Stime", "Ltime", "Sintpkt", "Dintpkt", "tcprtt", "synack", "ackdat", "is_sm_ips_ports",
    "ct_state_ttl", "ct_flw_http_mthd", "is_ftp_login", "ct_ftp_cmd", "ct_srv_src",
    "ct_srv_dst", "ct_dst_ltm", "ct_src_ltm", "ct_src_dport_ltm", "ct_dst_sport_ltm",
    "ct_dst_src_ltm", "attack_cat", "Label",
)  # fmt: skip
_UNSW_RAW_ALIASES: Final[dict[str, str]] = {
    "smeansz": "smean",
    "dmeansz": "dmean",
    "res_bdy_len": "response_body_len",
    "sintpkt": "sinpkt",
    "dintpkt": "dinpkt",
}
# Raw-file columns that are blank where the value is zero (the published files do this).
UNSW_BLANK_MEANS_ZERO: Final[tuple[str, ...]] = ("ct_flw_http_mthd", "is_ftp_login", "ct_ftp_cmd")

_KEY_RE: Final = re.compile(r"[^0-9a-z]+")


def name_key(name: str) -> str:
    """The matching key of a column name: lower case, letters and digits only.

    ``" Flow Bytes/s"``, ``"Flow Bytes/s"`` and ``"flow_bytes_s"`` share the key ``flowbytess``.
    """
    return _KEY_RE.sub("", name.strip().lower())


def snake_case(name: str) -> str:
    """The snake_case spelling of the first seed's API: ``Flow Bytes/s`` → ``flow_bytes_s``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _build_cic_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for canonical, short in _CIC_PAIRS:
        aliases[name_key(canonical)] = canonical
        aliases[name_key(short)] = canonical
    for ident in CIC_IDENTIFIERS:
        aliases[name_key(ident)] = ident
    for alias, ident in _CIC_IDENTIFIER_ALIASES.items():
        aliases[name_key(alias)] = ident
    aliases[name_key(CIC_DUPLICATE_COLUMN)] = CIC_DUPLICATE_COLUMN
    aliases[name_key("Label")] = LABEL
    return aliases


def _build_unsw_aliases() -> dict[str, str]:
    aliases = {name_key(c): c for c in (*UNSW_FEATURES, *UNSW_IDENTIFIERS, *UNSW_LABEL_COLUMNS)}
    for raw, canonical in _UNSW_RAW_ALIASES.items():
        aliases[name_key(raw)] = canonical
    return aliases


CIC_ALIASES: Final[dict[str, str]] = _build_cic_aliases()
UNSW_ALIASES: Final[dict[str, str]] = _build_unsw_aliases()


@dataclass(frozen=True, eq=False)
class Dataset:
    """What the code needs to know of one data set, in one place.

    Examples
    --------
    >>> CIC.canonical(" Flow Bytes/s"), CIC.canonical("flow_bytes_s"), CIC.canonical("nope")
    ('Flow Bytes/s', 'Flow Bytes/s', None)
    >>> dataset("unsw-nb15").title, dataset("unsw-nb15").json_name("sbytes")
    ('UNSW-NB15', 'sbytes')
    """

    name: DatasetName
    title: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    identifiers: tuple[str, ...]
    label_columns: tuple[str, ...]
    #: columns read as text (identifiers, categories, the raw attack name), never as numbers
    text_columns: frozenset[str]
    #: name_key → canonical name, for every known spelling of a column
    aliases: dict[str, str] = field(repr=False)
    #: JSON request bodies use snake_case names (the first seed's API) instead of the
    #: canonical ones
    snake_case_json: bool = False

    def canonical(self, name: str) -> str | None:
        """The canonical name of a column in any known spelling, or None."""
        return self.aliases.get(name_key(name))

    def json_name(self, feature: str) -> str:
        """The name of a feature in JSON bodies and answers."""
        return snake_case(feature) if self.snake_case_json else feature

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.categorical)


CIC: Final = Dataset(
    name="cicids2017",
    title="CIC-IDS2017",
    features=CIC_FEATURES,
    categorical=(),
    identifiers=CIC_IDENTIFIERS,
    label_columns=(LABEL,),
    text_columns=CIC_STRING_IDENTIFIERS,
    aliases=CIC_ALIASES,
    snake_case_json=True,
)
UNSW: Final = Dataset(
    name="unsw-nb15",
    title="UNSW-NB15",
    features=UNSW_FEATURES,
    categorical=UNSW_CATEGORICAL,
    identifiers=UNSW_IDENTIFIERS,
    label_columns=UNSW_LABEL_COLUMNS,
    text_columns=UNSW_STRING_IDENTIFIERS | frozenset(UNSW_CATEGORICAL) | {"attack_cat"},
    aliases=UNSW_ALIASES,
)
#: every data set the readers know, in detection order
ALL: Final[tuple[Dataset, ...]] = (CIC, UNSW)
_BY_NAME: Final[dict[str, Dataset]] = {d.name: d for d in ALL}
DATASETS: Final[tuple[str, ...]] = tuple(_BY_NAME)


def dataset(name: str) -> Dataset:
    """The descriptor of a data set by its name (``cicids2017``, ``unsw-nb15``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(f"unknown data set {name!r} (known: {', '.join(DATASETS)})") from None
