"""Label text normalisation, grouping into families, and the classes of each task.

Labels are few distinct values over many rows, so every function here works on the *unique*
values and the frame is mapped with one vectorised join/replace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal

from flowsentinel.core.schema import BENIGN

Task = Literal["dos", "attack", "multiclass"]
TASKS: Final[tuple[str, ...]] = ("dos", "attack", "multiclass")
UNLABELLED: Final = "__unlabelled__"

CIC_FAMILIES: Final[tuple[str, ...]] = (
    BENIGN, "DoS", "DDoS", "PortScan", "Bot", "BruteForce", "WebAttack", "Infiltration",
    "Heartbleed",
)  # fmt: skip
UNSW_FAMILIES: Final[tuple[str, ...]] = (
    BENIGN, "Generic", "Exploits", "Fuzzers", "DoS", "Reconnaissance", "Analysis", "Backdoor",
    "Shellcode", "Worms",
)  # fmt: skip

_DASHES = re.compile(
    "[\u2013\u2014\u0096\ufffd]|\u00e2\u20ac\u201c"
)  # en/em dash, CP1252, mojibake
_SPACES = re.compile(r"\s+")


def decode_label(raw: bytes | str | None) -> str | None:
    """Decode one label as UTF-8, falling back to CP1252 (the original Kaggle files)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("cp1252", errors="replace")
    return raw


def normalize_label(text: str | None) -> str | None:
    """Trim, fold white space and unify every spelling of the en dash (``Web Attack – XSS``)."""
    if text is None:
        return None
    text = _SPACES.sub(" ", _DASHES.sub("\u2013", text)).strip()
    if text == "" or text.lower() in {"no label", "nan", "none", "null"}:
        return None
    return text


def cic_family(label: str | None) -> str | None:
    """The CIC-IDS2017 family of one normalised label (``None`` when unlabelled)."""
    if label is None:
        return None
    low = label.lower()
    if low in {"benign", "normal", "0", "0.0", "false"}:
        return BENIGN
    if low in {"1", "1.0", "true", "attack", "malicious"}:
        return "Attack"
    rules = (
        ("ddos", "DDoS"),
        ("heartbleed", "Heartbleed"),
        ("web attack", "WebAttack"),
        ("webattack", "WebAttack"),
        ("xss", "WebAttack"),
        ("sql", "WebAttack"),
        ("brute force -web", "WebAttack"),
        ("dos", "DoS"),
        ("portscan", "PortScan"),
        ("port scan", "PortScan"),
        ("patator", "BruteForce"),
        ("bruteforce", "BruteForce"),
        ("brute force", "BruteForce"),
        ("bot", "Bot"),
        ("infilt", "Infiltration"),
    )
    for needle, family in rules:
        if needle in low:
            return family
    return label


_UNSW_CANON = {f.lower(): f for f in UNSW_FAMILIES if f != BENIGN}
_UNSW_CANON["backdoors"] = "Backdoor"


def unsw_family(attack_cat: str | None) -> str | None:
    """The UNSW-NB15 family of one normalised ``attack_cat`` (``Normal`` → ``BENIGN``)."""
    if attack_cat is None:
        return None
    low = attack_cat.lower()
    if low in {"normal", "benign", "0"}:
        return BENIGN
    return _UNSW_CANON.get(low, attack_cat)


def is_positive(family: str, task: str, *, ddos_as_dos: bool = False) -> bool:
    """Whether a family is the positive class of a binary task."""
    if task == "dos":
        return family == "DoS" or (ddos_as_dos and family == "DDoS")
    return family != BENIGN


def keeps_family(family: str, task: str, *, ddos_as_dos: bool = False) -> bool:
    """Whether rows of a family take part in a task (``dos`` keeps BENIGN and DoS only)."""
    if task == "dos":
        return family == BENIGN or is_positive(family, task, ddos_as_dos=ddos_as_dos)
    return True


def task_classes(
    families: Iterable[str], task: str, *, ddos_as_dos: bool = False, filter_labels: bool = True
) -> set[str]:
    """The classes (``Target`` values) that rows of these families take in a task."""
    kept = [
        f for f in families if not filter_labels or keeps_family(f, task, ddos_as_dos=ddos_as_dos)
    ]
    if task == "multiclass":
        return set(kept)
    return {"1" if is_positive(f, task, ddos_as_dos=ddos_as_dos) else "0" for f in kept}


def fitting_tasks(families: Iterable[str], *, ddos_as_dos: bool = False) -> list[str]:
    """The tasks (in :data:`TASKS` order) whose classes hold two or more of these families."""
    found = list(families)
    return [t for t in TASKS if len(task_classes(found, t, ddos_as_dos=ddos_as_dos)) >= 2]


_ZERO_ONE = {"0", "1", "0.0", "1.0"}


def describe_labels(labels: Iterable[str], shown: int = 8) -> str:
    """Distinct labels for a message: ``0, 1 (numeric 0/1 labels)``, at most ``shown`` of them."""
    found = sorted(set(labels))
    if not found:
        return "none (every row is unlabelled)"
    text = ", ".join(found[:shown])
    if len(found) > shown:
        text += f" and {len(found) - shown} more"
    if set(found) <= _ZERO_ONE:
        text += " (numeric 0/1 labels)"
    return text
