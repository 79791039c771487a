"""The jobs dashboard: measure() operations and `jobmeter run`."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    INSTANCE,
    RATE,
    graph,
    new_dashboard,
    quantile_queries,
    query_variable,
    row,
    selector,
    single_stat,
)


def jobs() -> dashboard.Dashboard:
    """measure() operations and `jobmeter run`."""
    ops = ('instance=~"$instance"', 'operation_name=~"$operation"')
    run = ('instance=~"$instance"', 'jobmeter_run_name=~"$run"')
    calls = selector("jobmeter_operation_duration_seconds_count", *ops)
    failed = selector("jobmeter_operation_duration_seconds_count", *ops, 'error_type!=""')
    by_op = "sum by (operation_name)"
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
    )
