"""The command line starts without the heavy libraries: each command imports what it needs
when it runs. Importing them all at start-up makes ``flowsentinel --help`` take about 11 s
instead of about 2 s on a 2-core machine (``python -c "import flowsentinel.cli.main,
flowsentinel.models.training, flowsentinel.service.app, ..."`` against ``flowsentinel --help``),
so the commands' imports of the model, service and capture layers stay inside the commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.capture.craft import pcap_bytes, tcp_session

#: what ``import flowsentinel.cli`` must not load: ML, tracking, the web stack, the JIT
HEAVY = ("mlflow", "sklearn", "xgboost", "lightgbm", "fastapi", "uvicorn", "numba", "matplotlib")


def test_cli_start_up_leaves_heavy_libraries_for_the_commands() -> None:
    code = (
        "import json, sys, flowsentinel.cli.main; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


#: what ``flows`` on one capture to CSV must not load: the JIT (its import and its typing
#: context, which pulls SciPy's BLAS bindings, were 0.75 s of a 1.2 s run: the kernels are
#: compiled ahead of time, ``capture.kernels``), the data frame libraries, the cluster, the ML
#: stack, and Arrow's parquet module (its filesystem layer loads ssl: 25-40 ms)
FLOWS_HEAVY = (*HEAVY, "llvmlite", "scipy", "pandas", "polars", "dask", "distributed",
               "pyarrow.parquet", "ssl")  # fmt: skip

_RUN_FLOWS = """
import json, sys
sys.argv = ["flowsentinel", "flows", sys.argv[1], "-o", sys.argv[2]]
from flowsentinel.cli.main import app
try:
    app()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def test_flows_of_one_capture_loads_no_jit_and_no_data_frame_library(tmp_path: Path) -> None:
    capture = tmp_path / "one.pcap"
    capture.write_bytes(pcap_bytes(tcp_session()))
    out = tmp_path / "flows.csv"
    code = _RUN_FLOWS.format(heavy=FLOWS_HEAVY)
    done = subprocess.run([sys.executable, "-c", code, str(capture), str(out)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    # the header, the session up to the FIN that closes it, and its teardown (a new flow)
    assert len(out.read_text().splitlines()) == 3
