"""A columnar cache of parsed input files, keyed by the files' content.

Each input file is identified by the xxh3-128 hash of its bytes; its canonical frame is kept as
an uncompressed Arrow IPC file with the read report beside it. Loading an entry memory-maps it:
nothing is copied, the pages come from the OS page cache and only the columns a run touches are
read. Like git's index, the hash of a file is remembered against its (device, inode, size,
mtime) so that an unchanged file is not hashed again; any change to the file changes that
signature and forces a new hash.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import xxhash

# bump when reading, canonical names or the entry format change: old entries are ignored
READER_VERSION = "4"


def content_hash(path: Path) -> str:
    """xxh3-128 of the file's bytes (hashed where the OS page cache holds them: no copy)."""
    h = xxhash.xxh3_128()
    with path.open("rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                h.update(view)
    return h.hexdigest()


class Mapping:
    """A read-only memory map of a cache entry. :meth:`release` drops its pages from the
    process (they stay in the page cache; the next read maps them again), which bounds the
    resident memory of a pass that reads every column once."""

    def __init__(self, view: mmap.mmap) -> None:
        self.view = view

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.view.madvise(mmap.MADV_DONTNEED)


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

    def has(self, key: str) -> bool:
        entry = self._entry(key)
        return entry.with_suffix(".arrow").is_file() and entry.with_suffix(".json").is_file()

    def get(self, key: str) -> tuple[pl.DataFrame, dict[str, object]] | None:
        """The stored frame (memory-mapped, zero-copy) and its metadata; None on a miss."""
        hit = self.get_mapped(key)
        return None if hit is None else (hit[0], hit[1])

    def get_mapped(self, key: str) -> tuple[pl.DataFrame, dict[str, object], Mapping] | None:
        """:meth:`get`, plus the :class:`Mapping` the frame's columns live in."""
        entry = self._entry(key)
        data, meta = entry.with_suffix(".arrow"), entry.with_suffix(".json")
        if not (data.is_file() and meta.is_file()):
            return None
        try:
            info = json.loads(meta.read_text())
            with data.open("rb") as fh:
                view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            table = ipc.open_file(pa.BufferReader(pa.py_buffer(view))).read_all()
            frame = pl.from_arrow(table, rechunk=False)
        except (OSError, ValueError, pa.ArrowException, pl.exceptions.PolarsError):
            return None
        if not isinstance(frame, pl.DataFrame) or not isinstance(info, dict):
            return None
        return frame, info, Mapping(view)

    def put(self, key: str, frame: pl.DataFrame, meta: dict[str, object]) -> None:
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".arrow.{_writer_id()}.tmp")
        table = frame.to_arrow()
        with ipc.new_file(str(tmp), table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, entry.with_suffix(".arrow"))
        _atomic_write_text(entry.with_suffix(".json"), json.dumps(meta))

    # -- masks derived from a set of files -------------------------------------------------
    def get_mask(self, key: str) -> np.ndarray | None:
        """A boolean mask stored by :meth:`put_mask`; None on a miss."""
        path = self.root / "derived" / f"{key}.npz"
        try:
            with np.load(path) as stored:
                return np.unpackbits(stored["bits"], count=int(stored["n"])).astype(bool)
        except (OSError, ValueError, KeyError):
            return None

    def put_mask(self, key: str, mask: np.ndarray) -> None:
        path = _ensure(self.root / "derived") / f"{key}.npz"
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, bits=np.packbits(mask), n=np.int64(mask.size))
        os.replace(tmp, path)

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


def _writer_id() -> str:
    """Process and thread: temporary names of their own, for processes (Dask workers) that
    fill one cache at the same time."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{_writer_id()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
