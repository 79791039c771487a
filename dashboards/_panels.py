"""Building blocks of jobmeter's dashboards, on top of grafana-foundation-sdk.

Every panel reads the ``$datasource`` variable; every query variable is multi-select with
"All". Queries are (PromQL, legend) pairs.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

Query = tuple[str, str]
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
INSTANCE = 'instance=~"$instance"'
QUANTILES = (0.5, 0.95, 0.99)


def new_dashboard(title: str, uid: str, description: str) -> dashboard.Dashboard:
    """A dashboard with jobmeter's defaults and the datasource, service and instance variables.

    The instance variable follows the service: its "All" is the instances of the chosen
    services, so that panels need to filter on ``instance`` only (resource attributes such as
    ``service.name`` are on ``target_info``, not on each series).
    """
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["jobmeter"])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            query_variable("service", "Service", "label_values(target_info, service_name)")
        )
        .with_variable(
            query_variable(
                "instance",
                "Instance",
                'label_values(target_info{service_name=~"$service"}, instance)',
                all_value=None,
            )
        )
    )


def query_variable(
    name: str, label: str, query: str, *, all_value: str | None = ".*"
) -> dashboard.QueryVariable:
    """A multi-select query variable with "All" (``all_value`` None: All is the list itself)."""
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )
    if all_value is not None:
        variable = variable.all_value(all_value)
    return variable


def selector(metric: str, *matchers: str) -> str:
    """``metric{m1, m2}``: a metric with label matchers."""
    return f"{metric}{{{', '.join(matchers)}}}"


def quantile_queries(bucket: str, by: str) -> list[Query]:
    """p50, p95 and p99 of a histogram's ``_bucket`` selector, per ``by`` label."""
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}{RATE})))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in QUANTILES
    ]


def rate_by(metric: str, by: str, legend: str, *matchers: str) -> list[Query]:
    """The per-second rate of a counter on the chosen instances, summed by ``by``."""
    return [(f"sum by ({by}) (rate({selector(metric, INSTANCE, *matchers)}{RATE}))", legend)]


def gauge_by(metric: str, by: str, legend: str, *matchers: str) -> list[Query]:
    """A gauge on the chosen instances, summed by ``by``."""
    return [(f"sum by ({by}) ({selector(metric, INSTANCE, *matchers)})", legend)]


def _targets(queries: list[Query]) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        for i, (expr, legend) in enumerate(queries)
    ]


def graph(
    title: str,
    unit: str,
    queries: list[Query],
    *,
    description: str = "",
    stack: bool = False,
    axis_label: str = "",
    span: int = 12,
    minimum: float | None = 0,
) -> timeseries.Panel:
    """A time series panel of one or more queries."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets(queries)))
        .unit(unit)
        .span(span)
        .height(8)
        .fill_opacity(25 if stack else 10)
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if axis_label:
        panel = panel.axis_label(axis_label)
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single_stat(
    title: str, unit: str, queries: list[Query], *, description: str = "", span: int = 6
) -> stat.Panel:
    """A stat panel showing the latest value of each series."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(_targets(queries)))
        .unit(unit)
        .span(span)
        .height(5)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def row(title: str) -> dashboard.Row:
    """A row (section title) of the dashboard."""
    return dashboard.Row(title)
