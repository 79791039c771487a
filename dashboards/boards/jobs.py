"""The jobs dashboard: measure() operations and `jobmeter run`."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    BYTES_PER_GIB,
    INSTANCE,
    JOULES_PER_KWH,
    MONEY,
    MONEY_NOTE,
    RATE,
    graph,
    new_dashboard,
    price_variable,
    quantile_queries,
    query_variable,
    row,
    selector,
    single_stat,
)

# What `jobmeter report` prices, so that the cost panels can say how they differ from it.
REPORT_BASIS = (
    "Dashboards price what was used, from metrics; `jobmeter report` prices what the run held "
    "(the CPUs and memory of its cgroup, else of the machine, over its wall time) from "
    "run.json, so the two differ by design."
)
ENERGY_NOTE = (
    "It is the whole machine's energy (cpu and dram from RAPL, gpu from the GPUs' energy "
    "counters), not a share of it; no data where the machine's counters cannot be read."
)


def jobs() -> dashboard.Dashboard:
    """measure() operations and `jobmeter run`."""
    ops = ('instance=~"$instance"', 'operation_name=~"$operation"')
    run = ('instance=~"$instance"', 'jobmeter_run_name=~"$run"')
    calls = selector("jobmeter_operation_duration_seconds_count", *ops)
    failed = selector("jobmeter_operation_duration_seconds_count", *ops, 'error_type!=""')
    by_op = "sum by (operation_name)"
    op_energy = selector("jobmeter_operation_energy_joules_total", *ops)
    run_energy = selector("jobmeter_run_energy_joules_total", *run)
    run_memory = "jobmeter_run_memory_usage_bytes"
    by_run = "sum by (jobmeter_run_name)"
    # The tree's PSS where the kernel gives it (shared pages counted once), else its RSS.
    pss = selector(run_memory, *run, 'jobmeter_memory_type="pss"')
    rss = selector(run_memory, *run, 'jobmeter_memory_type="rss"')
    used_memory = f"{by_run} ({pss}) or {by_run} ({rss})"
    return (
        new_dashboard(
            "jobmeter / Jobs & operations",
            "jobmeter-jobs",
            "Blocks measured with MetricsCollector.measure(), and commands run under jobmeter run.",
        )
        .with_variable(
            query_variable(
                "operation",
                "Operation",
                f"label_values({selector('jobmeter_operation_duration_seconds_count', INSTANCE)}, "
                "operation_name)",
            )
        )
        .with_variable(
            query_variable(
                "run",
                "Run",
                f"label_values({selector('jobmeter_run_cpu_busy', INSTANCE)}, jobmeter_run_name)",
            )
        )
        .with_variable(price_variable("price_per_kwh"))
        .with_variable(price_variable("price_per_cpu_hour"))
        .with_variable(price_variable("price_per_gb_hour"))
        .with_row(row("Operations"))
        .with_panel(
            graph(
                "Calls per second",
                "ops",
                [(f"{by_op} (rate({calls}{RATE}))", "{{operation_name}}")],
            )
        )
        .with_panel(
            graph(
                "Error ratio",
                "percentunit",
                [
                    (
                        f"{by_op} (rate({failed}{RATE})) / {by_op} (rate({calls}{RATE}))",
                        "{{operation_name}}",
                    )
                ],
                description="Share of blocks that raised (error.type set).",
            )
        )
        .with_panel(
            graph(
                "Duration p50 / p95 / p99",
                "s",
                quantile_queries(
                    selector("jobmeter_operation_duration_seconds_bucket", *ops), "operation_name"
                ),
            )
        )
        .with_panel(
            graph(
                "Failures per second by error type",
                "ops",
                [
                    (
                        f"sum by (operation_name, error_type) (rate({failed}{RATE}))",
                        "{{operation_name}} {{error_type}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Mean duration",
                "s",
                [
                    (
                        f"{by_op} (rate({selector('jobmeter_operation_duration_seconds_sum', *ops)}"
                        f"{RATE})) / {by_op} (rate({calls}{RATE}))",
                        "{{operation_name}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Blocks in progress",
                "short",
                [
                    (
                        f"{by_op} ({selector('jobmeter_operation_active', *ops)})",
                        "{{operation_name}}",
                    )
                ],
            )
        )
        .with_row(row("Resources of operations"))
        .with_panel(
            graph(
                "CPU seconds per second by cpu.mode",
                "short",
                [
                    (
                        "sum by (operation_name, cpu_mode) (rate("
                        f"{selector('jobmeter_operation_cpu_time_seconds_total', *ops)}{RATE}))",
                        "{{operation_name}} {{cpu_mode}}",
                    )
                ],
                description="Process CPU time during the blocks; 1.0 is one core busy.",
                axis_label="cores",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Disk I/O",
                "Bps",
                [
                    (
                        "sum by (operation_name, disk_io_direction) (rate("
                        f"{selector('jobmeter_operation_disk_io_bytes_total', *ops)}{RATE}))",
                        "{{operation_name}} {{disk_io_direction}}",
                    )
                ],
                description="Storage bytes read and written by the process during the blocks.",
            )
        )
        .with_panel(
            graph(
                "Resident memory after the block",
                "bytes",
                [
                    (
                        f"max by (operation_name) "
                        f"({selector('jobmeter_operation_memory_usage_bytes', *ops)})",
                        "{{operation_name}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Peak memory during the block",
                "bytes",
                [
                    (
                        f"max by (operation_name) "
                        f"({selector('jobmeter_operation_memory_peak_bytes', *ops)})",
                        "{{operation_name}}",
                    )
                ],
                description="The process's peak RSS while each block ran, the largest so far "
                "(taken while a run records, or with measure(..., peak_memory=True)).",
            )
        )
        .with_panel(
            graph(
                "Memory growth during the block",
                "bytes",
                [
                    (
                        f"max by (operation_name) "
                        f"({selector('jobmeter_operation_memory_growth_bytes', *ops)})",
                        "{{operation_name}}",
                    )
                ],
                minimum=None,
            )
        )
        .with_row(row("jobmeter run"))
        .with_panel(
            graph(
                "CPU busy",
                "short",
                [
                    (
                        f"sum by (jobmeter_run_name) ({selector('jobmeter_run_cpu_busy', *run)})",
                        "{{jobmeter_run_name}}",
                    ),
                ],
                description="CPUs the command's process tree kept busy since the previous sample.",
                axis_label="CPUs",
            )
        )
        .with_panel(
            graph(
                "CPU seconds per second by cpu.mode",
                "short",
                [
                    (
                        "sum by (jobmeter_run_name, cpu_mode) (rate("
                        f"{selector('jobmeter_run_cpu_time_seconds_total', *run)}{RATE}))",
                        "{{jobmeter_run_name}} {{cpu_mode}}",
                    )
                ],
                axis_label="cores",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Memory of the process tree",
                "bytes",
                [
                    (
                        "sum by (jobmeter_run_name, jobmeter_memory_type) "
                        f"({selector('jobmeter_run_memory_usage_bytes', *run)})",
                        "{{jobmeter_run_name}} {{jobmeter_memory_type}}",
                    )
                ],
            )
        )
        .with_panel(
            single_stat(
                "Peak memory",
                "bytes",
                [
                    (
                        "max by (jobmeter_run_name) "
                        f"({selector('jobmeter_run_memory_peak_bytes', *run)})",
                        "{{jobmeter_run_name}}",
                    )
                ],
            )
        )
        .with_panel(
            single_stat(
                "Processes and threads",
                "short",
                [
                    (
                        f"sum by (jobmeter_run_name) "
                        f"({selector('jobmeter_run_process_count', *run)})",
                        "{{jobmeter_run_name}} processes",
                    ),
                    (
                        f"sum by (jobmeter_run_name) "
                        f"({selector('jobmeter_run_thread_count', *run)})",
                        "{{jobmeter_run_name}} threads",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Disk I/O of the process tree",
                "Bps",
                [
                    (
                        "sum by (jobmeter_run_name, disk_io_direction) (rate("
                        f"{selector('jobmeter_run_disk_io_bytes_total', *run)}{RATE}))",
                        "{{jobmeter_run_name}} {{disk_io_direction}}",
                    )
                ],
            )
        )
        .with_row(row("Energy & cost"))
        .with_panel(
            graph(
                "Power per operation",
                "watt",
                [
                    (
                        f"sum by (operation_name, hw_type) (rate({op_energy}{RATE}))",
                        "{{operation_name}} {{hw_type}}",
                    )
                ],
                description="The blocks' energy per second of wall time: the machine's power "
                "while a block ran, times the share of the time that blocks ran.",
            )
        )
        .with_panel(
            graph(
                "Energy per block",
                "joule",
                [
                    (
                        f"sum by (operation_name, hw_type) (rate({op_energy}{RATE})) "
                        f"/ on (operation_name) group_left {by_op} (rate({calls}{RATE}))",
                        "{{operation_name}} {{hw_type}}",
                    )
                ],
                description="The mean energy of one block: the machine's, while it ran.",
            )
        )
        .with_panel(
            single_stat(
                "Energy per operation by hw.type",
                "joule",
                [
                    (
                        f"sum by (operation_name, hw_type) (increase({op_energy}[$__range]))",
                        "{{operation_name}} {{hw_type}}",
                    )
                ],
                description="The machine's energy while the blocks ran, over the time range. "
                f"{ENERGY_NOTE} Blocks that overlap each count the energy of their time.",
                span=12,
            )
        )
        .with_panel(
            single_stat(
                "Energy cost per operation",
                MONEY,
                [
                    (
                        f"{by_op} (increase({op_energy}[$__range])) / {JOULES_PER_KWH} "
                        "* $price_per_kwh",
                        "{{operation_name}}",
                    )
                ],
                description="kWh the machine used while the blocks ran, over the time range "
                "(all hw.type), times $price_per_kwh. " + MONEY_NOTE,
                span=12,
            )
        )
        .with_panel(
            graph(
                "Machine power during the run",
                "watt",
                [
                    (
                        f"sum by (jobmeter_run_name, hw_type) (rate({run_energy}{RATE}))",
                        "{{jobmeter_run_name}} {{hw_type}}",
                    )
                ],
                description="The machine's power while the run ran, from its energy counters.",
                stack=True,
                span=24,
            )
        )
        .with_panel(
            single_stat(
                "Energy per run by hw.type",
                "joule",
                [
                    (
                        f"sum by (jobmeter_run_name, hw_type) (increase({run_energy}[$__range]))",
                        "{{jobmeter_run_name}} {{hw_type}}",
                    )
                ],
                description="The machine's energy while the run ran, over the time range. "
                + ENERGY_NOTE,
                span=6,
            )
        )
        .with_panel(
            single_stat(
                "Energy cost per run",
                MONEY,
                [
                    (
                        f"{by_run} (increase({run_energy}[$__range])) / {JOULES_PER_KWH} "
                        "* $price_per_kwh",
                        "{{jobmeter_run_name}}",
                    )
                ],
                description="kWh the machine used while the run ran, over the time range "
                "(jobmeter.run.energy, all hw.type), times $price_per_kwh. "
                f"{MONEY_NOTE} `jobmeter report` prices the same energy for the whole run "
                "(run.json's energy_joules) at JOBMETER_PRICE_PER_KWH.",
                span=6,
            )
        )
        .with_panel(
            single_stat(
                "CPU cost per run (CPU time used)",
                MONEY,
                [
                    (
                        f"{by_run} (increase("
                        f"{selector('jobmeter_run_cpu_time_seconds_total', *run)}[$__range]))"
                        " / 3600 * $price_per_cpu_hour",
                        "{{jobmeter_run_name}}",
                    )
                ],
                description="CPU-hours the command's process tree used over the time range "
                "(jobmeter.run.cpu.time, user and system, / 3600), times $price_per_cpu_hour. "
                f"{MONEY_NOTE} {REPORT_BASIS} A run that kept fewer CPUs busy than it held "
                "costs less here.",
                span=6,
            )
        )
        .with_panel(
            single_stat(
                "Memory cost per run (memory used)",
                MONEY,
                [
                    (
                        f"sum_over_time(({used_memory})[$__range:$__interval]) "
                        f"* $__interval_ms / 1000 / 3600 / {BYTES_PER_GIB} * $price_per_gb_hour",
                        "{{jobmeter_run_name}}",
                    )
                ],
                description="GiB-hours of memory the command's process tree used over the time "
                "range (its PSS where the kernel reports it, else its RSS, taken every "
                "$__interval), times $price_per_gb_hour. "
                f"{MONEY_NOTE} {REPORT_BASIS}",
                span=6,
            )
        )
    )
