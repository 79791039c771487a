"""The GPU dashboard: GPUCollector's hw.* per GPU, and the GPU memory of measured work."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    INSTANCE,
    JOULES_PER_KWH,
    MONEY,
    MONEY_NOTE,
    graph,
    new_dashboard,
    price_variable,
    query_variable,
    row,
    selector,
    single_stat,
)


def gpu() -> dashboard.Dashboard:
    """GPUCollector: hw.* per GPU, and the GPU memory of measured processes and blocks."""
    gpus = (INSTANCE, 'hw_id=~"$gpu"')
    legend = "{{instance}} {{hw_name}} {{hw_id}}"
    by = "instance, hw_id, hw_name"

    def per_gpu(metric: str) -> list[tuple[str, str]]:
        return [(f"max by ({by}) ({selector(metric, *gpus)})", legend)]

    energy = f"sum by ({by}) (increase({selector('hw_energy_joules_total', *gpus)}[$__range]))"
    busy = f"max by ({by}) ({selector('hw_gpu_utilization', *gpus)})"

    return (
        new_dashboard(
            "jobmeter / GPU",
            "jobmeter-gpu",
            "NVIDIA GPUs read through NVML by GPUCollector (hw.* semantic conventions).",
        )
        .with_variable(
            query_variable(
                "gpu", "GPU", f"label_values({selector('hw_gpu_utilization', INSTANCE)}, hw_id)"
            )
        )
        .with_variable(price_variable("price_per_kwh"))
        .with_variable(price_variable("price_per_gpu_hour"))
        .with_row(row("GPUs"))
        .with_panel(graph("Utilization", "percentunit", per_gpu("hw_gpu_utilization")))
        .with_panel(
            graph("Memory utilization", "percentunit", per_gpu("hw_gpu_memory_utilization"))
        )
        .with_panel(
            graph(
                "Memory used and limit",
                "bytes",
                [
                    (
                        f"max by ({by}) ({selector('hw_gpu_memory_usage_bytes', *gpus)})",
                        f"{legend} used",
                    ),
                    (
                        f"max by ({by}) ({selector('hw_gpu_memory_limit_bytes', *gpus)})",
                        f"{legend} limit",
                    ),
                ],
            )
        )
        .with_panel(graph("Power", "watt", per_gpu("hw_power_watts")))
        .with_panel(graph("Temperature", "celsius", per_gpu("hw_temperature_celsius")))
        .with_panel(
            single_stat(
                "Energy over the time range",
                "joule",
                [(energy, legend)],
                description="Only GPUs with an energy counter report hw.energy.",
                span=12,
            )
        )
        .with_panel(
            single_stat(
                "Energy cost over the time range",
                MONEY,
                [(f"{energy} / {JOULES_PER_KWH} * $price_per_kwh", legend)],
                description="kWh each GPU used over the time range (hw.energy), times "
                f"$price_per_kwh. {MONEY_NOTE}",
                span=12,
            )
        )
        .with_panel(
            single_stat(
                "GPU cost (GPU time busy)",
                MONEY,
                [
                    (
                        f"sum_over_time(({busy})[$__range:$__interval]) "
                        "* $__interval_ms / 1000 / 3600 * $price_per_gpu_hour",
                        legend,
                    )
                ],
                description="GPU-hours each GPU was busy over the time range "
                "(hw.gpu.utilization, taken every $__interval: an hour at 50 % is half a "
                f"GPU-hour), times $price_per_gpu_hour. {MONEY_NOTE} Dashboards price what was "
                "used, from metrics; `jobmeter report` prices the GPUs a run could use over its "
                "wall time, from run.json, so the two differ by design.",
                span=12,
            )
        )
        .with_row(row("Measured processes"))
        .with_panel(
            graph(
                "GPU memory of the measured processes",
                "bytes",
                per_gpu("jobmeter_process_gpu_memory_usage_bytes"),
            )
        )
        .with_panel(
            graph(
                "GPU memory after each operation",
                "bytes",
                [
                    (
                        "max by (operation_name, hw_id) ("
                        f"{selector('jobmeter_operation_gpu_memory_usage_bytes', INSTANCE)})",
                        "{{operation_name}} {{hw_id}}",
                    )
                ],
                description="Blocks measured with measure(..., gpu=True).",
            )
        )
    )
