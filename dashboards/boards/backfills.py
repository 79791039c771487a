"""The backfills dashboard: progress, rate, ETA, outcomes, retries and freshness."""

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


def backfills() -> dashboard.Dashboard:
    """Backfill progress, rate, ETA, outcomes, retries and freshness."""
    bf = (INSTANCE, 'jobmeter_backfill_name=~"$backfill"')
    by = "sum by (jobmeter_backfill_name)"
    legend = "{{jobmeter_backfill_name}}"
    items = selector("jobmeter_backfill_items_total", *bf)
    planned = selector("jobmeter_backfill_items_planned", *bf)
    rate = selector("jobmeter_backfill_rate_per_second", *bf)
    return (
        new_dashboard(
            "jobmeter / Backfills",
            "jobmeter-backfills",
            "jobmeter.Backfill: progress, rate, ETA and outcomes, summed over worker processes.",
        )
        .with_variable(
            query_variable(
                "backfill",
                "Backfill",
                f"label_values({selector('jobmeter_backfill_items_total', INSTANCE)}, "
                "jobmeter_backfill_name)",
            )
        )
        .with_row(row("Progress"))
        .with_panel(
            single_stat(
                "Progress",
                "percentunit",
                [(f"{by} ({items}) / {by} ({planned})", legend)],
                description="Finished items (done, failed, skipped) over planned, all workers.",
            )
        )
        .with_panel(
            single_stat(
                "ETA",
                "s",
                [(f"({by} ({planned}) - {by} ({items})) / {by} ({rate})", legend)],
                description="Remaining items over the summed smoothed rate.",
            )
        )
        .with_panel(single_stat("Rate", "short", [(f"{by} ({rate})", f"{legend} items/s")]))
        .with_panel(
            single_stat(
                "Since last success",
                "s",
                [
                    (
                        f"time() - max by (jobmeter_backfill_name) "
                        f"({selector('jobmeter_backfill_last_success_timestamp_seconds', *bf)})",
                        legend,
                    )
                ],
                description="Age of the latest backfill that ended without an exception.",
            )
        )
        .with_row(row("Outcomes"))
        .with_panel(
            graph(
                "Items per second by outcome",
                "short",
                [
                    (
                        f"sum by (jobmeter_backfill_name, jobmeter_backfill_outcome) "
                        f"(rate({items}{RATE}))",
                        "{{jobmeter_backfill_name}} {{jobmeter_backfill_outcome}}",
                    )
                ],
                axis_label="items/s",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Failures per second by error type",
                "short",
                [
                    (
                        "sum by (jobmeter_backfill_name, error_type) (rate("
                        + selector(
                            "jobmeter_backfill_items_total",
                            *bf,
                            'jobmeter_backfill_outcome="failed"',
                        )
                        + f"{RATE}))",
                        "{{jobmeter_backfill_name}} {{error_type}}",
                    )
                ],
                axis_label="items/s",
            )
        )
        .with_panel(
            graph(
                "Retries and rate-limit hits per second",
                "short",
                [
                    (
                        "sum by (jobmeter_backfill_name, jobmeter_backfill_reason) (rate("
                        f"{selector('jobmeter_backfill_retries_total', *bf)}{RATE}))",
                        "{{jobmeter_backfill_name}} retry {{jobmeter_backfill_reason}}",
                    ),
                    (
                        "sum by (jobmeter_backfill_name, jobmeter_backfill_reason) (rate("
                        f"{selector('jobmeter_backfill_rate_limit_hits_total', *bf)}{RATE}))",
                        "{{jobmeter_backfill_name}} rate limit {{jobmeter_backfill_reason}}",
                    ),
                ],
                axis_label="per second",
            )
        )
        .with_panel(
            graph(
                "Item duration p50 / p95 / p99",
                "s",
                quantile_queries(
                    selector("jobmeter_backfill_item_duration_seconds_bucket", *bf),
                    "jobmeter_backfill_name",
                ),
            )
        )
        .with_panel(
            graph(
                "Queue size",
                "short",
                [(f"{by} ({selector('jobmeter_backfill_queue_size', *bf)})", legend)],
            )
        )
        .with_panel(
            graph(
                "Smoothed rate",
                "short",
                [(f"{by} ({rate})", legend)],
                axis_label="items/s",
            )
        )
    )
