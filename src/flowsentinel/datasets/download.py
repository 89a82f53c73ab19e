"""Download the public data sets through kagglehub, once, into flowsentinel's home.

The only code path of flowsentinel that touches the network. Without network it fails at once
with a message saying how to use local files instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import FlowsentinelError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.reader import is_supported

Downloader = Callable[[str], str]


class OfflineError(FlowsentinelError):
    exit_code = 3


def kaggle_handle(dataset: str, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    handles = {sc.CIC.name: s.kaggle_cicids2017, sc.UNSW.name: s.kaggle_unsw_nb15}
    if dataset not in handles:
        raise FlowsentinelError(f"unknown data set {dataset!r}; choose one of {sorted(handles)}")
    return handles[dataset]


def _offline_message(dataset: str, handle: str, why: str) -> str:
    return (
        f"cannot download {dataset} (Kaggle {handle}): {why}. Without network, download the files "
        f"elsewhere and point the tool at them: flowsentinel data clean /path/to/folder "
        f"--dataset {dataset} --out DIR"
    )


def _kagglehub_download(handle: str) -> str:
    import kagglehub  # lazy: 1.1 s at CLI start-up (cli.data imports this module)

    return kagglehub.dataset_download(handle)


def download_dataset(
    dataset: str,
    *,
    settings: Settings | None = None,
    force: bool = False,
    downloader: Downloader | None = None,
) -> Path:
    """Download (or find in the cache) a data set; returns the folder holding its files."""
    s = settings or get_settings()
    handle = kaggle_handle(dataset, s)
    registry = s.home / "downloads.json"
    known: dict[str, str] = {}
    if registry.is_file():
        try:
            known = json.loads(registry.read_text())
        except ValueError:
            known = {}
    cached = known.get(handle)
    if cached and not force and Path(cached).is_dir():
        return Path(cached)
    if s.offline:
        raise OfflineError(_offline_message(dataset, handle, "FLOWSENTINEL_OFFLINE is set"))
    os.environ.setdefault("KAGGLEHUB_CACHE", str(s.home / "kaggle"))
    try:
        folder = Path((downloader or _kagglehub_download)(handle))
    except FlowsentinelError:
        raise
    except Exception as exc:  # requests / urllib3 / kagglehub errors: all mean "not reachable"
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise OfflineError(_offline_message(dataset, handle, f"no network ({why})")) from None
    if not folder.is_dir() or not any(is_supported(p) for p in folder.rglob("*")):
        raise FlowsentinelError(f"the download of {handle} holds no CSV or parquet file: {folder}")
    known[handle] = str(folder)
    s.home.mkdir(parents=True, exist_ok=True)
    registry.write_text(json.dumps(known, indent=2))
    return folder
