"""The host dashboard: HostCollector's machine (system.*) and process (process.*)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    INSTANCE,
    JOULES_PER_KWH,
    MONEY,
    MONEY_NOTE,
    gauge_by,
    graph,
    new_dashboard,
    price_variable,
    rate_by,
    row,
    selector,
    single_stat,
)


def host() -> dashboard.Dashboard:
    """HostCollector: the machine (system.*) and the process (process.*)."""
    energy = (
        "sum by (instance, hw_type) (increase("
        f"{selector('hw_energy_joules_total', INSTANCE)}[$__range]))"
    )
    return (
        new_dashboard(
            "jobmeter / Host & process",
            "jobmeter-host",
            "Machine and process figures of HostCollector / start_host_metrics().",
        )
        .with_variable(price_variable("price_per_kwh"))
        .with_row(row("Machine"))
        .with_panel(
            graph(
                "CPU utilization by mode",
                "percentunit",
                [
                    (
                        "avg by (instance, cpu_mode) ("
                        + selector("system_cpu_utilization", INSTANCE, 'cpu_mode!="idle"')
                        + ")",
                        "{{instance}} {{cpu_mode}}",
                    )
                ],
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Load average",
                "short",
                [
                    (
                        selector(f"system_cpu_load_average_{window}", INSTANCE),
                        f"{{{{instance}}}} {window}",
                    )
                    for window in ("1m", "5m", "15m")
                ],
            )
        )
        .with_panel(
            graph(
                "Memory by state",
                "bytes",
                gauge_by(
                    "system_memory_usage_bytes",
                    "instance, system_memory_state",
                    "{{instance}} {{system_memory_state}}",
                ),
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Memory and swap used",
                "percentunit",
                [
                    (
                        selector(
                            "system_memory_utilization", INSTANCE, 'system_memory_state="used"'
                        ),
                        "{{instance}} memory",
                    ),
                    (
                        selector(
                            "system_paging_utilization", INSTANCE, 'system_paging_state="used"'
                        ),
                        "{{instance}} swap",
                    ),
                ],
                description="Swap (system.paging.*) is reported only on machines that have swap.",
            )
        )
        .with_panel(
            graph(
                "Disk I/O",
                "Bps",
                rate_by(
                    "system_disk_io_bytes_total",
                    "instance, system_device, disk_io_direction",
                    "{{instance}} {{system_device}} {{disk_io_direction}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Disk operations",
                "iops",
                rate_by(
                    "system_disk_operations_total",
                    "instance, system_device, disk_io_direction",
                    "{{instance}} {{system_device}} {{disk_io_direction}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Network traffic",
                "Bps",
                rate_by(
                    "system_network_io_bytes_total",
                    "instance, network_interface_name, network_io_direction",
                    "{{instance}} {{network_interface_name}} {{network_io_direction}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Network packets and errors",
                "pps",
                rate_by(
                    "system_network_packet_count_total",
                    "instance, network_interface_name, network_io_direction",
                    "{{instance}} {{network_interface_name}} {{network_io_direction}} packets",
                )
                + rate_by(
                    "system_network_errors_total",
                    "instance, network_interface_name, network_io_direction",
                    "{{instance}} {{network_interface_name}} {{network_io_direction}} errors",
                ),
            )
        )
        .with_panel(
            graph(
                "Filesystem used",
                "percentunit",
                [
                    (
                        "sum by (instance, system_device, system_filesystem_mountpoint) ("
                        + selector(
                            "system_filesystem_usage_bytes",
                            INSTANCE,
                            'system_filesystem_state="used"',
                        )
                        + ") / sum by (instance, system_device, system_filesystem_mountpoint) ("
                        + selector("system_filesystem_usage_bytes", INSTANCE)
                        + ")",
                        "{{instance}} {{system_filesystem_mountpoint}}",
                    )
                ],
                span=24,
            )
        )
        .with_panel(
            graph(
                "Machine power by hw.type",
                "watt",
                rate_by("hw_energy_joules_total", "instance, hw_type", "{{instance}} {{hw_type}}"),
                description="From the machine's energy counters (hw.energy): cpu and dram from "
                "RAPL (HostCollector), gpu from the GPUs' (GPUCollector). No data where none can "
                "be read.",
                stack=True,
            )
        )
        .with_panel(
            single_stat(
                "Machine energy over the time range",
                "joule",
                [(energy, "{{instance}} {{hw_type}}")],
                description="The machine's energy by hw.type over the time range (hw.energy).",
            )
        )
        .with_panel(
            single_stat(
                "Machine energy cost over the time range",
                MONEY,
                [
                    (
                        f"sum by (instance) ({energy}) / {JOULES_PER_KWH} * $price_per_kwh",
                        "{{instance}}",
                    )
                ],
                description="kWh the machine used over the time range (hw.energy, all "
                f"hw.type), times $price_per_kwh. {MONEY_NOTE}",
            )
        )
        .with_row(row("Process"))
        .with_panel(
            graph(
                "CPU seconds per second by cpu.mode",
                "short",
                rate_by(
                    "process_cpu_time_seconds_total",
                    "instance, cpu_mode",
                    "{{instance}} {{cpu_mode}}",
                ),
                axis_label="cores",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "CPU utilization",
                "percentunit",
                gauge_by(
                    "process_cpu_utilization", "instance, cpu_mode", "{{instance}} {{cpu_mode}}"
                ),
                description="Share of the CPUs the process may run on.",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Memory",
                "bytes",
                gauge_by("process_memory_usage_bytes", "instance", "{{instance}} resident")
                + gauge_by("process_memory_virtual_bytes", "instance", "{{instance}} virtual"),
            )
        )
        .with_panel(
            graph(
                "Disk I/O",
                "Bps",
                rate_by(
                    "process_disk_io_bytes_total",
                    "instance, disk_io_direction",
                    "{{instance}} {{disk_io_direction}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Threads and file descriptors",
                "short",
                gauge_by("process_thread_count", "instance", "{{instance}} threads")
                + gauge_by(
                    "process_unix_file_descriptor_count", "instance", "{{instance}} descriptors"
                ),
            )
        )
        .with_panel(
            graph(
                "Context switches and page faults",
                "cps",
                rate_by(
                    "process_context_switches_total",
                    "instance, process_context_switch_type",
                    "{{instance}} {{process_context_switch_type}} switches",
                )
                + rate_by(
                    "process_paging_faults_total",
                    "instance, process_paging_fault_type",
                    "{{instance}} {{process_paging_fault_type}} faults",
                ),
            )
        )
    )
