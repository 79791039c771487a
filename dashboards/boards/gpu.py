"""The GPU dashboard: GPUCollector's hw.* per GPU, and the GPU memory of measured work."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    INSTANCE,
    graph,
    new_dashboard,
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
                [
                    (
                        f"sum by ({by}) (increase("
                        f"{selector('hw_energy_joules_total', *gpus)}[$__range]))",
                        legend,
                    )
                ],
                description="Only GPUs with an energy counter report hw.energy.",
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
