"""The settings rows of the machine's hardware and prices: GPU metrics, energy, cost.

Rows of ``variables.VARIABLES`` (which re-exports the names), kept apart so
that the table stays readable; their order here is their order in the docs.
"""

from __future__ import annotations

from typing import Final

from jobmeter._core.parse import parse_bool, parse_gpu_metrics, parse_price, parse_text
from jobmeter._core.setting import Variable

GPU_METRICS: Final = "JOBMETER_GPU_METRICS"
ENERGY: Final = "JOBMETER_ENERGY"
SYSFS_PATH: Final = "JOBMETER_SYSFS_PATH"
DEFAULT_SYSFS_PATH: Final = "/sys"
PRICE_PER_KWH: Final = "JOBMETER_PRICE_PER_KWH"
PRICE_PER_CPU_HOUR: Final = "JOBMETER_PRICE_PER_CPU_HOUR"
PRICE_PER_GPU_HOUR: Final = "JOBMETER_PRICE_PER_GPU_HOUR"
PRICE_PER_GB_HOUR: Final = "JOBMETER_PRICE_PER_GB_HOUR"
CURRENCY: Final = "JOBMETER_CURRENCY"

# Hand-aligned, as the rest of the table.
# fmt: off
HARDWARE_ROWS: Final = (
    Variable(GPU_METRICS, None, parse_gpu_metrics,
        keyword_note="`metrics=` of `GPUCollector` (an iterable of the names), which wins",
        default="`memory,utilization,power,energy,temperature`",
        accepted="a comma-separated subset of `memory`, `utilization`, `power`, `energy`, "
                 "`temperature`",
        meaning="The GPU metrics `GPUCollector` (and the `gpu` group of `HostCollector`) report, "
                "NVIDIA and AMD alike: `memory` is `hw.gpu.memory.usage`, `.limit`, "
                "`.utilization` and `jobmeter.process.gpu.memory.usage`; `utilization` "
                "`hw.gpu.utilization`; `power` `hw.power`; `energy` `hw.energy`; `temperature` "
                "`hw.temperature`. The others are not created at all. An unknown name is one "
                "warning and the default applies; an unknown keyword value raises."),
    Variable(ENERGY, None, parse_bool,
        keyword_note="`energy=` of `measure()` for one block",
        default="`true`",
        accepted="`true` or `false`",
        meaning="`true`: measured blocks, `jobmeter run` and `HostCollector` read the machine's "
                "energy counters where they can be read (RAPL for CPU and DRAM, the GPU's energy "
                "counter), as `jobmeter.operation.energy`, `jobmeter.run.energy`, run.json's "
                "`energy_joules` and `hw.energy` ([energy.md](energy.md)). Without readable "
                "counters nothing is reported and one INFO line says why. `false`: no counter is "
                "read."),
    Variable(SYSFS_PATH, None, parse_text,
        default="`/sys`",
        accepted="a directory path",
        meaning="Where sysfs is mounted: the RAPL counters are read under "
                "`<path>/class/powercap`. For containers that mount the host's sysfs elsewhere, "
                "and for tests (as psutil's `PROCFS_PATH`)."),
    Variable(PRICE_PER_KWH, "price_per_kwh", parse_price,
        default="unset (no energy cost)",
        accepted="a number, 0 or more (the `JOBMETER_CURRENCY` per kWh)",
        meaning="What a kilowatt-hour costs: `report`, `compare`, `advise` and the summary of "
                "`jobmeter run` turn the energy of a run into money "
                "([energy.md](energy.md#cost))."),
    Variable(PRICE_PER_CPU_HOUR, "price_per_cpu_hour", parse_price,
        default="unset (no CPU cost)",
        accepted="a number, 0 or more",
        meaning="What one CPU costs for an hour: charged for the CPUs a run held (its cgroup's "
                "`cpu.max`, else the CPUs it could use) over its wall time."),
    Variable(PRICE_PER_GPU_HOUR, "price_per_gpu_hour", parse_price,
        default="unset (no GPU cost)",
        accepted="a number, 0 or more",
        meaning="What one GPU costs for an hour: charged for the GPUs a run could use over its "
                "wall time."),
    Variable(PRICE_PER_GB_HOUR, "price_per_gb_hour", parse_price,
        default="unset (no memory cost)",
        accepted="a number, 0 or more",
        meaning="What one GiB of memory costs for an hour: charged for the memory a run held "
                "(its cgroup's `memory.max`, else the machine's) over its wall time."),
    Variable(CURRENCY, "currency", parse_text,
        default="`USD`",
        accepted="a currency code such as `USD`, `EUR`, `GBP`",
        meaning="The currency of the prices; shown as `$`, `€` or `£` for those three, else as "
                "the code after the amount."),
)
# fmt: on
