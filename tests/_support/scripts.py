"""Run a Python script in a fresh interpreter that can import ``_support``, for what only a new
process shows (what is imported, what runs at exit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def run_script(script: str) -> str:
    """The stdout of ``script`` (dedented); a failure raises with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    return done.stdout
