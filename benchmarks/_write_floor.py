"""What writing new files costs on this machine, whatever program writes them (a child of
``bench_clean.py``).

``python _write_floor.py DIR SIZE [SIZE ...]`` creates one new file per SIZE (bytes) in DIR,
written with ``os.write`` from one 8 MiB buffer that is reused (no encoding, no compression, no
``fsync``: what a program that already holds its bytes pays to put them into new files, as
``data clean`` does with its cache entries and ``clean.parquet``), then deletes them. It prints
one JSON line: the seconds of the writes and the bytes written.

No part of flowsentinel is imported: the time measured is the operating system's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CHUNK = 8 << 20


def main(argv: list[str]) -> int:
    folder, sizes = Path(argv[0]), [int(x) for x in argv[1:]]
    folder.mkdir(parents=True, exist_ok=True)
    buffer = memoryview(bytes(range(256)) * (CHUNK // 256))  # not zeros: no special case
    paths = [folder / f"write-floor-{i}.bin" for i in range(len(sizes))]
    start = time.perf_counter()
    for path, size in zip(paths, sizes, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left > 0:
                left -= os.write(fd, buffer[: min(CHUNK, left)])
        finally:
            os.close(fd)
    seconds = time.perf_counter() - start
    for path in paths:
        path.unlink()
    print(json.dumps({"seconds": seconds, "bytes": sum(sizes), "files": len(sizes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
