"""The command line starts without the heavy libraries: each command imports what it needs
when it runs. Importing them all at start-up makes ``flowsentinel --help`` take about 11 s
instead of about 2 s on a 2-core machine (``python -c "import flowsentinel.cli.main,
flowsentinel.models.training, flowsentinel.service.app, ..."`` against ``flowsentinel --help``),
so the commands' imports of the model, service and capture layers stay inside the commands."""

from __future__ import annotations

import json
import subprocess
import sys

#: what ``import flowsentinel.cli`` must not load: ML, tracking, the web stack, the JIT
HEAVY = ("mlflow", "sklearn", "xgboost", "lightgbm", "fastapi", "uvicorn", "numba", "matplotlib")


def test_cli_start_up_leaves_heavy_libraries_for_the_commands() -> None:
    code = (
        "import json, sys, flowsentinel.cli.main; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
