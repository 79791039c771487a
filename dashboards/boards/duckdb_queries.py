"""The DuckDB dashboard: statements of profiled DuckDB connections, per query shape."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from _panels import (
    INSTANCE,
    RATE,
    gauge_by,
    graph,
    new_dashboard,
    quantile_queries,
    query_variable,
    row,
    selector,
)


def duckdb() -> dashboard.Dashboard:
    """Statements of profiled DuckDB connections, per query shape (db.query.summary)."""
    shape = (INSTANCE, 'db_query_summary=~"$query_summary"')
    by = "sum by (db_query_summary)"
    calls = selector("db_client_operation_duration_seconds_count", *shape)

    def rate_of(metric: str, *matchers: str) -> str:
        return f"rate({selector(metric, *shape, *matchers)}{RATE})"

    return (
        new_dashboard(
            "jobmeter / DuckDB",
            "jobmeter-duckdb",
            "Statements of jobmeter.duckdb connections by query shape, with DuckDB's profiler.",
        )
        .with_variable(
            query_variable(
                "query_summary",
                "db.query.summary",
                f"label_values({selector('db_client_operation_duration_seconds_count', INSTANCE)}, "
                "db_query_summary)",
            )
        )
        .with_row(row("Statements"))
        .with_panel(
            graph(
                "Statements per second",
                "ops",
                [(f"{by} (rate({calls}{RATE}))", "{{db_query_summary}}")],
            )
        )
        .with_panel(
            graph(
                "Failed statements per second",
                "ops",
                [
                    (
                        "sum by (db_query_summary, error_type) ("
                        + rate_of("db_client_operation_duration_seconds_count", 'error_type!=""')
                        + ")",
                        "{{db_query_summary}} {{error_type}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Duration p50 / p95 / p99",
                "s",
                quantile_queries(
                    selector("db_client_operation_duration_seconds_bucket", *shape),
                    "db_query_summary",
                ),
                span=24,
            )
        )
        .with_panel(
            graph(
                "Returned rows per second",
                "short",
                [
                    (
                        f"{by} ({rate_of('db_client_response_returned_rows_sum')})",
                        "{{db_query_summary}}",
                    )
                ],
                axis_label="rows/s",
            )
        )
        .with_panel(
            graph(
                "Rows scanned per second",
                "short",
                [
                    (
                        f"{by} ({rate_of('jobmeter_duckdb_rows_scanned_total')})",
                        "{{db_query_summary}}",
                    )
                ],
                axis_label="rows/s",
            )
        )
        .with_row(row("Profiler"))
        .with_panel(
            graph(
                "CPU seconds per second",
                "short",
                [
                    (
                        f"{by} ({rate_of('jobmeter_duckdb_cpu_time_seconds_total')})",
                        "{{db_query_summary}}",
                    )
                ],
                description="DuckDB's query.cpu_time; 1.0 is one core busy.",
                axis_label="cores",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Time by phase",
                "short",
                [
                    (
                        "sum by (jobmeter_duckdb_phase) "
                        f"({rate_of('jobmeter_duckdb_phase_time_seconds_total')})",
                        "{{jobmeter_duckdb_phase}}",
                    )
                ],
                description="Seconds per second spent planning, optimizing and executing.",
                axis_label="s/s",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Bytes read and written",
                "Bps",
                [
                    (
                        "sum by (db_query_summary, disk_io_direction) "
                        f"({rate_of('jobmeter_duckdb_io_bytes_total')})",
                        "{{db_query_summary}} {{disk_io_direction}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Row groups pruned",
                "percentunit",
                [
                    (
                        f"1 - {by} ({rate_of('jobmeter_duckdb_row_groups_scanned_total')}) / "
                        f"({by} ({rate_of('jobmeter_duckdb_row_groups_to_scan_total')}) > 0)",
                        "{{db_query_summary}}",
                    )
                ],
                description="Share of row groups skipped by zone maps (shapes that scan tables).",
                span=12,
            )
        )
        .with_panel(
            graph(
                "Buffer memory peak",
                "bytes",
                [
                    (
                        "max by (db_query_summary) "
                        f"({selector('jobmeter_duckdb_buffer_memory_peak_bytes', *shape)})",
                        "{{db_query_summary}}",
                    )
                ],
                description="Peak buffer memory of the whole database instance during the latest "
                "statement of the shape.",
                span=12,
            )
        )
        .with_row(row("Tables"))
        .with_panel(
            graph(
                "Table rows",
                "short",
                gauge_by(
                    "jobmeter_duckdb_table_rows",
                    "db_namespace, db_collection_name",
                    "{{db_namespace}}.{{db_collection_name}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Table size",
                "bytes",
                gauge_by(
                    "jobmeter_duckdb_table_size_bytes",
                    "db_namespace, db_collection_name",
                    "{{db_namespace}}.{{db_collection_name}}",
                ),
            )
        )
    )
