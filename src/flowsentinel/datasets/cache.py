"""A columnar cache of parsed input files, keyed by the files' content.

Each input file is identified by the xxh3-128 hash of its bytes; its canonical frame is kept as
an Arrow IPC file (memory-mapped on load) with the read report beside it. Like git's index, the
hash of a file is remembered against its (device, inode, size, mtime) so that an unchanged file
is not hashed again; any change to the file changes that signature and forces a new hash.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import xxhash

READER_VERSION = "1"  # bump when reading or canonical names change: old entries are ignored


def content_hash(path: Path) -> str:
    """xxh3-128 of the file's bytes."""
    h = xxhash.xxh3_128()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class ColumnarCache:
    """Parsed frames on disk under ``root`` (``FLOWSENTINEL_HOME/cache`` by default)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._index_path = self.root / "hash-index.json"
        self._index: dict[str, str] | None = None

    # -- content hashes ------------------------------------------------------------------
    def _load_index(self) -> dict[str, str]:
        if self._index is None:
            try:
                self._index = json.loads(self._index_path.read_text())
            except (OSError, ValueError):
                self._index = {}
        return self._index

    def file_hash(self, path: Path) -> str:
        st = path.stat()
        signature = f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"
        index = self._load_index()
        if signature not in index:
            index[signature] = content_hash(path)
            self._save_index()
        return index[signature]

    def _save_index(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self._index_path, json.dumps(self._index))

    # -- parsed frames -------------------------------------------------------------------
    def _entry(self, key: str) -> Path:
        return self.root / "parsed" / f"{key}-v{READER_VERSION}"

    def get(self, key: str) -> tuple[pl.DataFrame, dict[str, object]] | None:
        entry = self._entry(key)
        data, meta = entry.with_suffix(".arrow"), entry.with_suffix(".json")
        if not (data.is_file() and meta.is_file()):
            return None
        try:
            return pl.read_ipc(data), json.loads(meta.read_text())
        except (OSError, ValueError, pl.exceptions.PolarsError):
            return None

    def put(self, key: str, frame: pl.DataFrame, meta: dict[str, object]) -> None:
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(".arrow.tmp")
        frame.write_ipc(tmp, compression="uncompressed")
        os.replace(tmp, entry.with_suffix(".arrow"))
        _atomic_write_text(entry.with_suffix(".json"), json.dumps(meta))

    # -- finished results ----------------------------------------------------------------
    def result_dir(self, key: str) -> Path:
        return self.root / "results" / key

    def fetch_result(self, key: str, names: list[str], out: Path) -> bool:
        """Copy a stored result (all ``names``) into ``out``; False when not stored."""
        src = self.result_dir(key)
        if not all((src / n).is_file() for n in names):
            return False
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            _link_or_copy(src / n, out / n)
        return True

    def store_result(self, key: str, names: list[str], out: Path) -> None:
        dst = self.result_dir(key)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=_ensure(dst.parent)))
        for n in names:
            _link_or_copy(out / n, tmp / n)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (instant, no space) where possible, else copy. Writers of flowsentinel unlink
    an output before writing it, so a linked cache entry is never modified through it."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
