"""What every alert format says of an attack family: a stable signature id, a severity and,
where one fits, the MITRE ATT&CK tactic and technique.

Signature ids sit in the range Suricata leaves to local rules (1,000,000-1,999,999): a known
family has its own block of 1,000 ids (:data:`FAMILY_BLOCKS`), and the label picks one id in
its family's block from a CRC-32 of its text, so the same family and label give the same id on
every machine and in every release.

Examples
--------
>>> signature_id("DoS", "DoS Hulk") == signature_id("DoS", "DoS Hulk")
True
>>> 1_001_000 <= signature_id("DoS", "DoS Hulk") < 1_002_000
True
>>> severity(0.95), severity(0.7), severity(0.2)
(1, 2, 3)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: block of signature ids of each known family (family names as the models and the aggregate
#: detector give them); any other family shares the last block
FAMILY_BLOCKS: dict[str, int] = {
    "DoS": 1, "DDoS": 2, "PortScan": 3, "BruteForce": 4, "WebAttack": 5, "Bot": 6,
    "Infiltration": 7, "Exploits": 8, "Fuzzers": 9, "Reconnaissance": 10, "Generic": 11,
    "Backdoor": 12, "Shellcode": 13, "Worms": 14, "Analysis": 15,
}  # fmt: skip
OTHER_BLOCK = 999
SID_BASE = 1_000_000
GID = 1
REV = 1


@dataclass(frozen=True)
class Technique:
    """A MITRE ATT&CK tactic and technique."""

    tactic_id: str
    tactic: str
    technique_id: str
    technique: str


ATTACK_FRAMEWORK = "MITRE ATT&CK"
_IMPACT = ("TA0040", "Impact")
#: the ATT&CK technique each family is an instance of (families without one: none)
TECHNIQUES: dict[str, Technique] = {
    "DoS": Technique(*_IMPACT, "T1499", "Endpoint Denial of Service"),
    "DDoS": Technique(*_IMPACT, "T1498", "Network Denial of Service"),
    "PortScan": Technique("TA0007", "Discovery", "T1046", "Network Service Discovery"),
    "Reconnaissance": Technique("TA0043", "Reconnaissance", "T1595", "Active Scanning"),
    "BruteForce": Technique("TA0006", "Credential Access", "T1110", "Brute Force"),
    "WebAttack": Technique(
        "TA0001", "Initial Access", "T1190", "Exploit Public-Facing Application"
    ),
    "Exploits": Technique("TA0001", "Initial Access", "T1190", "Exploit Public-Facing Application"),
    "Bot": Technique("TA0011", "Command and Control", "T1071", "Application Layer Protocol"),
    "Backdoor": Technique("TA0011", "Command and Control", "T1219", "Remote Access Software"),
}


#: Suricata's classification (``classification.config`` descriptions) of each family
CATEGORIES: dict[str, str] = {
    "DoS": "Attempted Denial of Service", "DDoS": "Attempted Denial of Service",
    "PortScan": "Detection of a Network Scan", "Reconnaissance": "Detection of a Network Scan",
    "BruteForce": "Attempted User Privilege Gain", "WebAttack": "Web Application Attack",
    "Exploits": "Attempted Administrator Privilege Gain",
    "Bot": "A Network Trojan was detected", "Backdoor": "A Network Trojan was detected",
}  # fmt: skip
OTHER_CATEGORY = "Misc Attack"
#: ET-style ``signature_severity`` metadata of each Suricata severity
SIGNATURE_SEVERITY: dict[int, str] = {1: "Major", 2: "Minor", 3: "Informational"}


def category(family: str) -> str:
    """Suricata's classification of a family (``Misc Attack`` for others)."""
    return CATEGORIES.get(family, OTHER_CATEGORY)


def signature_id(family: str, label: str) -> int:
    """The stable signature id of a family and label (see the module docstring)."""
    block = FAMILY_BLOCKS.get(family, OTHER_BLOCK)
    return SID_BASE + 1_000 * block + zlib.crc32(label.encode("utf-8")) % 1_000


def severity(confidence: float) -> int:
    """Suricata's severity (1 = highest, 3 = lowest) of an alert of this confidence (0..1)."""
    if confidence >= 0.9:
        return 1
    if confidence >= 0.6:
        return 2
    return 3


def technique(family: str) -> Technique | None:
    """The ATT&CK technique of a family, if one fits."""
    return TECHNIQUES.get(family)
