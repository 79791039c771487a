"""One run store on shared storage, written by many hosts at once: ids, the index, compaction.

The hosts are real: each writer is a separate process in its own UTS namespace
(``unshare --uts`` as root) with its own host name, so run.json, the index's
writer folders and the liveness checks see different machines, as they would
on NFS. The generated stores (tests/_support/shared_store.py) have figures
drawn at random and kept, which the answers are checked against.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from _support.shared_store import GeneratedRun, generate
from jobmeter import store
from jobmeter._rundata.layout import new_run_id
from jobmeter.store._index import compact as _index_compact
from jobmeter.store._index.schema import ANONYMOUS, ENTRY_FILE, INDEX_DIR, writer_name

TESTS = Path(__file__).resolve().parents[1]
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{16}")


def _can_unshare() -> bool:
    try:
        done = subprocess.run(["unshare", "--uts", "hostname", "jobmeter-probe"],
                              capture_output=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


needs_hosts = pytest.mark.skipif(
    not _can_unshare(), reason="needs unshare --uts (root) to give each writer its own host name"
)


def _env(root: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "JOBMETER_RUN_DIR": str(root), "OTEL_METRICS_EXPORTER": "none",
           "PYTHONPATH": path}  # fmt: skip
    env.pop("JOBMETER_RUN", None)
    return {**env, **extra}


def _on_host(host: str, code: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -c code args`` in a UTS namespace of its own, whose host name is ``host``."""
    script = 'h=$0 py=$1 code=$2; shift 2; hostname "$h" && exec "$py" -c "$code" "$@"'
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", script, host, sys.executable, code, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(processes: list[subprocess.Popen[str]], timeout: float = 100) -> None:
    for process in processes:
        _, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err


def _listed(runs: list[store.StoredRun]) -> list[tuple[Any, ...]]:
    """What a listing says of each run, run.json included."""
    return [(r.id, r.directory, r.name, r.state, r.start, r.end, r.exit_code, r.record)
            for r in runs]  # fmt: skip


def _same_listing(root: Path) -> list[store.StoredRun]:
    """The listing from the index, checked equal to the one from every run.json."""
    indexed = store.list_runs(root)
    assert _listed(indexed) == _listed(store.list_runs(root, index=False))
    return indexed


def _index_rows(root: Path) -> list[tuple[Any, ...]]:
    """(writer folder, writer, host_name, run_dir) of every compacted row, read by DuckDB."""
    return duckdb.execute(
        f"SELECT regexp_extract(filename, '{INDEX_DIR}/([^/]+)/', 1), writer, host_name, run_dir "
        f"FROM read_parquet('{root}/{INDEX_DIR}/*/runs.*.parquet', filename=true)"
    ).fetchall()


def test_run_ids_are_unique_sortable_and_keep_short_prefixes() -> None:
    """100,000 ids in one second-stamp: all distinct; the stamp leads, so they sort by time."""
    ids = [new_run_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(RUN_ID.fullmatch(run_id) for run_id in ids[:1000])
    stamps = [run_id[:16] for run_id in ids]
    assert stamps == sorted(stamps)
    assert time.strftime("%Y%m%dT", time.gmtime()) in ids[-1][:9]


RUNS_ON_HOST = """
import jobmeter
from jobmeter import store
ops = jobmeter.MetricsCollector("etl")
for i in range({runs}):
    with jobmeter.Run("job-{host}", interval=0.05):
        with ops.measure("step", {{"part": str(i % 2)}}):
            sum(range(20_000))
store.list_runs()  # a host that lists the store compacts the entries no segment holds
"""


@needs_hosts
def test_runs_from_several_hosts_into_one_store_at_once(tmp_path: Path) -> None:
    """Three hosts, 17 runs each, at once, each listing the store at its end: 51 unique ids,
    every run in a segment of the hosts that compacted, and the index lists what run.json
    lists."""
    root = tmp_path / "runs"
    hosts = ("node-a", "node-b", "node-c")
    _finish([_on_host(h, RUNS_ON_HOST.format(runs=17, host=h), _env(root)) for h in hosts])
    runs = _same_listing(root)
    assert len(runs) == 51
    assert len({run.id for run in runs}) == 51
    assert all(RUN_ID.fullmatch(run.id) for run in runs)
    assert all(run.entry is not None and run.state == "succeeded" for run in runs)
    assert {run.record["host"]["host.name"] for run in runs} == set(hosts)
    assert {run.name for run in runs} == {f"job-{h}" for h in hosts}
    rows = _index_rows(root)
    assert {row[0] for row in rows} <= set(hosts)  # each compacted into its own folder
    assert all(writer == host for _, writer, host, _ in rows)  # an entry's writer: its run's
    compacted = {row[3] for row in rows}
    assert compacted <= {run.directory.name for run in runs}
    assert len(compacted) >= 16  # the rest ended after the last listing: in their directories
    assert all(run.figures is None for run in runs if run.directory.name not in compacted)
    for run in runs[::10]:  # the index's figures and operations are the report's
        report = store.report(run)
        assert store.figures_of([run]) == [report.figures]
        if run.directory.name in compacted:  # completed from its samples by the compaction
            assert run.figures == report.figures
        listed = store.operations_of([run])
        shown = report.records.operations
        assert [(r["label"], r["count"], r["duration_p95_seconds"]) for r in listed] == [
            (op["label"], op["count"], op["duration_p95_seconds"]) for op in shown
        ]
        assert sum(r["count"] for r in listed) == 1


def test_a_run_writes_its_entry_into_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobmeter run`: index.json beside run.json, no .index yet; its writer is the host as
    JOBMETER_HOST_NAME shows it (hash: run.json's hashed name; omit: _anonymous), and so is
    the folder this host compacts into."""
    for mode in ("hash", "omit"):
        root = tmp_path / mode
        done = subprocess.run([sys.executable, "-m", "jobmeter", "run", "-q", "--", "true"],
                              env=_env(root, JOBMETER_HOST_NAME=mode), capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (directory,) = root.iterdir()  # nothing else in the runs directory
        entry = json.loads((directory / ENTRY_FILE).read_text())
        (run,) = _same_listing(root)
        assert run.entry == entry["run"]["entry"]
        host = run.record["host"].get("host.name")
        if mode == "hash":
            assert re.fullmatch(r"host-[0-9a-f]{16}", host)
            assert entry["run"]["writer"] == host
        else:
            assert host is None
            assert entry["run"]["writer"] == ANONYMOUS
        assert entry["run"]["figures"] is None  # the compaction reads the samples
        monkeypatch.setenv("JOBMETER_HOST_NAME", mode)
        assert store.compact_index(root).kept == 1
        assert [p.name for p in (root / INDEX_DIR).iterdir()] == [entry["run"]["writer"]]
        (compacted,) = _same_listing(root)
        assert _listed([compacted]) == _listed([run])
        assert compacted.figures == store.report(compacted).figures


def test_a_run_without_records_writes_its_entry_without_duckdb(tmp_path: Path) -> None:
    """The entry costs a run no DuckDB import: `jobmeter run -- true` stays as fast."""
    code = (
        "import sys, jobmeter\n"
        "with jobmeter.Run('plain', interval=0.05, directory=sys.argv[1]) as run:\n"
        "    pass\n"
        "assert (run.directory / 'index.json').is_file()\n"
        "print('duckdb' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "runs")],
                          env=_env(tmp_path / "runs"), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    (run,) = _same_listing(tmp_path / "runs")
    assert run.entry is not None


def test_the_writer_name_follows_jobmeter_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """plain: the host name, made safe for a file name; omit: the shared _anonymous folder."""
    monkeypatch.setenv("JOBMETER_HOST_NAME", "plain")
    assert writer_name() == re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())
    monkeypatch.setenv("JOBMETER_HOST_NAME", "omit")
    assert writer_name() == ANONYMOUS


@pytest.fixture
def small_store(tmp_path: Path) -> tuple[Path, list[GeneratedRun]]:
    """120 runs from 3 hosts, each host's compaction in a segment of its own; the entries of
    the last 10 still in their directories."""
    root = tmp_path / "runs"
    return root, generate(root, runs=120, hosts=3, old=6, running=3, pending=10)


def test_the_index_lists_what_run_json_lists(small_store: tuple[Path, list[GeneratedRun]]) -> None:
    """Same ids, names, states, run.json and figures; runs without an entry read from run.json."""
    root, generated = small_store
    runs = _same_listing(root)
    assert [run.id for run in runs] == [g.id for g in generated]
    assert [run.state for run in runs] == [g.state for g in generated]
    without = {g.id for g in generated if g.entry in ("old", "running")}
    assert {run.id for run in runs if run.entry is None} == without
    assert {row[3] for row in _index_rows(root)} == {
        g.id for g in generated if g.entry == "compacted"
    }
    for run in runs[::12]:
        assert store.figures_of([run]) == [store.report(run).figures]
    by_id = {g.id: g for g in generated}
    for row in store.operations_of(runs):
        count, total = by_id[row["run_id"]].operations[row["label"]]
        assert (row["count"], row["duration_total_seconds"]) == (count, pytest.approx(total))


def test_a_listing_compacts_the_entries_no_segment_holds(tmp_path: Path) -> None:
    """16 entries outside any segment make list_runs compact them into this host's folder;
    15 do not; compact=False never does."""
    root = tmp_path / "runs"
    generate(root, runs=15, hosts=2, old=0, running=0, compact_hosts=False)
    store.list_runs(root)
    assert not (root / INDEX_DIR).exists()
    generate(root, runs=1, hosts=1, seed=5, old=0, running=0, compact_hosts=False)
    store.list_runs(root, compact=False)
    assert not (root / INDEX_DIR).exists()
    runs = store.list_runs(root)
    assert len(runs) == 16
    assert {row[0] for row in _index_rows(root)} == {writer_name()}
    assert len(_index_rows(root)) == 16


def test_a_deleted_run_leaves_the_listing_and_then_the_index(
    small_store: tuple[Path, list[GeneratedRun]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rm -r: not listed at once; the next compaction drops its entry (once older than
    KEEP_YOUNG_S); gc's deletions leave the index at once."""
    root, generated = small_store
    indexed = [g for g in generated if g.entry == "compacted" and g.compacted_by == "node-00"]
    shutil.rmtree(root / indexed[0].id)
    assert indexed[0].id not in {run.id for run in _same_listing(root)}
    store.compact_index(root, every_host=True)
    assert indexed[0].id in {row[3] for row in _index_rows(root)}  # young: NFS may lag
    monkeypatch.setattr(_index_compact, "KEEP_YOUNG_S", 0.0)
    result = store.compact_index(root, every_host=True)
    assert result.dropped == 1
    assert indexed[0].id not in {row[3] for row in _index_rows(root)}
    monkeypatch.undo()
    deleted = store.gc(2, root)
    left = _same_listing(root)
    assert len(left) == 2 * len({g.name for g in generated})
    assert not {run.id for run in deleted} & {row[3] for row in _index_rows(root)}
    assert {row[3] for row in _index_rows(root)} <= {run.id for run in left}
    # gc merged every host's folder into its own (the emptied ones stay: a host may be
    # about to write into its folder, and nothing removes what another host may use).
    files = {path.parent.name for path in (root / INDEX_DIR).glob("*/*")}
    assert files == {writer_name()}
    assert len(list((root / INDEX_DIR / writer_name()).glob("*.parquet"))) == 2


def test_a_torn_index_file_is_skipped_with_one_warning(
    small_store: tuple[Path, list[GeneratedRun]], caplog: pytest.LogCaptureFixture
) -> None:
    """A run's entry and a segment cut in half: one warning each, every run still listed (the
    segment's from their own entries, the run's from run.json); compaction sets the segment
    aside."""
    root, generated = small_store
    loose = next(g for g in generated if g.entry == "pending")
    entry = root / loose.id / ENTRY_FILE
    folder = root / INDEX_DIR / "node-01"
    segment = next(folder.glob("runs.*.parquet"))
    for path in (entry, segment):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        runs = _same_listing(root)
        store.list_runs(root)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert all("damaged index file" in w for w in warnings)
    named = {w.split("damaged index file ")[1].split(" (")[0] for w in warnings}
    assert named == {str(entry), str(segment)}
    assert [run.id for run in runs] == [g.id for g in generated]
    from_run_json = {g.id for g in generated if g.entry in ("old", "running")} | {loose.id}
    assert {run.id for run in runs if run.entry is None} == from_run_json
    caplog.clear()
    store.compact_index(root, every_host=True)
    assert not segment.exists()
    assert (folder / f".{segment.name}.damaged").exists()  # hidden: no longer read
    assert entry.exists()  # its run's file: left where it is
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        again = _same_listing(root)
    assert not caplog.records  # one warning per file and process
    assert {run.id for run in again if run.entry is None} == from_run_json
    segments = {row[3] for row in _index_rows(root)}  # the compaction took them from their
    assert {g.id for g in generated if g.compacted_by == "node-01"} <= segments  # directories


def test_a_torn_operations_file_falls_back_to_the_records(
    small_store: tuple[Path, list[GeneratedRun]], caplog: pytest.LogCaptureFixture
) -> None:
    """A segment's operations file cut: one warning, every run's operations all the same."""
    root, generated = small_store
    operations = next((root / INDEX_DIR / "node-02").glob("operations.*.parquet"))
    operations.write_bytes(b"PAR1 not really")
    runs = store.list_runs(root)
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        rows = store.operations_of(runs)
    assert len([r for r in caplog.records if "damaged index file" in r.getMessage()]) == 1
    by_id = {g.id: g for g in generated}
    assert len(rows) == sum(len(by_id[run.id].operations) for run in runs)
    for row in rows:
        assert row["count"] == by_id[row["run_id"]].operations[row["label"]][0]


WRITER = """
import sys
from pathlib import Path
from jobmeter import store
for directory in sorted(Path(sys.argv[1]).iterdir()):
    if not directory.name.startswith("."):
        store.index_run(directory)
"""
COMPACTOR = """
import sys
from pathlib import Path
from _support.shared_store import generate
from jobmeter import store
root = Path(sys.argv[1])
for round in range(int(sys.argv[3])):
    generate(root, runs=6, hosts=1, seed=int(sys.argv[2]) * 1000 + round, old=0, running=0,
             host_prefix=f"w{sys.argv[2]}-{round}", compact_hosts=False)
    store.compact_index(root, every_host=True)
"""


def test_a_killed_writer_leaves_no_file_that_breaks_the_listing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process writing runs' entries, then one compacting, SIGKILLed mid-way: the listing
    has no warning and equals run.json's; what they left is hidden, and goes later."""
    root = tmp_path / "runs"
    generate(root, runs=40, hosts=1, old=40, running=0)  # no entries yet
    scripts = [(WRITER, str(root)), (COMPACTOR, str(root), "1", "100")]
    for script, *args in scripts:
        for delay in (1.5, 3.0):
            process = subprocess.Popen([sys.executable, "-c", script, *args], env=_env(root),
                                       stderr=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            with caplog.at_level(logging.WARNING, logger="jobmeter"):
                _same_listing(root)
            assert not caplog.records, [r.getMessage() for r in caplog.records]
    done = subprocess.run([sys.executable, "-c", WRITER, str(root)], env=_env(root),
                          capture_output=True, text=True, timeout=100)  # fmt: skip
    assert done.returncode == 0, done.stderr
    store.compact_index(root, every_host=True)
    runs = _same_listing(root)
    assert all(run.entry is not None for run in runs)
    assert {row[3] for row in _index_rows(root)} == {run.id for run in runs}
    assert not caplog.records
    hidden = list(root.glob(f"{INDEX_DIR}/*/.*"))  # a killed run's own are in its directory
    old = time.time() - 2 * _index_compact.LEFTOVER_S
    for path in hidden:
        os.utime(path, (old, old))
    store.compact_index(root, every_host=True)
    assert not list(root.glob(f"{INDEX_DIR}/*/.*"))


@needs_hosts
def test_hosts_that_compact_every_folder_at_once_lose_no_entry(tmp_path: Path) -> None:
    """Three hosts each write 12 x 6 runs and compact every host's folder after each batch,
    at once: every run is listed from the index, each once, with its operations."""
    root = tmp_path / "runs"
    root.mkdir()
    processes = [_on_host(f"host-{k}", COMPACTOR, _env(root), str(root), str(k), "12")
                 for k in range(3)]  # fmt: skip
    _finish(processes)
    runs = _same_listing(root)
    assert len(runs) == 3 * 12 * 6
    assert all(run.entry is not None for run in runs)
    operations = store.operations_of(runs)
    assert len(operations) == 4 * len(runs)  # 3 operations and a query shape each
    assert len({(row["run_id"], row["label"]) for row in operations}) == len(operations)
    store.compact_index(root, every_host=True)
    rows = _index_rows(root)
    assert sorted(row[3] for row in rows) == sorted(run.id for run in runs)  # each once
