"""The interpreter settings of long-running processes."""

from __future__ import annotations

import subprocess
import sys


def test_a_tuned_process_exits_without_warnings_from_duckdb() -> None:
    # Objects frozen away from the collector are handed back at exit; left frozen, the
    # DuckDB bindings print "nanobind: leaked ..." pages when the process ends.
    script = (
        "import duckdb\n"
        "from omnicanal.core.runtime import tune_gc\n"
        "tune_gc()\n"
        "tune_gc()\n"
        "duckdb.connect().execute('SELECT 42').fetchall()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr
