"""``jobmeter grafana push``: the datasource and dashboards into Grafana (docs/grafana.md)."""

from __future__ import annotations

import sys

import typer

from jobmeter._core.errors import ConfigurationError
from jobmeter.cli._output import print_json
from jobmeter.cli._table import Column, Output, Table

grafana_app = typer.Typer(
    name="grafana",
    help="Put jobmeter's dashboards into Grafana.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@grafana_app.command()
def push(
    url: str | None = typer.Option(
        None, "--url", help="Grafana's base URL (default GRAFANA_URL, else http://localhost:3000)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Service-account token (default GRAFANA_TOKEN; or GRAFANA_USER/GRAFANA_PASSWORD).",
    ),
    folder: str = typer.Option("jobmeter", "--folder", help="Folder title; created if missing."),
    dashboards: str = typer.Option(
        "dashboards", "--dashboards", help="Directory of dashboard *.json files."
    ),
    prometheus_url: str = typer.Option(
        "http://localhost:9090",
        "--prometheus-url",
        help="URL Grafana's server reaches Prometheus at, for the datasource.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Create or update the Prometheus datasource, then upload the dashboards (overwriting)."""
    # Here, not at the top: the other commands start without jobmeter.grafana.
    from jobmeter import grafana

    try:
        settings = grafana.GrafanaSettings.from_env(url=url, token=token)
        boards = grafana.load_dashboards(dashboards)
        source = grafana.ensure_datasource(prometheus_url, settings=settings)
        changes = [source]
        changes += grafana.push_dashboards(
            boards, folder=folder, datasource_uid=source.uid, settings=settings
        )
    except (grafana.GrafanaError, ConfigurationError) as error:
        print(f"jobmeter: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    if as_json:
        print_json({"grafana": settings.url, "changes": [c.to_json() for c in changes]})
        return
    table = Table(f"Grafana at {settings.url}", (
        Column("kind", "left"), Column("title", "left", fold=True), Column("uid", "left", drop=2),
        Column("action", "left"), Column("version", drop=1), Column("url", "left", fold=True),
    ))  # fmt: skip
    for change in changes:
        version = "-" if change.version is None else str(change.version)
        row = (change.kind, change.title, change.uid, change.action, version, change.url or "-")
        table.add_row(*row)
    Output().table(table)
