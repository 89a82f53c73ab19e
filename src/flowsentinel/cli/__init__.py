"""The ``flowsentinel`` command line."""

import os
import sys

# Before polars is loaded. Its allocator (jemalloc) hands freed pages back to the OS within
# a second (polars sets dirty_decay_ms:500,muzzy_decay_ms:1000, then appends this variable,
# whose values win), so every pass of ``data clean`` over ~1 GB of columns faults in and
# zeroes fresh pages again (measured on the 2-core VM: 2-3 s of the 6.5-7.4 s of system time
# of a cold run). The ``data`` commands are batch jobs that exit: their freed pages are kept
# for reuse (peak RSS of a cold clean 1.1-1.46 GB instead of 0.9-1.1 GB for 880 MB of CSV).
# Other commands (``serve`` runs for long) return them after 30 s. A value the user sets wins.
_KEEP = "-1" if sys.argv[1:2] == ["data"] else "30000"
os.environ.setdefault("_RJEM_MALLOC_CONF", f"dirty_decay_ms:{_KEEP},muzzy_decay_ms:{_KEEP}")

from flowsentinel.cli.main import app, run  # noqa: E402

__all__ = ["app", "run"]
