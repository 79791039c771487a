"""Put jobmeter's dashboards and a Prometheus datasource into Grafana (docs/grafana.md).

>>> from jobmeter import grafana
>>> settings = grafana.GrafanaSettings.from_env()  # GRAFANA_URL, GRAFANA_TOKEN, ...
>>> source = grafana.ensure_datasource("http://prometheus:9090")  # doctest: +SKIP
>>> boards = grafana.load_dashboards("dashboards")  # doctest: +SKIP
>>> grafana.push_dashboards(boards, datasource_uid=source.uid)  # doctest: +SKIP

``grafana-client`` is imported on first use: ``pip install 'jobmeter[grafana]'``.
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.grafana._client import Change, Dashboard, GrafanaError, GrafanaSettings
from jobmeter.grafana._dashboards import (
    ensure_datasource,
    load_dashboards,
    point_at_datasource,
    push_dashboards,
)

__all__ = [
    "Change",
    "Dashboard",
    "GrafanaError",
    "GrafanaSettings",
    "ensure_datasource",
    "load_dashboards",
    "point_at_datasource",
    "push_dashboards",
]

publish(globals())
