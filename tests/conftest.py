"""Shared fixtures: every test starts with no jobmeter/OTel global state and no OTEL_* env."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jobmeter._core import sdk


@pytest.fixture(autouse=True)
def _clean_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "JOBMETER_")):
            monkeypatch.delenv(name)
    sdk.reset()
    yield
    sdk.reset()
