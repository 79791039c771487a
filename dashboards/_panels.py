"""Building blocks of jobmeter's dashboards, on top of grafana-foundation-sdk.

Every panel reads the ``$datasource`` variable; every query variable is multi-select with
"All". Queries are (PromQL, legend) pairs. Prices are not metrics: the cost panels read them
from textbox variables (``$price_per_kwh``, ...) that mirror the ``JOBMETER_PRICE_*``
environment variables of docs/configuration.md.
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
#: Joules in a kilowatt-hour, as PromQL reads it.
JOULES_PER_KWH = "3600000"
#: Bytes in a GiB (JOBMETER_PRICE_PER_GB_HOUR prices GiB), as PromQL reads it.
BYTES_PER_GIB = "1073741824"
#: The unit of money: a plain number, since the currency is whatever the prices were entered in.
MONEY = "none"
MONEY_NOTE = "The currency is that of the prices entered in the dashboard's price variables."

#: The price variables: name -> (label, default, the variable it mirrors, what one unit is).
PRICES: dict[str, tuple[str, str, str, str]] = {
    "price_per_kwh": ("Price per kWh", "0.15", "JOBMETER_PRICE_PER_KWH", "a kilowatt-hour"),
    "price_per_cpu_hour": ("Price per CPU-hour", "0.04", "JOBMETER_PRICE_PER_CPU_HOUR",
                           "a CPU-hour (one CPU for an hour)"),
    "price_per_gb_hour": ("Price per GiB-hour", "0.005", "JOBMETER_PRICE_PER_GB_HOUR",
                          "a GiB-hour (one GiB of memory for an hour)"),
    "price_per_gpu_hour": ("Price per GPU-hour", "2.5", "JOBMETER_PRICE_PER_GPU_HOUR",
                           "a GPU-hour (one GPU for an hour)"),
}  # fmt: skip


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


def price_variable(name: str) -> dashboard.TextBoxVariable:
    """A textbox variable holding a price (``PRICES[name]``), with its default filled in.

    Prices are set as environment variables and never exported as metrics, so a dashboard
    cannot read them: the user types them here, in any currency.
    """
    label, default, mirrors, unit = PRICES[name]
    return (
        dashboard.TextBoxVariable(name)
        .label(label)
        .description(
            f"What {unit} costs, in your currency. It mirrors {mirrors} of "
            "docs/configuration.md: prices are not exported as metrics, so enter the same "
            f"value here ({default} is only an example)."
        )
        .default_value(default)
        .current(models.VariableOption(selected=True, text=default, value=default))
        .options([models.VariableOption(selected=True, text=default, value=default)])
    )


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
