"""Generate jobmeter's Grafana dashboards (dashboards/*.json) from code.

Usage: ``python dashboards/generate.py [--output DIR]`` (``make dashboards``). The JSON is
written with sorted keys, so that the same code always gives the same bytes; a test fails when
the committed files differ from what this script writes. Metric names are the Prometheus names
of docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from boards.backfills import backfills
from boards.duckdb_queries import duckdb
from boards.gpu import gpu
from boards.host import host
from boards.jobs import jobs

HERE = Path(__file__).resolve().parent

DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "backfills": backfills,
    "duckdb": duckdb,
    "gpu": gpu,
    "host": host,
    "jobs": jobs,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    """The dashboard as JSON text: sorted keys, two-space indent, a final newline."""
    model: Any = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    # Grafana numbers panels itself when ids are missing; fixed ids keep links stable.
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard to ``--output`` (default: this directory)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=HERE, help="directory for the JSON files")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        path = args.output / f"{name}.json"
        path.write_text(render(build))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
