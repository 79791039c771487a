"""The local run store: the run directories that ``jobmeter run`` writes, read back.

```python
from jobmeter import store

runs = store.list_runs()                 # oldest first (ids sort by start time)
run = store.resolve("latest")            # or an id, or a unique id prefix
report = store.report(run)               # figures from run.json, checked against usage.jsonl
print(report.figures["peak_memory_bytes"], report.source)
```

Damage is tolerated: unreadable lines of usage.jsonl are skipped with one
warning (logger ``jobmeter``), and a run whose run.json still says
``"running"`` while its wrapper is gone is reported as ``"incomplete"``, with
its figures computed from the samples. See docs/run-store.md.
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter._rundata.layout import runs_root
from jobmeter._rundata.summary import FIGURES
from jobmeter.store._advise import Advice, advise, export_parquet
from jobmeter.store._cost import Cost, Prices, cost_of, held_of, prices
from jobmeter.store._gc import gc
from jobmeter.store._plot.render import PlotDependencyError, plot_run
from jobmeter.store._runs import (
    EmptyStoreError,
    RunReport,
    StoredRun,
    StoreError,
    UnknownRunError,
    list_runs,
    percentile,
    report,
    resolve,
)

__all__ = [
    "FIGURES",
    "Advice",
    "Cost",
    "EmptyStoreError",
    "PlotDependencyError",
    "Prices",
    "RunReport",
    "StoreError",
    "StoredRun",
    "UnknownRunError",
    "advise",
    "cost_of",
    "export_parquet",
    "gc",
    "held_of",
    "list_runs",
    "percentile",
    "plot_run",
    "prices",
    "report",
    "resolve",
    "runs_root",
]

publish(globals())
