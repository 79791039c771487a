"""Shared fixtures: every test starts with no jobmeter/OTel global state and no OTEL_* env."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jobmeter import testing


@pytest.fixture(autouse=True)
def _clean_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "JOBMETER_")):
            monkeypatch.delenv(name)
    testing.reset()
    yield
    testing.reset()
