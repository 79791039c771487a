"""What a run cost in money: its energy, and the CPUs, GPUs and memory it held, at given prices.

One definition, used by ``report``, ``compare``, ``advise`` and ``jobmeter run``'s
summary (docs/energy.md#cost):

    energy  kWh (the run's energy_joules, all domains) x JOBMETER_PRICE_PER_KWH
    CPU     CPUs held x wall hours x JOBMETER_PRICE_PER_CPU_HOUR
    GPU     GPUs held x wall hours x JOBMETER_PRICE_PER_GPU_HOUR
    memory  GiB held x wall hours x JOBMETER_PRICE_PER_GB_HOUR

"Held" is run.json's ``held``: the cgroup's limits, else the machine's usable
CPUs and memory (a bill counts what a job held, not what it used). A part
whose price is unset is left out; with no price set there is no cost. The
prices are read when the report is made, so that runs can be priced later.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobmeter._core.environment import read
from jobmeter._core.hardware_settings import (
    CURRENCY,
    PRICE_PER_CPU_HOUR,
    PRICE_PER_GB_HOUR,
    PRICE_PER_GPU_HOUR,
    PRICE_PER_KWH,
)
from jobmeter._core.parse import parse_price, parse_text

JOULES_PER_KWH: Final = 3.6e6
GIB: Final = 2**30
_SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£"}
_IGNORED: Final = "it is ignored: that part of the cost is left out"


@dataclass(frozen=True)
class Prices:
    """Prices per kWh, CPU-hour, GPU-hour and GiB-hour; None where not set."""

    per_kwh: float | None = None
    per_cpu_hour: float | None = None
    per_gpu_hour: float | None = None
    per_gb_hour: float | None = None
    currency: str = "USD"

    @property
    def any(self) -> bool:
        """Whether any price is set."""
        return any(p is not None for p in (self.per_kwh, self.per_cpu_hour, self.per_gpu_hour,
                                           self.per_gb_hour))  # fmt: skip

    def money(self, amount: float) -> str:
        """``$0.42``, ``€1.20``, ``0.42 CHF``; under a cent, two significant digits."""
        small = 0 < abs(amount) < 0.01
        digits = min(2 - math.floor(math.log10(abs(amount))) - 1, 10) if small else 2
        symbol = _SYMBOLS.get(self.currency.upper())
        text = f"{amount:,.{digits}f}"
        return f"{symbol}{text}" if symbol else f"{text} {self.currency}"


def prices(environ: Mapping[str, str] | None = None) -> Prices:
    """The prices of ``configure()`` (its keywords over the environment), else the environment's.

    ``environ`` is read only where this process did not configure telemetry.
    """
    # Only a process that configured telemetry has them: the CLI never loads the SDK for this.
    sdk = sys.modules.get("jobmeter._core.sdk")
    telemetry = sdk.current() if sdk is not None else None
    if telemetry is not None:
        s = telemetry.settings
        return Prices(s.price_per_kwh, s.price_per_cpu_hour, s.price_per_gpu_hour,
                      s.price_per_gb_hour, s.currency)  # fmt: skip

    def price(name: str) -> float | None:
        value: float | None = read(name, parse_price, None, _IGNORED, environ=environ)
        return value

    return Prices(
        price(PRICE_PER_KWH), price(PRICE_PER_CPU_HOUR), price(PRICE_PER_GPU_HOUR),
        price(PRICE_PER_GB_HOUR), read(CURRENCY, parse_text, "USD", "USD applies", environ=environ),
    )  # fmt: skip


@dataclass(frozen=True)
class Cost:
    """A run's cost and its parts (None: that price is unset, or the figure unknown)."""

    total: float
    energy: float | None
    cpu: float | None
    gpu: float | None
    memory: float | None
    currency: str
    cpus: float
    gpus: int
    memory_bytes: int
    kwh: float | None

    def to_json(self) -> dict[str, Any]:
        """Stable keys, documented in docs/energy.md#cost."""
        return dict(self.__dict__)


def held_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's ``held``, or what its ``host`` says where the run predates it."""
    held = record.get("held")
    if isinstance(held, dict):
        return held
    found = record.get("host")
    host: Mapping[str, Any] = found if isinstance(found, dict) else {}
    return {
        "cpus": float(host.get("jobmeter.host.cpu.usable_count") or 0),
        "memory_bytes": int(host.get("jobmeter.host.memory.total") or 0),
        "gpus": int(host.get("jobmeter.host.gpu.count") or 0),
    }


def cost_of(
    figures: Mapping[str, Any],
    held: Mapping[str, Any],
    prices: Prices,
    *,
    cpus: float | None = None,
    memory_bytes: float | None = None,
) -> Cost | None:
    """The cost of a run with ``figures`` (store.FIGURES) that held ``held``; None without prices.

    ``cpus`` and ``memory_bytes`` price it at another size (``advise``'s request).
    """
    if not prices.any:
        return None
    hours = float(figures.get("wall_seconds") or 0.0) / 3600
    held_cpus = float(held.get("cpus") or 0.0) if cpus is None else float(cpus)
    held_memory = int(held.get("memory_bytes") or 0) if memory_bytes is None else int(memory_bytes)
    held_gpus = int(held.get("gpus") or 0)
    joules = figures.get("energy_total_joules")
    kwh = None if joules is None else float(joules) / JOULES_PER_KWH
    energy = None if kwh is None or prices.per_kwh is None else kwh * prices.per_kwh
    cpu = None if prices.per_cpu_hour is None else held_cpus * hours * prices.per_cpu_hour
    gpu = None if prices.per_gpu_hour is None else held_gpus * hours * prices.per_gpu_hour
    memory = None if prices.per_gb_hour is None else held_memory / GIB * hours * prices.per_gb_hour
    parts = [part for part in (energy, cpu, gpu, memory) if part is not None]
    return Cost(sum(parts), energy, cpu, gpu, memory, prices.currency, held_cpus, held_gpus,
                held_memory, kwh)  # fmt: skip
