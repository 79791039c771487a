"""The cost of a run: exact arithmetic, prices from the environment or configure(), money text."""

from __future__ import annotations

import logging

import pytest

import jobmeter
from jobmeter import store
from jobmeter._core.errors import ConfigurationError
from jobmeter.store import Prices, cost_of, held_of, prices

HELD = {"cpus": 4.0, "memory_bytes": 16 * 2**30, "gpus": 2}
FIGURES = {"wall_seconds": 5400.0, "energy_total_joules": 7.2e6}  # 1.5 h, 2 kWh


def test_every_part_is_price_times_quantity() -> None:
    cost = cost_of(FIGURES, HELD, Prices(0.30, 0.05, 2.0, 0.01))
    assert cost is not None
    assert cost.kwh == pytest.approx(2.0, rel=1e-12)
    assert cost.energy == pytest.approx(0.60, rel=1e-12)
    assert cost.cpu == pytest.approx(4 * 1.5 * 0.05, rel=1e-12)
    assert cost.gpu == pytest.approx(2 * 1.5 * 2.0, rel=1e-12)
    assert cost.memory == pytest.approx(16 * 1.5 * 0.01, rel=1e-12)
    assert cost.total == pytest.approx(0.60 + 0.30 + 6.0 + 0.24, rel=1e-12)


def test_an_unset_price_leaves_its_part_out_and_no_price_no_cost() -> None:
    cost = cost_of(FIGURES, HELD, Prices(per_cpu_hour=0.05))
    assert cost is not None
    assert (cost.energy, cost.gpu, cost.memory) == (None, None, None)
    assert cost.total == pytest.approx(0.30, rel=1e-12)
    assert cost_of(FIGURES, HELD, Prices()) is None


def test_a_run_without_energy_has_no_energy_part() -> None:
    cost = cost_of({"wall_seconds": 3600.0, "energy_total_joules": None}, HELD, Prices(0.3, 0.05))
    assert cost is not None
    assert cost.kwh is None
    assert cost.energy is None
    assert cost.total == pytest.approx(0.20, rel=1e-12)


def test_another_size_prices_the_advised_request() -> None:
    cost = cost_of(FIGURES, HELD, Prices(per_cpu_hour=0.05, per_gb_hour=0.01), cpus=1.5,
                   memory_bytes=3 * 2**30)  # fmt: skip
    assert cost is not None
    assert cost.cpu == pytest.approx(1.5 * 1.5 * 0.05, rel=1e-12)
    assert cost.memory == pytest.approx(3 * 1.5 * 0.01, rel=1e-12)


def test_runs_without_held_are_priced_from_their_host() -> None:
    record = {"host": {"jobmeter.host.cpu.usable_count": 8, "jobmeter.host.memory.total": 2**34,
                       "jobmeter.host.gpu.count": 1}}  # fmt: skip
    assert held_of(record) == {"cpus": 8.0, "memory_bytes": 2**34, "gpus": 1}
    assert held_of({"held": HELD}) == HELD
    assert held_of({}) == {"cpus": 0.0, "memory_bytes": 0, "gpus": 0}


@pytest.mark.parametrize(
    ("currency", "amount", "text"),
    [("USD", 0.42, "$0.42"), ("EUR", 1234.5, "€1,234.50"), ("GBP", 0.0000208, "£0.000021"),
     ("CHF", 3.14159, "3.14 CHF"), ("USD", 0.0, "$0.00")],
)  # fmt: skip
def test_money_text(currency: str, amount: float, text: str) -> None:
    assert Prices(currency=currency).money(amount) == text


def test_prices_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_PRICE_PER_KWH", "0.25")
    monkeypatch.setenv("JOBMETER_PRICE_PER_GB_HOUR", "0")
    monkeypatch.setenv("JOBMETER_CURRENCY", "EUR")
    assert prices() == Prices(per_kwh=0.25, per_gb_hour=0.0, currency="EUR")


def test_a_bad_price_is_one_warning_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_PRICE_PER_CPU_HOUR", "-1")
    monkeypatch.setenv("JOBMETER_PRICE_PER_KWH", "0.2")
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        found = prices()
    assert found == Prices(per_kwh=0.2)
    (warning,) = [r for r in caplog.records if "JOBMETER_PRICE_PER_CPU_HOUR" in r.getMessage()]
    assert "'-1'" in warning.getMessage()
    assert "a number, 0 or more" in warning.getMessage()


def test_a_bad_price_is_an_error_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_PRICE_PER_KWH", "cheap")
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(ConfigurationError, match="JOBMETER_PRICE_PER_KWH"):
        prices()


def test_configure_keywords_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_PRICE_PER_KWH", "0.25")
    monkeypatch.setenv("JOBMETER_PRICE_PER_CPU_HOUR", "0.05")
    jobmeter.configure(exporters="none", price_per_kwh=0.4, currency="GBP")
    assert store.prices() == Prices(per_kwh=0.4, per_cpu_hour=0.05, currency="GBP")


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "x", True])
def test_a_bad_price_keyword_raises(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="price_per_kwh"):
        jobmeter.configure(exporters="none", price_per_kwh=bad)
