"""JOBMETER_HOST_NAME: the machine's name plain, hashed or left out, alike everywhere it goes.

The resource of every metric, run.json's ``host`` and the Pushgateway's
``instance`` label must agree; with ``omit`` none of them may carry the name.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobmeter
from jobmeter._core import machine, pushgateway
from jobmeter.testing import in_memory

HASHED = "host-" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]


@pytest.fixture(autouse=True)
def _fresh_machine_facts() -> Iterator[None]:
    machine.machine_info.cache_clear()  # the facts are cached per process
    yield
    machine.machine_info.cache_clear()


@pytest.mark.parametrize(
    ("mode", "expected"), [(None, socket.gethostname()), ("plain", socket.gethostname()),
                           ("hash", HASHED), ("omit", None)],
)  # fmt: skip
def test_the_resource_and_the_grouping_key_agree(
    mode: str | None, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode is not None:
        monkeypatch.setenv("JOBMETER_HOST_NAME", mode)
    with in_memory() as recorded:
        with jobmeter.MetricsCollector("etl").measure("load"):
            pass
        attributes = dict(recorded.resource().attributes)
    assert attributes.get("host.name") == expected
    assert pushgateway.grouping_key({"team": "data"}) == (
        {"team": "data"} if expected is None else {"instance": expected, "team": "data"}
    )
    if expected != socket.gethostname():
        assert socket.gethostname() not in json.dumps(attributes)


def test_a_bad_value_is_one_warning_and_the_plain_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_HOST_NAME", "secret")
    assert machine.host_name() == socket.gethostname()
    (warning,) = [r for r in caplog.records if "JOBMETER_HOST_NAME" in r.getMessage()]
    assert "accepted: plain, hash, omit" in warning.getMessage()


@pytest.mark.parametrize("mode", ["hash", "omit"])
def test_run_json_and_the_pushgateway_never_see_the_name(tmp_path: Path, mode: str) -> None:
    """A real run pushing to a real Pushgateway, with the name hashed or left out."""
    from _support.pushgateway import Pushgateway

    with Pushgateway(tmp_path) as gateway:
        done = subprocess.run(
            [sys.executable, "-m", "jobmeter", "run", "-q", "--name", "private", "--",
             sys.executable, "-c", "pass"],
            env={**os.environ, "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
                 "OTEL_METRICS_EXPORTER": "none", "JOBMETER_HOST_NAME": mode,
                 "JOBMETER_PUSHGATEWAY_URL": gateway.url},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        pushed = gateway.metrics_text()
    (run,) = (tmp_path / "runs").iterdir()
    record = (run / "run.json").read_text()
    assert socket.gethostname() not in record
    host = json.loads(record)["host"]
    exit_codes = [line for line in pushed.splitlines()
                  if line.startswith("jobmeter_run_exit_code{")]  # fmt: skip
    assert exit_codes, pushed
    if mode == "hash":
        assert host["host.name"] == HASHED
        assert f'instance="{HASHED}"' in exit_codes[0]
    else:
        assert "host.name" not in host
        assert 'instance=""' in exit_codes[0] or "instance=" not in exit_codes[0]
    assert socket.gethostname() not in "\n".join(exit_codes)
