"""Shared fixtures: every test starts with no jobmeter/OTel global state and no OTEL_* env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.fake_powercap import FakePowercap
from jobmeter import testing


@pytest.fixture(autouse=True)
def _clean_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "JOBMETER_")):
            monkeypatch.delenv(name)
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePowercap:
    """A fake RAPL tree that JOBMETER_SYSFS_PATH points at, without zones: tests add theirs."""
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path))
    return FakePowercap(tmp_path)
