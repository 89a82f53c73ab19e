"""Label normalisation and families."""

from __future__ import annotations

import pytest

from flowsentinel.datasets import labels as lab

EN_DASH = "\u2013"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BENIGN", "BENIGN"),
        ("  BENIGN \t", "BENIGN"),
        ("Web  Attack   –  XSS", f"Web Attack {EN_DASH} XSS"),
        ("Web Attack \u0096 Brute Force", f"Web Attack {EN_DASH} Brute Force"),  # CP1252 0x96
        ("Web Attack \ufffd Sql Injection", f"Web Attack {EN_DASH} Sql Injection"),  # U+FFFD
        ("Web Attack \u2014 XSS", f"Web Attack {EN_DASH} XSS"),  # em dash
        ("Web Attack \u00e2\u20ac\u201c XSS", f"Web Attack {EN_DASH} XSS"),  # mojibake
        ("No Label", None),
        ("no label", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_label(raw: str | None, expected: str | None) -> None:
    assert lab.normalize_label(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"Web Attack {EN_DASH} XSS".encode(), f"Web Attack {EN_DASH} XSS"),
        (b"Web Attack \x96 XSS", f"Web Attack {EN_DASH} XSS"),  # CP1252 byte
        (b"BENIGN", "BENIGN"),
        ("DoS Hulk", "DoS Hulk"),
        (None, None),
    ],
)
def test_decode_label(raw: bytes | str | None, expected: str | None) -> None:
    assert lab.decode_label(raw) == expected


def test_cp1252_and_utf8_spellings_end_up_identical() -> None:
    utf8 = lab.normalize_label(lab.decode_label(f"Web Attack {EN_DASH} Brute Force".encode()))
    cp1252 = lab.normalize_label(lab.decode_label(b"Web Attack \x96 Brute Force"))
    assert utf8 == cp1252 == f"Web Attack {EN_DASH} Brute Force"


@pytest.mark.parametrize(
    ("label", "family"),
    [
        ("BENIGN", "BENIGN"),
        ("Benign", "BENIGN"),
        ("0", "BENIGN"),
        ("1", "Attack"),
        ("DoS Hulk", "DoS"),
        ("DoS GoldenEye", "DoS"),
        ("DoS slowloris", "DoS"),
        ("DoS Slowhttptest", "DoS"),
        ("DDoS", "DDoS"),
        ("Heartbleed", "Heartbleed"),
        (f"Web Attack {EN_DASH} XSS", "WebAttack"),
        (f"Web Attack {EN_DASH} Brute Force", "WebAttack"),
        (f"Web Attack {EN_DASH} Sql Injection", "WebAttack"),
        ("FTP-Patator", "BruteForce"),
        ("SSH-Patator", "BruteForce"),
        ("PortScan", "PortScan"),
        ("Bot", "Bot"),
        ("Infiltration", "Infiltration"),
        # grouped labels are their own family
        ("WebAttack", "WebAttack"),
        ("BruteForce", "BruteForce"),
        ("DoS", "DoS"),
        # CSE-CIC-IDS2018 spellings
        ("DoS attacks-Hulk", "DoS"),
        ("DoS attacks-SlowHTTPTest", "DoS"),
        ("DoS attacks-GoldenEye", "DoS"),
        ("DoS attacks-Slowloris", "DoS"),
        ("DDOS attack-HOIC", "DDoS"),
        ("DDOS attack-LOIC-UDP", "DDoS"),
        ("DDoS attacks-LOIC-HTTP", "DDoS"),
        ("Brute Force -Web", "WebAttack"),
        ("Brute Force -XSS", "WebAttack"),
        ("SQL Injection", "WebAttack"),
        ("SSH-Bruteforce", "BruteForce"),
        ("FTP-BruteForce", "BruteForce"),
        ("Infilteration", "Infiltration"),
        (None, None),
    ],
)
def test_cic_family(label: str | None, family: str | None) -> None:
    assert lab.cic_family(label) == family


@pytest.mark.parametrize(
    ("cat", "family"),
    [
        ("Normal", "BENIGN"),
        ("Backdoors", "Backdoor"),
        ("Backdoor", "Backdoor"),
        ("Generic", "Generic"),
        ("Exploits", "Exploits"),
        ("Fuzzers", "Fuzzers"),
        ("DoS", "DoS"),
        ("Reconnaissance", "Reconnaissance"),
        ("Analysis", "Analysis"),
        ("Shellcode", "Shellcode"),
        ("Worms", "Worms"),
        ("worms", "Worms"),
        (None, None),
    ],
)
def test_unsw_family(cat: str | None, family: str | None) -> None:
    assert lab.unsw_family(cat) == family


@pytest.mark.parametrize(
    ("family", "task", "ddos_as_dos", "positive", "kept"),
    [
        ("DoS", "dos", False, True, True),
        ("BENIGN", "dos", False, False, True),
        ("DDoS", "dos", False, False, False),
        ("DDoS", "dos", True, True, True),
        ("PortScan", "dos", False, False, False),
        ("WebAttack", "dos", True, False, False),
        ("BENIGN", "attack", False, False, True),
        ("PortScan", "attack", False, True, True),
        ("DDoS", "attack", False, True, True),
        ("Exploits", "multiclass", False, True, True),
        ("BENIGN", "multiclass", False, False, True),
    ],
)
def test_is_positive_and_keeps_family(
    family: str, task: str, ddos_as_dos: bool, positive: bool, kept: bool
) -> None:
    assert lab.is_positive(family, task, ddos_as_dos=ddos_as_dos) is positive
    assert lab.keeps_family(family, task, ddos_as_dos=ddos_as_dos) is kept


@pytest.mark.parametrize(
    ("families", "ddos_as_dos", "fits"),
    [
        (["BENIGN", "Attack"], False, ["attack", "multiclass"]),  # 0/1 labels
        (["BENIGN", "DoS"], False, ["dos", "attack", "multiclass"]),
        (["BENIGN", "DDoS"], False, ["attack", "multiclass"]),
        (["BENIGN", "DDoS"], True, ["dos", "attack", "multiclass"]),
        (["DoS", "PortScan"], False, ["multiclass"]),  # no benign rows: one binary class
        (["BENIGN"], False, []),
    ],
)
def test_fitting_tasks(families: list[str], ddos_as_dos: bool, fits: list[str]) -> None:
    assert lab.fitting_tasks(families, ddos_as_dos=ddos_as_dos) == fits


def test_task_classes_without_the_label_filter() -> None:
    assert lab.task_classes(["BENIGN", "Attack"], "dos") == {"0"}
    assert lab.task_classes(["BENIGN", "Attack"], "dos", filter_labels=False) == {"0"}
    assert lab.task_classes(["PortScan", "DoS"], "dos", filter_labels=False) == {"0", "1"}


def test_describe_labels() -> None:
    assert lab.describe_labels(["1", "0", "1"]) == "0, 1 (numeric 0/1 labels)"
    assert lab.describe_labels(["BENIGN", "DoS Hulk"]) == "BENIGN, DoS Hulk"
    assert lab.describe_labels([str(i) for i in range(10)], shown=3) == "0, 1, 2 and 7 more"
    assert lab.describe_labels([]) == "none (every row is unlabelled)"
