"""The local run store: the run directories that ``jobmeter run`` writes, read back.

```python
from jobmeter import store

runs = store.list_runs()                 # oldest first (ids sort by start time)
run = store.resolve("latest")            # or an id, or a unique id prefix
report = store.report(run)               # figures from run.json, checked against usage.jsonl
print(report.figures["peak_memory_bytes"], report.source)
```

On shared storage (NFS, a mounted bucket), many hosts write one store at
once: finished runs are listed from its index (``<root>/.index``, Parquet read
by DuckDB), each host writing only files of its own (``index_run``,
``compact_index``); ``operations_of(runs)`` gives their operations and query
shapes. See docs/run-store.md#the-index.

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
from jobmeter.store._figures import figures_of
from jobmeter.store._gc import gc
from jobmeter.store._index.compact import Compaction
from jobmeter.store._index.operations import operations_of
from jobmeter.store._index.write import compact_index, index_run
from jobmeter.store._operation_advice import PartAdvice, advise_operations
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
    "Compaction",
    "Cost",
    "EmptyStoreError",
    "PartAdvice",
    "PlotDependencyError",
    "Prices",
    "RunReport",
    "StoreError",
    "StoredRun",
    "UnknownRunError",
    "advise",
    "advise_operations",
    "compact_index",
    "cost_of",
    "export_parquet",
    "figures_of",
    "gc",
    "held_of",
    "index_run",
    "list_runs",
    "operations_of",
    "percentile",
    "plot_run",
    "prices",
    "report",
    "resolve",
    "runs_root",
]

publish(globals())
