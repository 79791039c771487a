"""The HTML page of a plot: the PNG embedded, and the run's summary in readable units."""

from __future__ import annotations

import base64
import html as html_lib
from collections.abc import Iterator
from pathlib import Path

from jobmeter._core.format import format_bytes
from jobmeter.store._plot.data import RunData, duration_text, number_of, summary_of


def _summary_rows(run: RunData) -> Iterator[tuple[str, str]]:
    for key, value in summary_of(run).items():
        if key in {"directory", "run_id"}:
            continue
        number = number_of(value)
        if number is not None and key.endswith("_bytes"):
            shown = f"{format_bytes(number, significant=3)} ({int(number):,} bytes)"
        elif number is not None and key.endswith("_seconds"):
            shown = duration_text(number)
        elif number is not None and not isinstance(value, int):
            shown = f"{number:.3g}"
        elif value is None or value == []:
            shown = "-"
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        yield key, shown


def write_html(run: RunData, png: Path, target: Path) -> None:
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    title = html_lib.escape(str(run.record.get("id") or run.directory.name))
    rows = "\n".join(
        f"<tr><th>{html_lib.escape(key)}</th><td>{html_lib.escape(value)}</td></tr>"
        for key, value in _summary_rows(run)
    )
    status = html_lib.escape(str(run.record.get("status", "unknown")))
    target.write_text(
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jobmeter run {title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left}}th{{font-weight:normal;color:#555}}
img{{max-width:100%}}</style></head>
<body><h1>jobmeter run {title}</h1><p>status: {status}</p>
<img alt="CPU, memory and disk I/O of run {title}" src="data:image/png;base64,{encoded}">
<h2>Summary</h2><table>
{rows}
</table></body></html>
""",
        encoding="utf-8",
    )
