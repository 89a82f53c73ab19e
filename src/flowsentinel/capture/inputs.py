"""What the user named on the command line → the captures to read.

Each input is a capture file, a folder (every capture inside it, recursively, recognised by its
magic number; other files are counted and reported), a glob pattern (``captures/*.pcap``,
``s3://bucket/day1/*.pcap``) or an fsspec URL. ``-`` (a pcap stream on stdin) stands alone.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowsentinel.capture.pcap import file_head, is_capture_magic
from flowsentinel.core.errors import InputError

_GLOB_CHARS = frozenset("*?[")


@dataclass
class Inputs:
    """The captures to read, and the files of named folders that are not captures."""

    captures: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def stdin(self) -> bool:
        return self.captures == ["-"]


def expand_inputs(names: Sequence[str]) -> Inputs:
    """The captures named by ``names``, each once, in the order named (folders and globs in
    sorted order); one :class:`InputError` line for a name that matches nothing.

    Examples
    --------
    >>> expand_inputs(["-"]).stdin
    True
    """
    if "-" in names:
        if len(names) > 1:
            raise InputError("'-' (stdin) cannot be combined with other captures")
        return Inputs(["-"])
    out = Inputs()
    for name in names:
        if "://" in name:
            out.captures += _expand_url(name)
        elif _GLOB_CHARS & set(name):
            matches = sorted(globlib.glob(name, recursive=True))
            if not matches:
                raise InputError("no capture matches this pattern", path=name)
            _add_local(out, [Path(m) for m in matches], named=False)
        else:
            _add_local(out, [Path(name)], named=True)
    out.captures = list(dict.fromkeys(out.captures))
    if not out.captures:
        raise InputError(
            f"no capture file among {', '.join(names)} (ignored {len(out.ignored)} other files)"
        )
    return out


def _add_local(out: Inputs, paths: list[Path], *, named: bool) -> None:
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                (out.captures if _looks_like_capture(file) else out.ignored).append(str(file))
        elif path.is_file():
            if named or _looks_like_capture(path):
                out.captures.append(str(path))  # a named file is checked when it is read
            else:
                out.ignored.append(str(path))
        elif named:
            raise InputError("no such capture file or folder", path=path)


def _looks_like_capture(path: Path) -> bool:
    """A pcap/pcapng magic number, or an empty file (an empty slice of a rotated capture)."""
    try:
        head = file_head(path)
    except (InputError, OSError):
        return False
    return not head or is_capture_magic(head)


def _expand_url(url: str) -> list[str]:
    """An fsspec URL, a glob over one, or a folder at one: the capture URLs it names."""
    import fsspec  # 150 ms of imports: only when a URL is named (the CLI's start-up budget)

    try:
        fs, path = fsspec.core.url_to_fs(url)
        protocol = url.split("://", 1)[0]
        if _GLOB_CHARS & set(path):
            found = sorted(fs.glob(path))
        elif fs.isdir(path):
            found = sorted(fs.find(path))
        elif fs.exists(path):
            return [url]
        else:
            raise InputError("no such capture file or folder", path=url)
    except InputError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"cannot list the captures ({exc})", path=url) from None
    if not found:
        raise InputError("no capture matches this pattern", path=url)
    return [p if "://" in p else f"{protocol}://{p}" for p in found]
