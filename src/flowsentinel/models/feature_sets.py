"""Feature sets a model can be trained on: what a request to the served model must contain."""

from __future__ import annotations

from pathlib import Path

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError

FEATURE_SETS: tuple[str, ...] = ("all", "seed-a", "seed-b")


def resolve_features(spec: str, dataset: str, available: list[str]) -> list[str]:
    """The feature columns of ``spec`` (``all``, ``seed-a``, ``seed-b`` or a file of names).

    ``available`` are the feature columns left by cleaning, in canonical order. A named set that
    asks for a column cleaning dropped (or the data lacks) is an input error naming the columns.
    """
    if spec == "all":
        return list(available)
    if spec == "seed-a":
        if dataset != sc.CIC.name:
            raise InputError("--features seed-a is the first seed's CIC-IDS2017 request")
        wanted = list(sc.SEED_A_FEATURES)
    elif spec == "seed-b":
        if dataset != sc.UNSW.name:
            raise InputError("--features seed-b is the second seed's UNSW-NB15 request")
        wanted = list(sc.SEED_B_FEATURES)
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(
                f"--features must be all, seed-a, seed-b or a file of column names: {spec!r}"
            )
        names = [
            line.split("#", 1)[0].strip().strip(",")
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        names = [n for n in names if n]
        wanted, unknown = [], []
        for name in names:
            canonical = sc.dataset(dataset).canonical(name)
            if canonical is None or canonical not in sc.dataset(dataset).features:
                unknown.append(name)
            elif canonical not in wanted:
                wanted.append(canonical)
        if unknown:
            raise InputError(f"unknown {dataset} feature names: {', '.join(unknown)}", path=path)
        if not wanted:
            raise InputError("the feature file lists no column", path=path)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(
            f"feature set {spec!r} needs columns that are not in the cleaned data "
            f"(absent from the input or dropped by cleaning; try --near-constant none): "
            f"{', '.join(missing)}"
        )
    return wanted
